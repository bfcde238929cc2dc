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
from distributions import Setting

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


def baseline_revenues(valuations: Tensor, setting: Setting, *, samples: int = BASELINE_SAMPLES,
                      batch_size: int = 65536) -> dict[str, BaselineRevenue]:
    """Every baseline applicable to ``setting``, fitted with ``samples`` profiles of its distribution, measured on
    ``valuations`` ``(samples, agents, items)`` in chunks of ``batch_size`` profiles."""
    values = valuations.detach().cpu().double()
    found = {}
    for name in applicable_baselines(setting.agents, setting.items, setting.demand):
        fitted = fit_baseline(name, setting, samples=samples)
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
