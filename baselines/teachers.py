"""The warm start's teachers: a baseline name -> a fitted truthful mechanism (issue 16, part 2).

:func:`resolve_teacher` is the one place that maps ``init=<name>`` to a mechanism: the baselines of
:mod:`baselines` (``fit_baseline``, ``best_baseline``; prices fitted on their own seeded samples).
"""

from __future__ import annotations

from baselines import FittedBaseline, applicable_baselines, best_baseline, fit_baseline
from distributions import Setting
from mechanisms.demand import Demand

__all__ = ["INITS", "check_teacher", "resolve_teacher"]

INITS = ("none", "posted_price", "vcg_reserve", "pay_to_choose", "best")
"""The values of ``init``: ``none`` (no warm start), a baseline's name, or ``best`` (the best baseline)."""


def check_teacher(name: str, agents: int, items: int, demand: Demand) -> None:
    """One-line ``ValueError`` unless ``init=name`` has a teacher for the setting (before any fitting): a known
    name, and a baseline that applies to the demand (``best``: any)."""
    if name not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)} (none: no teacher), got {name!r}")
    if name == "none":
        return
    applicable = applicable_baselines(agents, items, demand)
    if name == "best" and not applicable:
        raise ValueError(f"init=best: no truthful baseline applies to {agents}x{items} {demand.name} demand; use init=none")
    if name != "best" and name not in applicable:
        raise ValueError(f"init={name} does not apply to {agents}x{items} {demand.name} demand; "
                         f"use init={' or init='.join((*applicable, 'none'))}")


def resolve_teacher(name: str, setting: Setting, seed: int = 0) -> FittedBaseline:
    """The fitted baseline ``init=name`` stands for (its ``mechanism``: bids -> allocation, payment), fitted to
    values from ``setting``'s distribution."""
    if name not in INITS or name == "none":
        raise ValueError(f"init must be one of {', '.join(INITS)} (none: no teacher), got {name!r}")
    return best_baseline(setting, seed=seed) if name == "best" else fit_baseline(name, setting, seed=seed)
