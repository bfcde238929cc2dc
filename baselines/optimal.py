"""Known revenue-optimal mechanisms for valuations i.i.d. U[0, high], with closed-form revenues (docs/baselines.md).

:func:`posted_price` (Pavlov 2011: one bidder, two items, unit demand), :func:`free_and_priced` (Kash and
Frongillo 2016: exactly-one demand), :func:`manelli_vincent` (Manelli and Vincent 2006: additive) and
:class:`Myerson` (one item, ``n`` bidders).  Revenues scale linearly with ``high``.  The single-bidder ones are
menus (:class:`MenuMechanism`).  Each optimum declares the settings it is optimal for by what the demand allows
(:data:`KNOWN_OPTIMA`), not by the demand's name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from mechanisms.base import Mechanism
from mechanisms.demand import Demand, KSpec
from mechanisms.menu import MenuMechanism, Myerson, check_high, myerson_revenue

__all__ = ["KNOWN_OPTIMA", "KnownOptimum", "MenuMechanism", "Myerson", "free_and_priced", "free_and_priced_revenue",
           "known_optimum", "manelli_vincent", "manelli_vincent_revenue", "myerson_revenue", "posted_price",
           "posted_price_revenue"]


def posted_price_revenue(high: float = 1.0) -> float:
    """Expected revenue ``2 high / (3 sqrt 3)`` of :func:`posted_price` for values U[0, high]^2."""
    return high * 2.0 / (3.0 * math.sqrt(3.0))


def free_and_priced_revenue(high: float = 1.0) -> float:
    """Expected revenue ``2 high / 27`` of :func:`free_and_priced` for values U[0, high]^2."""
    return high * 2.0 / 27.0


def manelli_vincent_revenue(high: float = 1.0) -> float:
    """Expected revenue ``high (4/9 + 2 sqrt 2 / 27)`` of :func:`manelli_vincent` for values U[0, high]^2."""
    return high * (4.0 / 9.0 + 2.0 * math.sqrt(2.0) / 27.0)


def posted_price(high: float = 1.0, demand: str | Demand = "unit", k: KSpec = 1) -> MenuMechanism:
    """Optimal unit-demand auction, one bidder, two items U[0, high]: each item at ``high / sqrt(3)``."""
    check_high(high)
    price = high / math.sqrt(3.0)
    name = "posted price 1/sqrt(3) per item (Pavlov 2011)"
    return MenuMechanism([[0, 0], [1, 0], [0, 1]], [0.0, price, price], demand, k,
                         expected_revenue=posted_price_revenue(high), name=name)


def free_and_priced(high: float = 1.0, demand: str | Demand = "exactly_k", k: KSpec = 1) -> MenuMechanism:
    """Optimal exactly-one-demand auction, one bidder, two items U[0, high]: item 0 free, item 1 at ``high / 3``
    (revenue 2/27, not the paper's 0.069: docs/baselines.md, "Differences from the paper's tables")."""
    check_high(high)
    return MenuMechanism([[1, 0], [0, 1]], [0.0, high / 3.0], demand, k, expected_revenue=free_and_priced_revenue(high),
                         name="item 0 free, item 1 at 1/3 (Kash and Frongillo 2016)")


def manelli_vincent(high: float = 1.0, demand: str | Demand = "additive", k: KSpec = 2) -> MenuMechanism:
    """Optimal additive auction, one bidder, two items U[0, high]: items at ``2/3``, bundle at ``(4 - sqrt 2)/3``."""
    check_high(high)
    item, bundle = 2.0 * high / 3.0, high * (4.0 - math.sqrt(2.0)) / 3.0
    return MenuMechanism([[0, 0], [1, 0], [0, 1], [1, 1]], [0.0, item, item, bundle], demand, k,
                         expected_revenue=manelli_vincent_revenue(high),
                         name="items at 2/3, bundle at (4 - sqrt 2)/3 (Manelli and Vincent 2006)")


@dataclass(frozen=True)
class KnownOptimum:
    """A revenue-optimal mechanism for valuations i.i.d. U[0, high]: ``optimal_for(demand, agents, items)`` says
    where, from what the demand allows; ``build(demand, agents, high)`` makes it."""

    optimal_for: Callable[[Demand, int, int], bool]
    build: Callable[[Demand, int, float], Mechanism]


def _one_of_two(demand: Demand, agents: int, items: int) -> bool:
    """One bidder, two items, and it may receive at most one."""
    return (agents, items) == (1, 2) and demand.capacities(agents, items) == [1]


def _any_of_two(demand: Demand, agents: int, items: int) -> bool:
    """One bidder, two items, it may receive both or none (the additive setting)."""
    return ((agents, items) == (1, 2) and demand.capacities(agents, items)[0] >= 2
            and demand.free_disposal(agents, items))


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
    """The known optimal mechanism of :data:`KNOWN_OPTIMA` for ``agents`` x ``items`` U[0, high], or ``None``."""
    for optimum in KNOWN_OPTIMA:
        if optimum.optimal_for(demand, agents, items):
            return optimum.build(demand, agents, high)
    return None
