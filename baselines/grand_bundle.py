"""Grand-bundle pricing: all items sold together, by a second-price auction with a reserve on the bundle.

The highest sum of a bidder's item values wins every item if it reaches the reserve and pays
``max(reserve, highest other sum)``: a second-price auction on the sums, so dominant-strategy truthful and
individually rational.  For values i.i.d. U[0, 1] the sums are Irwin-Hall distributed (regular), and
:func:`uniform_bundle_revenue` integrates Myerson's revenue formula numerically (docs/baselines.md).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from scipy import integrate, optimize
from torch import Tensor

from mechanisms.base import Mechanism
from baselines.itemwise_myerson import takes_every_item
from baselines.posted_price import check_prices
from mechanisms.demand import Demand, KSpec
from mechanisms.second_price import second_price

__all__ = ["GrandBundle", "uniform_bundle_optimum", "uniform_bundle_revenue"]


def _irwin_hall(s: float, items: int, derivative: int) -> float:
    """CDF (``derivative=0``) or density (``1``) at ``s`` of the sum of ``items`` U[0, 1] values."""
    power = items - derivative
    terms = sum((-1) ** k * math.comb(items, k) * (s - k) ** power for k in range(math.floor(s) + 1))
    return terms / math.factorial(power)


def uniform_bundle_revenue(agents: int, items: int, reserve: float) -> float:
    """Expected revenue of :class:`GrandBundle` with ``reserve`` for ``agents`` x ``items`` values i.i.d. U[0, 1]
    (numerical quadrature of Myerson's formula, absolute error about 1e-10)."""
    def integrand(s: float) -> float:
        cdf = _irwin_hall(s, items, 0)
        return (s * _irwin_hall(s, items, 1) - (1 - cdf)) * cdf ** (agents - 1)

    low = min(max(reserve, 0.0), float(items))
    return agents * integrate.quad(integrand, low, items, points=list(range(1, items)), limit=200)[0]


def uniform_bundle_optimum(agents: int, items: int) -> tuple[float, float]:
    """``(reserve, revenue)`` of the best :class:`GrandBundle` for values i.i.d. U[0, 1] (bounded scalar search)."""
    best = optimize.minimize_scalar(lambda r: -uniform_bundle_revenue(agents, items, r), bounds=(0, items),
                                    method="bounded", options={"xatol": 1e-8})
    return float(best.x), float(-best.fun)


class GrandBundle(Mechanism):
    """The bundle of every item sold by a second-price auction with reserve ``prices[0]`` (additive, or k >= items)."""

    applies = staticmethod(takes_every_item)

    def __init__(self, n_agents: int, n_items: int, prices: Sequence[float], demand: str | Demand = "additive",
                 k: KSpec = 1) -> None:
        super().__init__(n_agents, n_items, demand, k)
        if not self.applies(self.demand, n_agents, n_items):
            raise ValueError(f"grand_bundle sells every item to one bidder, which needs each bidder free to take "
                             f"all of them or none: {self.demand.description} is not (use demand=additive)")
        (self.reserve,) = self.prices = check_prices(prices, 1, "grand_bundle (the bundle's reserve)")
        self.name = f"grand bundle, second price with reserve {self.reserve:.4f}"

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, items)`` (the winner gets every item) and payment ``(batch, agents)``."""
        won, payment = second_price(bids.sum(-1, keepdim=True), torch.tensor([self.reserve], dtype=torch.float64))
        return won.expand(-1, -1, self.n_items).contiguous(), payment[..., 0]
