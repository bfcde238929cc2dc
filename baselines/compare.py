"""The fitted baselines' revenue on given profiles: what a learned mechanism is compared against.

:func:`baseline_revenues` fits (or takes from the cache) every baseline that
applies to the profiles' setting and measures its revenue on the very same
profiles; :func:`best_truthful_baseline` picks the highest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from baselines.fit import BASELINE_SAMPLES, FittedBaseline, applicable_baselines, fit_baseline
from distributions import ValuationDistribution
from utils.checks import Bounds
from mechanisms.demand import Demand

__all__ = ["BaselineRevenue", "baseline_revenues", "best_truthful_baseline"]


@dataclass(frozen=True)
class BaselineRevenue:
    """A fitted baseline's revenue on given profiles: ``revenue`` ``(samples,)`` (float64, sum over agents, per
    profile, for paired comparisons), its mean and (population) std."""

    fitted: FittedBaseline
    revenue: Tensor

    @property
    def revenue_mean(self) -> float:
        return self.revenue.mean().item()

    @property
    def revenue_std(self) -> float:
        return self.revenue.std(correction=0).item()

    def to_dict(self) -> dict[str, object]:
        """``revenue_mean``/``_std`` on the profiles, the prices, and the fit's own revenue (JSON-serialisable)."""
        fit = self.fitted.to_dict()
        return {"revenue_mean": self.revenue_mean, "revenue_std": self.revenue_std, "prices": fit["prices"],
                "fitted_revenue": fit["revenue"], "fitted_revenue_stderr": fit["revenue_stderr"], "fitted_samples": fit["samples"]}


def baseline_revenues(
    valuations: Tensor, demand: Demand, low: Bounds = 0.0, high: Bounds = 1.0, *, samples: int = BASELINE_SAMPLES,
    distribution: ValuationDistribution | None = None, batch_size: int = 65536,
) -> dict[str, BaselineRevenue]:
    """Every applicable baseline, fitted with ``samples`` profiles from ``distribution`` (default U[low_i, high_i]),
    measured on ``valuations`` ``(samples, agents, items)`` in chunks of ``batch_size`` profiles."""
    _, agents, items = valuations.shape
    values = valuations.detach().cpu().double()
    found = {}
    for name in applicable_baselines(agents, items, demand):
        fitted = fit_baseline(name, agents, items, demand, low, high, samples=samples, distribution=distribution)
        with torch.inference_mode():
            revenue = torch.cat([fitted.mechanism(chunk)[1].sum(-1) for chunk in values.split(batch_size)])
        found[name] = BaselineRevenue(fitted, revenue)
    return found


def best_truthful_baseline(revenues: dict[str, BaselineRevenue]) -> tuple[str, float] | None:
    """``(name, revenue_mean)`` of the highest-earning baseline (first on ties), ``None`` if there is none."""
    if not revenues:
        return None
    name = max(revenues, key=lambda n: revenues[n].revenue_mean)
    return name, revenues[name].revenue_mean
