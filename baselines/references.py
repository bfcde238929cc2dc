"""Reference revenues for a setting: the known optimum, where there is one, VCG, and the truthful baselines.

For valuations from a :class:`distributions.ValuationDistribution` (default
i.i.d. U[low, high], U[0, 1]) :func:`references` gives
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

from distributions import Uniform, ValuationDistribution
from baselines import applicable_baselines, fit_baseline
from utils.checks import check_positive_int
from mechanisms.base import Mechanism
from mechanisms.demand import Demand, KSpec
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


def _check_range(low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"value range needs finite low < high, got low={low!r}, high={high!r}")


def _distribution(agents: int, items: int, low: float, high: float,
                  distribution: ValuationDistribution | None) -> ValuationDistribution:
    """``distribution``, checked against the setting, or i.i.d. U[low, high] without it."""
    if distribution is None:
        _check_range(low, high)
        return Uniform(agents, items, low, high)
    distribution.check_setting(agents, items)
    return distribution


def optimal_mechanism(
    demand: str | Demand = "unit", k: KSpec = 1, agents: int = 1, items: int = 2, low: float = 0.0, high: float = 1.0,
    *, distribution: ValuationDistribution | None = None,
) -> Mechanism | None:
    """The known revenue-optimal mechanism for valuations from ``distribution`` (default i.i.d. U[low, high]), or ``None``.

    ``demand`` is a :class:`~mechanisms.demand.Demand` or a type's name with
    ``k``; each known optimum declares the demands it is optimal for
    (:data:`baselines.optimal.KNOWN_OPTIMA`).  Its ``expected_revenue``
    attribute is the closed-form revenue and ``name`` says what it is and
    where it comes from.
    """
    demand_type = demand if isinstance(demand, Demand) else Demand(demand, k)
    demand_type.capacities(agents, items)  # validates the setting
    values = _distribution(agents, items, low, high, distribution)
    known = values.optimal_mechanism(demand_type)
    if known is not None or not isinstance(values, Uniform) or values.shared_range() is None:
        return known
    low, high = values.shared_range()
    if low != 0:
        return None
    return known_optimum(demand_type, agents, items, high)


@lru_cache(maxsize=None)
def _vcg_revenue(demand: Demand, distribution: ValuationDistribution, samples: int, seed: int) -> tuple[float, float]:
    agents, items = distribution.n_agents, distribution.n_items
    values = distribution.sample(samples, torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.inference_mode():
        revenue = VCG(agents, items, demand)(values)[1].sum(-1)
    stderr = float(revenue.std()) / math.sqrt(samples) if samples > 1 else math.nan
    return float(revenue.mean()), stderr


def vcg_revenue(
    demand: str = "unit",
    k: KSpec = 1,
    agents: int = 1,
    items: int = 2,
    low: float = 0.0,
    high: float = 1.0,
    samples: int = VCG_SAMPLES,
    seed: int = VCG_SEED,
    *,
    distribution: ValuationDistribution | None = None,
) -> tuple[float, float]:
    """VCG's mean revenue per sample and its standard error, over ``samples`` profiles from ``distribution``
    (default U[low, high]; cached)."""
    demand_type = Demand(demand, k)
    demand_type.capacities(agents, items)
    values = _distribution(agents, items, low, high, distribution)
    check_positive_int(samples, "samples")
    return _vcg_revenue(demand_type, values, samples, seed)


def references(
    demand: str = "unit",
    k: KSpec = 1,
    agents: int = 1,
    items: int = 2,
    low: float = 0.0,
    high: float = 1.0,
    samples: int = VCG_SAMPLES,
    seed: int = VCG_SEED,
    *,
    distribution: ValuationDistribution | None = None,
) -> References:
    """Optimal (where known), VCG and baseline revenues for ``agents`` x ``items`` valuations from
    ``distribution`` (default i.i.d. U[low, high]).

    Example: ``references("unit", 1, agents=1, items=2)`` gives
    ``optimal=0.3849`` (posted price), ``vcg=0`` (a lone bidder pays nothing)
    and ``baselines`` posted_price and vcg_reserve at about 0.385.
    """
    values = _distribution(agents, items, low, high, distribution)
    vcg, stderr = vcg_revenue(demand, k, agents, items, samples=samples, seed=seed, distribution=values)
    mechanism = optimal_mechanism(demand, k, agents, items, distribution=values)
    demand_type = Demand(demand, k)
    baselines = {
        name: fit_baseline(name, agents, items, demand_type, samples=samples, seed=seed, distribution=values).revenue
        for name in applicable_baselines(agents, items, demand_type)
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
