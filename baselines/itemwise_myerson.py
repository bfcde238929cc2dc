"""Item-wise Myerson: every item sold by its own second-price auction with that item's Myerson reserve.

For additive bidders each item's auction is dominant-strategy truthful and individually rational on its own, and
so is running them side by side; revenues: docs/baselines.md ("Additive bidders").
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
    """Each item's Myerson reserve ``max(low_j, high_j / 2)`` for values ``U[low_j, high_j]`` shared by every bidder
    (the virtual value ``2 v - high_j`` is zero at ``high_j / 2``), else ``None`` (then the reserves are fitted)."""
    if not isinstance(distribution, Uniform) or not distribution.identical_bidders():
        return None
    low, high = distribution.support
    return tuple(max(lo, hi / 2) for lo, hi in zip(low[0].tolist(), high[0].tolist()))


class ItemwiseMyerson(Mechanism):
    """A second-price auction with reserve ``prices[j]`` for each item ``j`` (additive demand, or k >= items)."""

    applies = staticmethod(takes_every_item)

    def __init__(self, n_agents: int, n_items: int, prices: Sequence[float], demand: str | Demand = "additive",
                 k: KSpec = 1) -> None:
        super().__init__(n_agents, n_items, demand, k)
        if not self.applies(self.demand, n_agents, n_items):
            raise ValueError(f"itemwise_myerson sells every item on its own, which needs each bidder free to take any "
                             f"subset of the items: {self.demand.description} is not (use demand=additive)")
        self.prices = check_prices(prices, n_items, "itemwise_myerson (one reserve per item)")
        self.name = "second price per item, reserves " + ", ".join(f"{p:.4f}" for p in self.prices)

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, items)`` and payment ``(batch, agents)``; neither requires grad."""
        allocation, payment = second_price(bids, torch.tensor(self.prices, dtype=torch.float64))
        return allocation, payment.sum(-1)
