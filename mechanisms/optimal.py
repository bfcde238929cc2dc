"""Known revenue-optimal mechanisms for valuations i.i.d. U[0, high], with closed-form revenues.

* :func:`posted_price` - one bidder, two items, unit demand: each item at
  ``high / sqrt(3)`` (Pavlov 2011).  Revenue ``p (1 - p^2)`` at
  ``p = 1/sqrt(3)``: ``2 / (3 sqrt 3) = 0.3849``.
* :func:`free_and_priced` - one bidder, two items, exactly-one demand: item 0
  free, item 1 at ``high / 3`` (Kash and Frongillo 2016).  The bidder takes
  item 1 iff ``v1 - v0 >= 1/3``, a triangle of area ``(2/3)^2 / 2 = 2/9``, so
  the revenue is ``1/3 * 2/9 = 2/27 = 0.0741`` (``p (1 - p)^2 / 2`` is maximal
  at ``p = 1/3``; by symmetry either item may be the free one).
* :func:`manelli_vincent` - one bidder, two additive items: each item at
  ``2/3``, the bundle at ``(4 - sqrt 2) / 3``.  With ``c = (2 - sqrt 2) / 3``
  the bidder buys item j alone on ``v_j >= 2/3, v_other <= c`` (area ``c/3``
  each) and the bundle on ``v0, v1 >= c, v0 + v1 >= (4 - sqrt 2) / 3`` (area
  ``(1 - c)^2 - (2/3 - c)^2 / 2``): revenue ``4/9 + 2 sqrt 2 / 27 = 0.5492``.
* :class:`Myerson` - one item, ``n`` bidders: second price with reserve
  ``high / 2``.  Revenue ``E[max_i (2 v_i - 1)^+] = int_{1/2}^1 (2v - 1) n v^(n-1) dv
  = (n - 1 + 2^-n) / (n + 1)`` (1/4 for one bidder, 5/12 for two).

All revenues scale linearly with ``high`` (prices are multiples of ``high``).
The single-bidder mechanisms are menus (:class:`MenuMechanism`): the bidder
gets the menu entry that maximizes its reported utility.  The outputs never
require grad (the mechanisms are piecewise constant in the bids).

Each optimum declares the settings it is optimal for by what the demand
allows (:data:`KNOWN_OPTIMA`, :meth:`KnownOptimum.optimal_for`), not by the
demand's name: Myerson wherever one item may stay unsold, the posted price
for one bidder who may take at most one of two items, and so on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from mechanisms.base import Mechanism
from mechanisms.demand import Demand, KSpec
from mechanisms.second_price import second_price

__all__ = [
    "KNOWN_OPTIMA",
    "KnownOptimum",
    "MenuMechanism",
    "Myerson",
    "free_and_priced",
    "free_and_priced_revenue",
    "known_optimum",
    "manelli_vincent",
    "manelli_vincent_revenue",
    "myerson_revenue",
    "posted_price",
    "posted_price_revenue",
]


def _check_high(high: float) -> None:
    if isinstance(high, bool) or not isinstance(high, (int, float)) or not (math.isfinite(high) and high > 0):
        raise ValueError(f"high (the top of the value range U[0, high]) must be a positive finite number, got {high!r}")


def posted_price_revenue(high: float = 1.0) -> float:
    """Expected revenue ``2 high / (3 sqrt 3)`` of :func:`posted_price` for values U[0, high]^2."""
    return high * 2.0 / (3.0 * math.sqrt(3.0))


def free_and_priced_revenue(high: float = 1.0) -> float:
    """Expected revenue ``2 high / 27`` of :func:`free_and_priced` for values U[0, high]^2."""
    return high * 2.0 / 27.0


def manelli_vincent_revenue(high: float = 1.0) -> float:
    """Expected revenue ``high (4/9 + 2 sqrt 2 / 27)`` of :func:`manelli_vincent` for values U[0, high]^2."""
    return high * (4.0 / 9.0 + 2.0 * math.sqrt(2.0) / 27.0)


def myerson_revenue(n_agents: int, high: float = 1.0) -> float:
    """Expected revenue ``high (n - 1 + 2^-n) / (n + 1)`` of :class:`Myerson` with ``n`` bidders U[0, high]."""
    return high * (n_agents - 1 + 2.0**-n_agents) / (n_agents + 1)


class MenuMechanism(Mechanism):
    """A single-bidder mechanism that sells the utility-maximizing entry of a fixed menu.

    ``allocations`` is ``(entries, items)`` (each row feasible for the
    demand), ``prices`` is ``(entries,)``; a zero-price entry is what the
    bidder gets by "not buying" (add an all-zero row for free disposal).
    Ties go to the more expensive entry, then to the earlier one.
    ``expected_revenue`` is the closed-form revenue for the intended value
    distribution (documented by the constructor function).
    """

    def __init__(
        self,
        allocations: Sequence[Sequence[float]],
        prices: Sequence[float],
        demand: str | Demand,
        k: KSpec = 1,
        *,
        expected_revenue: float,
        name: str,
    ) -> None:
        menu = torch.as_tensor(allocations, dtype=torch.float64)
        cost = torch.as_tensor(prices, dtype=torch.float64)
        if menu.dim() != 2 or cost.shape != (menu.shape[0],) or menu.shape[0] == 0:
            raise ValueError(f"menu needs allocations (entries, items) and prices (entries,), got "
                             f"{tuple(menu.shape)} and {tuple(cost.shape)}")
        super().__init__(1, menu.shape[1], demand, k)
        if (self.demand.violation(menu.unsqueeze(1)) > 0).any():
            raise ValueError(f"every menu allocation must lie in [0, 1] and be feasible for {self.demand}")
        order = torch.sort(-cost, stable=True).indices  # most expensive first: argmax then prefers it
        self.register_buffer("menu", menu[order])
        self.register_buffer("prices", cost[order])
        self.expected_revenue = expected_revenue
        self.name = name

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, 1, items)`` and payment ``(batch, 1)`` of the chosen menu entries."""
        bids = bids.detach()
        menu = self.menu.to(bids.device, bids.dtype)
        prices = self.prices.to(bids.device, bids.dtype)
        choice = (bids[:, 0] @ menu.T - prices).argmax(-1)  # first maximal entry
        return menu[choice].unsqueeze(1), prices[choice].unsqueeze(1)


def posted_price(high: float = 1.0, demand: str | Demand = "unit", k: KSpec = 1) -> MenuMechanism:
    """Optimal unit-demand auction, one bidder, two items U[0, high]: each item at ``high / sqrt(3)``."""
    _check_high(high)
    price = high / math.sqrt(3.0)
    return MenuMechanism(
        [[0, 0], [1, 0], [0, 1]], [0.0, price, price], demand, k,
        expected_revenue=posted_price_revenue(high), name="posted price 1/sqrt(3) per item (Pavlov 2011)",
    )


def free_and_priced(high: float = 1.0, demand: str | Demand = "exactly_k", k: KSpec = 1) -> MenuMechanism:
    """Optimal exactly-one-demand auction, one bidder, two items U[0, high]: item 0 free, item 1 at ``high / 3``.

    Expected revenue ``2 high / 27 = 0.0741 high`` (see the module docstring).
    The paper's Table 1 lists 0.069 for this setting; no price ``p`` of this
    menu earns that at its optimum (``max_p p (1 - p)^2 / 2 = 2/27``), so we
    report 2/27.  The gap (0.005) is about one standard error of a Monte Carlo
    estimate on ~1000 samples (per-sample std 0.139), which may explain it.
    """
    _check_high(high)
    return MenuMechanism(
        [[1, 0], [0, 1]], [0.0, high / 3.0], demand, k,
        expected_revenue=free_and_priced_revenue(high), name="item 0 free, item 1 at 1/3 (Kash and Frongillo 2016)",
    )


def manelli_vincent(high: float = 1.0, demand: str | Demand = "additive", k: KSpec = 2) -> MenuMechanism:
    """Optimal additive auction, one bidder, two items U[0, high]: items at ``2/3``, bundle at ``(4 - sqrt 2)/3``."""
    _check_high(high)
    item, bundle = 2.0 * high / 3.0, high * (4.0 - math.sqrt(2.0)) / 3.0
    return MenuMechanism(
        [[0, 0], [1, 0], [0, 1], [1, 1]], [0.0, item, item, bundle], demand, k,
        expected_revenue=manelli_vincent_revenue(high),
        name="items at 2/3, bundle at (4 - sqrt 2)/3 (Manelli and Vincent 2006)",
    )


class Myerson(Mechanism):
    """Optimal single-item auction for ``n`` bidders U[0, high]: second price with reserve ``high / 2``.

    ``forward(bids)`` maps bids ``(batch, agents, 1)`` to the allocation
    ``(batch, agents, 1)`` and payment ``(batch, agents)``: the highest bidder
    (lowest index on ties) wins if its bid is at least the reserve and pays
    ``max(reserve, highest other bid)``.  ``expected_revenue`` is
    :func:`myerson_revenue`.
    """

    def __init__(self, n_agents: int, high: float = 1.0, demand: str | Demand = "unit", k: KSpec = 1) -> None:
        super().__init__(n_agents, 1, demand, k)
        if not self.demand.free_disposal(n_agents, 1):
            raise ValueError(f"Myerson needs free disposal: {self.demand.description} forces the item onto a bidder")
        _check_high(high)
        self.reserve = high / 2.0
        self.expected_revenue = myerson_revenue(n_agents, high)
        self.name = "second price with reserve 1/2 (Myerson 1981)"

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, 1)`` and payment ``(batch, agents)``; neither requires grad."""
        allocation, payment = second_price(bids, torch.tensor([self.reserve], dtype=torch.float64))
        return allocation, payment[..., 0]


@dataclass(frozen=True)
class KnownOptimum:
    """A revenue-optimal mechanism for valuations i.i.d. U[0, high] and the settings it is optimal for.

    ``optimal_for(demand, agents, items)`` says whether it is optimal there, from what the demand allows;
    ``build(demand, agents, high)`` makes it.
    """

    optimal_for: Callable[[Demand, int, int], bool]
    build: Callable[[Demand, int, float], Mechanism]


def _one_of_two(demand: Demand, agents: int, items: int) -> bool:
    """One bidder, two items, and it may receive at most one."""
    return (agents, items) == (1, 2) and demand.capacities(agents, items) == [1]


def _any_of_two(demand: Demand, agents: int, items: int) -> bool:
    """One bidder, two items, it may receive both or none (the additive setting)."""
    return (agents, items) == (1, 2) and demand.capacities(agents, items)[0] >= 2 and demand.free_disposal(agents, items)


KNOWN_OPTIMA: tuple[KnownOptimum, ...] = (
    KnownOptimum(  # Myerson: one item that may stay unsold
        lambda demand, agents, items: items == 1 and demand.free_disposal(agents, items),
        lambda demand, agents, high: Myerson(agents, high, demand),
    ),
    KnownOptimum(  # Pavlov: at most one of two items, or none
        lambda demand, agents, items: _one_of_two(demand, agents, items) and demand.free_disposal(agents, items),
        lambda demand, agents, high: posted_price(high, demand),
    ),
    KnownOptimum(  # Kash and Frongillo: exactly one of two items
        lambda demand, agents, items: _one_of_two(demand, agents, items) and demand.fixed_totals(agents, items),
        lambda demand, agents, high: free_and_priced(high, demand),
    ),
    KnownOptimum(  # Manelli and Vincent: any subset of two items
        _any_of_two, lambda demand, agents, high: manelli_vincent(high, demand),
    ),
)
"""The known optima, each with the settings it is optimal for (at most one applies to a setting)."""


def known_optimum(demand: Demand, agents: int, items: int, high: float = 1.0) -> Mechanism | None:
    """The known revenue-optimal mechanism of :data:`KNOWN_OPTIMA` for ``agents`` x ``items`` U[0, high], or ``None``."""
    for optimum in KNOWN_OPTIMA:
        if optimum.optimal_for(demand, agents, items):
            return optimum.build(demand, agents, high)
    return None
