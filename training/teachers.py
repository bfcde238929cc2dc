"""The warm start's teachers: a baseline name -> a fitted truthful mechanism (issue 16, part 2).

:func:`resolve_teacher` is the one place that maps ``init=<name>`` to a mechanism.  The baselines come
from :mod:`mechanisms.baselines` (``fit_baseline``, ``best_baseline``; branch ``baselines``).  Until that
module exists, a stand-in with the same API serves the settings whose optimal or truthful mechanism the
project already has (:func:`_standin_fit_baseline`): then plugging in the real baselines is deleting the
``except ImportError`` fallback.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from torch import nn

from mechanisms.demand import Demand
from mechanisms.optimal import free_and_priced, posted_price
from mechanisms.vcg import VCG

__all__ = ["INITS", "StandinBaseline", "resolve_teacher"]

INITS = ("none", "posted_price", "vcg_reserve", "pay_to_choose", "best")
"""The values of ``init``: ``none`` (no warm start), a baseline's name, or ``best`` (the best baseline)."""


class StandinBaseline(NamedTuple):
    """The stand-in's :class:`mechanisms.baselines.FittedBaseline` (the fields the warm start reads)."""

    name: str
    mechanism: nn.Module
    revenue: float


def _standin_fit_baseline(name: str, agents: int, items: int, demand: Demand, low: float = 0.0, high: float = 1.0,
                          **_: object) -> StandinBaseline:
    """Closed-form stand-ins: the posted prices of 1x2 unit (Pavlov) and exactly-one (Kash-Frongillo), VCG
    without reserve for ``vcg_reserve``; ``ValueError`` for anything else (it needs mechanisms.baselines)."""
    one_by_two = agents == 1 and items == 2 and low == 0.0 and demand.k == 1
    if name == "posted_price" and one_by_two and demand.name in ("unit", "exactly_k"):
        menu = posted_price(high) if demand.name == "unit" else free_and_priced(high)
        return StandinBaseline(name, menu, menu.expected_revenue)
    if name == "vcg_reserve":
        return StandinBaseline(name, VCG(agents, items, demand.name, demand.k), float("nan"))
    raise ValueError(
        f"init={name} for {agents}x{items} {demand.name} needs mechanisms.baselines (branch baselines); "
        "without it: init=posted_price (1x2 unit or exactly-one) or init=vcg_reserve"
    )


def _standin_best_baseline(agents: int, items: int, demand: Demand, low: float = 0.0, high: float = 1.0,
                           **kwargs: object) -> StandinBaseline:
    return _standin_fit_baseline("posted_price", agents, items, demand, low, high, **kwargs)


try:
    from mechanisms.baselines import best_baseline, fit_baseline
except ImportError:  # until branch baselines lands
    fit_baseline: Callable[..., StandinBaseline] = _standin_fit_baseline  # type: ignore[no-redef]
    best_baseline: Callable[..., StandinBaseline] = _standin_best_baseline  # type: ignore[no-redef]


def resolve_teacher(name: str, agents: int, items: int, demand: Demand, low: float, high: float, seed: int = 0) -> StandinBaseline:
    """The fitted baseline ``init=name`` stands for (its ``mechanism``: bids -> allocation, payment)."""
    if name not in INITS or name == "none":
        raise ValueError(f"init must be one of {', '.join(INITS)} (none: no teacher), got {name!r}")
    if name == "best":
        return best_baseline(agents, items, demand, low, high, seed=seed)
    return fit_baseline(name, agents, items, demand, low, high, seed=seed)
