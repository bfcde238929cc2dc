"""Grand-bundle pricing: all items sold together, by a second-price auction with a reserve on the bundle.

Each bidder's value for the bundle is the sum of its item values (additive
values); the highest sum wins every item if it is at least the reserve and
pays ``max(reserve, highest other sum)``.  With one bidder this is a posted
price for the bundle.  Reporting the true sum is a dominant strategy of a
second-price auction, and a bidder's report moves only its sum, so the
mechanism is dominant-strategy truthful and individually rational.

For values i.i.d. U[0, 1] a bidder's sum is Irwin-Hall distributed (CDF ``G``,
density ``g``, regular), and :func:`uniform_bundle_revenue` integrates Myerson's
revenue formula ``n int_r^m (s g(s) - (1 - G(s))) G(s)^(n-1) ds`` numerically;
:func:`uniform_bundle_optimum` maximizes it over the reserve (which, the sums being
regular, does not depend on the number of bidders).  One bidder, two items: the
sum has ``P(v0 + v1 >= p) = 1 - p^2 / 2`` for ``p <= 1``, so the revenue
``p (1 - p^2 / 2)`` peaks at ``p = sqrt(2/3)`` at ``(2/3) sqrt(2/3) = 0.5443``
(the optimum, Manelli-Vincent, earns 0.5492).
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
    """The bundle of every item sold by a second-price auction with reserve ``prices[0]`` (additive, or k >= items).

    ``forward(bids)`` maps bids ``(batch, agents, items)`` to a 0/1 allocation
    ``(batch, agents, items)`` (the winner gets every item) and payments ``(batch, agents)``; no grad.
    """

    def __init__(self, n_agents: int, n_items: int, prices: Sequence[float], demand: str | Demand = "additive", k: KSpec = 1) -> None:
        super().__init__(n_agents, n_items, demand, k)
        if not self.applies(self.demand, n_agents, n_items):
            raise ValueError(f"grand_bundle sells every item to one bidder, which needs each bidder free to take "
                             f"all of them or none: {self.demand.description} is not (use demand=additive)")
        (self.reserve,) = self.prices = check_prices(prices, 1, "grand_bundle (the bundle's reserve)")
        self.name = f"grand bundle, second price with reserve {self.reserve:.4f}"

    @staticmethod
    def applies(demand: Demand, n_agents: int, n_items: int) -> bool:
        """Whether every bidder may take any subset of the items (:func:`takes_every_item`)."""
        return takes_every_item(demand, n_agents, n_items)

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, items)`` and payment ``(batch, agents)``; neither requires grad."""
        won, payment = second_price(bids.sum(-1, keepdim=True), torch.tensor([self.reserve], dtype=torch.float64))
        return won.expand(-1, -1, self.n_items).contiguous(), payment[..., 0]
