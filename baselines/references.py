"""Reference revenues for a setting: the known optimum, where there is one, VCG, and the truthful baselines.

For a :class:`distributions.Setting` (bidders, items, demand, values' distribution) :func:`references` gives
the optimal revenue and the name of the mechanism that attains it (the
distribution's own :meth:`~distributions.ValuationDistribution.optimal_mechanism`,
or for i.i.d. uniform values the table below, known only
for ``low == 0``: see :mod:`baselines.optimal`), a Monte Carlo estimate of
VCG's revenue with its standard error, from a fixed seed and sample count and
cached in-process, and the fitted revenue of every applicable truthful
baseline (:mod:`baselines`) with the best of them.  :func:`optimal_mechanism` returns the optimal mechanism
itself.  Training logs these as reference lines.

Known optima (``low = 0``):

=================================  ===============================  ================
setting                            mechanism                        revenue / high
=================================  ===============================  ================
1 agent, 2 items, unit (k = 1)     posted price 1/sqrt(3)           0.3849
1 agent, 2 items, exactly_k k = 1  item 0 free, item 1 at 1/3       0.0741
1 agent, 2 items, additive (k>=2)  Manelli-Vincent                  0.5492
n agents, 1 item, free disposal    Myerson, reserve 1/2             (n-1+2^-n)/(n+1)
=================================  ===============================  ================
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
    """Reference revenues (summed over agents, per sample) for one setting.

    ``optimal`` is ``None`` where no optimal mechanism is known, and then so
    is ``optimal_name``.  ``vcg`` is a Monte Carlo mean over ``vcg_samples``
    valuation profiles with standard error ``vcg_stderr``.  ``baselines``
    maps every applicable truthful baseline to its fitted revenue
    (:func:`baselines.fit_baseline` with ``vcg_samples`` profiles);
    ``best_baseline`` names the highest (``None`` if none applies) and
    ``best_baseline_revenue`` is its revenue.
    """

    optimal: float | None
    optimal_name: str | None
    vcg: float
    vcg_stderr: float
    vcg_samples: int
    baselines: dict[str, float]
    best_baseline: str | None
    best_baseline_revenue: float | None


def optimal_mechanism(setting: Setting) -> Mechanism | None:
    """The known revenue-optimal mechanism for ``setting``, or ``None``.

    Each known optimum declares the demands it is optimal for
    (:data:`baselines.optimal.KNOWN_OPTIMA`).  Its ``expected_revenue``
    attribute is the closed-form revenue and ``name`` says what it is and
    where it comes from.
    """
    values = setting.distribution
    known = values.optimal_mechanism(setting.demand)
    if known is not None or not isinstance(values, Uniform) or values.shared_range() is None:
        return known
    low, high = values.shared_range()
    if low != 0:
        return None
    return known_optimum(setting.demand, setting.agents, setting.items, high)


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
    """Optimal (where known), VCG and baseline revenues for ``setting``.

    Example: ``references(Setting.uniform(1, 2, "unit"))`` gives
    ``optimal=0.3849`` (posted price), ``vcg=0`` (a lone bidder pays nothing)
    and ``baselines`` posted_price and vcg_reserve at about 0.385.
    """
    vcg, stderr = vcg_revenue(setting, samples, seed)
    mechanism = optimal_mechanism(setting)
    baselines = {
        name: fit_baseline(name, setting, samples=samples, seed=seed).revenue
        for name in applicable_baselines(setting.agents, setting.items, setting.demand)
    }
    best = max(baselines, key=baselines.__getitem__) if baselines else None
    return References(
        optimal=None if mechanism is None else mechanism.expected_revenue,
        optimal_name=None if mechanism is None else mechanism.name,
        vcg=vcg,
        vcg_stderr=stderr,
        vcg_samples=samples,
        baselines=baselines,
        best_baseline=best,
        best_baseline_revenue=None if best is None else baselines[best],
    )
