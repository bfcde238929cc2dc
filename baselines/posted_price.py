"""Sequential posted prices: each bidder in turn buys its favourite bundle of the items still for sale.

Bidder ``i`` (in the order ``0, 1, ..., n - 1``) faces one price ``p_i`` per item and takes, of the items left,
every item worth more than ``p_i``, best first, up to its capacity ``k_i``, paying ``p_i`` per item.  Its report
only picks from a menu that does not depend on it: dominant-strategy truthful and individually rational.  Ties:
among items of equal value the lowest index first; a value equal to the price is not bought.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from mechanisms.base import Mechanism
from mechanisms.demand import Demand, KSpec

__all__ = ["PostedPrice", "best_items", "check_prices", "free_disposal"]


def best_items(values: Tensor, k: int) -> Tensor:
    """Indices ``(..., k)`` of the ``k`` largest ``values`` ``(..., items)``, ties to the lowest index."""
    if k == 1:
        return values.argmax(-1, keepdim=True)  # the first maximal index
    return values.sort(dim=-1, descending=True, stable=True).indices[..., :k]


def free_disposal(demand: Demand, n_agents: int, n_items: int) -> bool:
    """Whether the setting has free disposal (a bidder may take nothing, an item may stay unsold)."""
    return demand.free_disposal(n_agents, n_items)


def check_prices(prices: Sequence[float], count: int, what: str) -> tuple[float, ...]:
    """``prices`` as a tuple of ``count`` finite floats; one-line ``ValueError`` otherwise."""
    values = tuple(prices)
    if len(values) != count or not all(isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p)
                                       for p in values):
        raise ValueError(f"{what} needs {count} finite price(s), got {prices!r}")
    return tuple(float(p) for p in values)


class PostedPrice(Mechanism):
    """Sequential posted prices, one price per bidder (unit, k_demand or additive demand)."""

    def __init__(self, n_agents: int, n_items: int, prices: Sequence[float], demand: str | Demand = "unit",
                 k: KSpec = 1) -> None:
        super().__init__(n_agents, n_items, demand, k)
        if not self.applies(self.demand, n_agents, n_items):
            raise ValueError(f"posted prices need free disposal, which {self.demand.description} lacks "
                             "(use pay_to_choose for exactly_k demand)")
        self.prices = check_prices(prices, n_agents, "posted_price")
        self.name = "sequential posted prices " + ", ".join(f"{p:.4f}" for p in self.prices)

    applies = staticmethod(free_disposal)

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, items)`` and payment ``(batch, agents)``; neither requires grad."""
        bids = bids.detach()
        batch = bids.shape[0]
        available = torch.ones(batch, self.n_items, dtype=torch.bool, device=bids.device)
        allocation = torch.zeros_like(bids)
        payment = bids.new_zeros(batch, self.n_agents)
        for i, (price, capacity) in enumerate(zip(self.prices, self.capacities)):
            values = bids[:, i].masked_fill(~available, -math.inf)  # taken items never beat a finite price
            if capacity >= self.n_items:  # additive: every item worth more than the price
                taken = values > price
            else:
                best = best_items(values, capacity)  # (batch, capacity)
                taken = torch.zeros_like(available).scatter(-1, best, values.gather(-1, best) > price)
            allocation[:, i] = taken.to(bids.dtype)
            payment[:, i] = price * taken.sum(-1).to(bids.dtype)
            available &= ~taken
        return allocation, payment
