"""Reference revenues for a setting: the known optimum, where there is one, VCG, and the truthful baselines.

:func:`references` gives the optimal revenue and the mechanism that attains it (the distribution's own
:meth:`~distributions.ValuationDistribution.optimal_mechanism`, or for i.i.d. U[0, high] values
:mod:`baselines.optimal`), VCG's Monte Carlo revenue with its standard error (seeded, cached in-process) and the
fitted revenue of every applicable truthful baseline.  Training logs these as reference lines (docs/baselines.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from distributions import Setting, Uniform
from baselines import applicable_baselines, fit_baseline
from utils.checks import check_positive_int
from mechanisms.base import Mechanism
from baselines.optimal import known_optimum
from baselines.vcg import VCG

__all__ = ["References", "VCG_SAMPLES", "VCG_SEED", "optimal_mechanism", "references", "vcg_revenue"]

VCG_SAMPLES = 10_000
VCG_SEED = 0


@dataclass(frozen=True)
class References:
    """Reference revenues (summed over agents, per sample) for one setting: the optimum and its name (``None``
    where none is known), VCG's Monte Carlo mean over ``vcg_samples`` profiles and its standard error, every
    applicable baseline's fitted revenue (on ``vcg_samples`` profiles) and the best (``None`` if none applies)."""

    optimal: float | None
    optimal_name: str | None
    vcg: float
    vcg_stderr: float
    vcg_samples: int
    baselines: dict[str, float]
    best_baseline: str | None
    best_baseline_revenue: float | None


def optimal_mechanism(setting: Setting) -> Mechanism | None:
    """The known revenue-optimal mechanism for ``setting`` (``expected_revenue``: its closed form), or ``None``."""
    values = setting.distribution
    known = values.optimal_mechanism(setting.demand)
    if known is not None or not isinstance(values, Uniform) or values.shared_range() is None:
        return known
    low, high = values.shared_range()
    return known_optimum(setting.demand, setting.agents, setting.items, high) if low == 0 else None


@lru_cache(maxsize=None)
def _vcg_revenue(setting: Setting, samples: int, seed: int) -> tuple[float, float]:
    values = setting.sample(samples, torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.inference_mode():
        revenue = VCG(setting.agents, setting.items, setting.demand)(values)[1].sum(-1)
    stderr = float(revenue.std()) / math.sqrt(samples) if samples > 1 else math.nan
    return float(revenue.mean()), stderr


def vcg_revenue(setting: Setting, samples: int = VCG_SAMPLES, seed: int = VCG_SEED) -> tuple[float, float]:
    """VCG's mean revenue per sample and its standard error, over ``samples`` profiles of ``setting`` (cached)."""
    check_positive_int(samples, "samples")
    return _vcg_revenue(setting, samples, seed)


def references(setting: Setting, samples: int = VCG_SAMPLES, seed: int = VCG_SEED) -> References:
    """Optimal (where known), VCG and baseline revenues for ``setting``."""
    vcg, stderr = vcg_revenue(setting, samples, seed)
    mechanism = optimal_mechanism(setting)
    baselines = {name: fit_baseline(name, setting, samples=samples, seed=seed).revenue
                 for name in applicable_baselines(setting.agents, setting.items, setting.demand)}
    best = max(baselines, key=baselines.__getitem__) if baselines else None
    return References(optimal=None if mechanism is None else mechanism.expected_revenue,
                      optimal_name=None if mechanism is None else mechanism.name, vcg=vcg, vcg_stderr=stderr,
                      vcg_samples=samples, baselines=baselines, best_baseline=best,
                      best_baseline_revenue=None if best is None else baselines[best])
