"""Item-wise Myerson: every item sold by its own second-price auction with that item's Myerson reserve.

For bidders whose values are additive over the items, each item's auction is
dominant-strategy truthful and individually rational on its own, and so is
running them side by side.  With values i.i.d. ``U[0, 1]`` the reserve is
``1/2`` (the virtual value ``2 v - 1`` is zero there) and each item earns
Myerson's single-item revenue ``(n - 1 + 2^-n) / (n + 1)`` for ``n`` bidders
(:func:`baselines.optimal.myerson_revenue`), so ``m`` items earn ``m`` times
that: 0.833 for 2x2, 1.250 for 2x3, 2.083 for 2x5, 5.3125 for 3x10 and 6.719
for 5x10.

:func:`myerson_reserves` gives the reserves in closed form where the item's
marginal has one (uniform values, the same law for every bidder); elsewhere
:mod:`baselines.fit` fits one reserve per item.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from distributions import Uniform, ValuationDistribution
from mechanisms.base import Mechanism
from baselines.posted_price import check_prices
from mechanisms.demand import Demand, KSpec
from mechanisms.second_price import second_price

__all__ = ["ItemwiseMyerson", "myerson_reserves", "takes_every_item"]


def takes_every_item(demand: Demand, n_agents: int, n_items: int) -> bool:
    """Whether every bidder may take any subset of the items, none included (additive demand, or k >= items)."""
    return demand.free_disposal(n_agents, n_items) and min(demand.capacities(n_agents, n_items)) >= n_items


def myerson_reserves(distribution: ValuationDistribution) -> tuple[float, ...] | None:
    """Each item's Myerson reserve in closed form, or ``None`` where there is none here (then the reserves are fitted).

    Values ``U[low_j, high_j]``, the same range for every bidder: the virtual
    value ``2 v - high_j`` is zero at ``high_j / 2``, so the reserve is
    ``max(low_j, high_j / 2)``.  With bidders of different laws a single
    reserve per item is not Myerson's auction, and it is fitted instead.
    """
    if not isinstance(distribution, Uniform) or not distribution.identical_bidders():
        return None
    low, high = distribution.support
    return tuple(max(lo, hi / 2) for lo, hi in zip(low[0].tolist(), high[0].tolist()))


class ItemwiseMyerson(Mechanism):
    """A second-price auction with reserve ``prices[j]`` for each item ``j`` (additive demand, or k >= items).

    ``forward(bids)`` maps bids ``(batch, agents, items)`` to a 0/1 allocation
    ``(batch, agents, items)`` and payments ``(batch, agents)``; vectorized, no grad.
    """

    def __init__(self, n_agents: int, n_items: int, prices: Sequence[float], demand: str | Demand = "additive", k: KSpec = 1) -> None:
        super().__init__(n_agents, n_items, demand, k)
        if not self.applies(self.demand, n_agents, n_items):
            raise ValueError(f"itemwise_myerson sells every item on its own, which needs each bidder free to take any "
                             f"subset of the items: {self.demand.description} is not (use demand=additive)")
        self.prices = check_prices(prices, n_items, "itemwise_myerson (one reserve per item)")
        self.name = "second price per item, reserves " + ", ".join(f"{p:.4f}" for p in self.prices)

    @staticmethod
    def applies(demand: Demand, n_agents: int, n_items: int) -> bool:
        """Whether every bidder may take any subset of the items (:func:`takes_every_item`)."""
        return takes_every_item(demand, n_agents, n_items)

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, items)`` and payment ``(batch, agents)``; neither requires grad."""
        allocation, payment = second_price(bids, torch.tensor(self.prices, dtype=torch.float64))
        return allocation, payment.sum(-1)
