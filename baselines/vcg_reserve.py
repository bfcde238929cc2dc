"""VCG with a reserve price: the seller takes part holding every item at value ``r``.

With the seller as an extra agent of unlimited capacity valuing every item at ``r``, VCG with the seller is VCG
on the net bids ``b - r``, and each bidder's Clarke payment is its VCG payment on the net bids plus ``r`` per
item won: dominant-strategy truthful and individually rational.  Computed by enumeration
(:func:`baselines.welfare.enumerated_vcg`) where :func:`~baselines.welfare.owner_maps` is small, else by
:class:`baselines.vcg.VCG`.  Items whose best net bid is not positive stay unsold.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor

from mechanisms.base import Mechanism
from baselines.posted_price import check_prices, free_disposal
from baselines.welfare import enumerated_vcg, owner_maps
from mechanisms.demand import Demand, KSpec
from baselines.vcg import VCG

__all__ = ["VCGReserve"]


class VCGReserve(Mechanism):
    """VCG with one reserve price ``prices[0]`` (unit, k_demand or additive demand)."""

    applies = staticmethod(free_disposal)

    def __init__(self, n_agents: int, n_items: int, prices: Sequence[float], demand: str | Demand = "unit",
                 k: KSpec = 1) -> None:
        super().__init__(n_agents, n_items, demand, k)
        if not self.applies(self.demand, n_agents, n_items):
            raise ValueError(f"vcg_reserve needs free disposal (an unsold item): {self.demand.description} has none")
        (self.reserve,) = self.prices = check_prices(prices, 1, "vcg_reserve")
        self.vcg = VCG(n_agents, n_items, self.demand)
        self.maps = None if self.vcg.per_item else owner_maps(tuple(self.capacities), n_items)
        self.name = f"VCG with reserve {self.reserve:.4f}"

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, items)`` and payment ``(batch, agents)``; neither requires grad."""
        net = bids.detach() - self.reserve
        allocation, payment = self.vcg(net) if self.maps is None else enumerated_vcg(net, self.capacities, self.maps)
        return allocation, payment + self.reserve * allocation.sum(-1)
