"""What :class:`training.AuctionModule` logs: metric names, the reference revenues, TensorBoard's layout."""

from __future__ import annotations

from typing import Any, Mapping

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from baselines import BASELINE_NAMES, BaselineRevenue, applicable_baselines, baseline_revenues, fit_baseline
from distributions import Setting, ValuationDistribution
from baselines.references import references
from mechanisms.sinkhorn import Calibration

__all__ = ["BEST_BASELINE", "TRAINING_KEYS", "add_custom_scalars", "baseline_references_on", "best_baseline_reference",
           "flatten", "log_calibration", "log_training", "reference_revenues"]

BEST_BASELINE = "reference/best_truthful_baseline_revenue"
TRAINING_KEYS = frozenset({"train/revenue", "train/regret_mean_over_agents", "train/regret_sum_over_agents",
                           "train/loss", "train/lr", "lagrangian/rho"})
"""Keys :func:`log_training` logs every step (besides ``lagrangian/lambda_<i>`` and the Sinkhorn layer's)."""


def reference_revenues(mechanism: nn.Module, distribution: ValuationDistribution) -> dict[str, float]:
    """The reference revenues of ``mechanism``'s setting with values from ``distribution``:
    ``reference/<baseline>_revenue`` for every applicable truthful baseline (fitted revenue) and
    :data:`BEST_BASELINE`, the highest; for identically distributed bidders also ``reference/vcg_revenue`` and
    (where known) ``reference/optimal_revenue`` (:func:`baselines.references.references`)."""
    setting = Setting.of(mechanism, distribution)
    refs = _baseline_keys({name: fit_baseline(name, setting).revenue
                           for name in applicable_baselines(setting.agents, setting.items, setting.demand)})
    if not distribution.identical_bidders():
        return refs
    found = references(setting)
    refs["reference/vcg_revenue"] = found.vcg
    if found.optimal is not None:
        refs["reference/optimal_revenue"] = found.optimal
    return refs


def baseline_references_on(mechanism: nn.Module, valuations: Tensor,
                           distribution: ValuationDistribution) -> dict[str, float]:
    """``reference/<baseline>_revenue`` and :data:`BEST_BASELINE` on the test profiles ``(samples, agents, items)``."""
    found: dict[str, BaselineRevenue] = baseline_revenues(valuations, Setting.of(mechanism, distribution))
    return _baseline_keys({name: result.revenue_mean for name, result in found.items()})


def _baseline_keys(revenues: dict[str, float]) -> dict[str, float]:
    refs = {f"reference/{name}_revenue": value for name, value in revenues.items()}
    if revenues:
        refs[BEST_BASELINE] = max(revenues.values())
    return refs


def best_baseline_reference(refs: Mapping[str, Any]) -> tuple[str, float] | None:
    """``(name, revenue)`` of the highest ``reference/<baseline>_revenue`` in ``refs`` (first on ties), or ``None``."""
    found = [(name, refs[key]) for name in BASELINE_NAMES if (key := f"reference/{name}_revenue") in refs]
    return max(found, key=lambda item: item[1]) if found else None


def add_custom_scalars(logger: Any, reference_names: list[str]) -> None:
    """Lay out TensorBoard's Custom Scalars tab (revenue against the references, regret, Lagrangian)."""
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_custom_scalars({"auction": {
            "revenue": ["Multiline", ["train/revenue", "val/revenue", *reference_names]],
            "regret (mean over agents)": ["Multiline", [r"(train|val)/regret_mean_over_agents"]],
            "regret (sum over agents)": ["Multiline", [r"(train|val)/regret_sum_over_agents"]],
            "lagrangian": ["Multiline", [r"lagrangian/.*"]],
        }})


def log_training(module: pl.LightningModule, revenue: Tensor, regrets: Tensor, loss: Tensor, lr: float) -> None:
    """One training step's values: revenue ``(batch,)`` and both regret conventions of regrets ``(batch, agents)``,
    the loss, the learning rate, ``rho`` and every ``lambda_i``, and the Sinkhorn layer's last solve if it has one."""
    per_agent = regrets.detach().mean(0)
    module.log("train/revenue", revenue.detach().mean(), prog_bar=True)
    module.log("train/regret_mean_over_agents", per_agent.mean(), prog_bar=True)
    module.log("train/regret_sum_over_agents", per_agent.sum(), prog_bar=True)
    module.log("train/loss", loss.detach())
    module.log("train/lr", lr)
    module.log("lagrangian/rho", module.rho)
    for agent, value in enumerate(module.lagrange_multipliers):
        module.log(f"lagrangian/lambda_{agent}", value)
    for key, name in (("sinkhorn/iterations", "last_iterations"), ("sinkhorn/marginal_error", "last_marginal_error")):
        value = getattr(module.mechanism, name, None)
        if value is not None:
            module.log(key, float(value))


def log_calibration(module: pl.LightningModule, calibration: Calibration) -> None:
    """The fixed Sinkhorn schedule's size and its marginal error on the calibration profiles (a warning over tol)."""
    settings = module.mechanism.settings
    module.log("sinkhorn/calibrated_iterations", float(sum(calibration.iterations)))
    module.log("sinkhorn/calibrated_marginal_error", calibration.marginal_error)
    if calibration.marginal_error > settings.tol:
        rank_zero_warn(f"fixed Sinkhorn schedule misses tol={settings.tol:g} (error {calibration.marginal_error:.3g}) "
                       f"at max_iter={settings.max_iter}")


def flatten(results: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The numbers of a flat results dict as ``prefix + key``, lists expanded as ``key_<index>``."""
    flat: dict[str, float] = {}
    for key, value in results.items():
        if isinstance(value, (list, tuple)):
            flat.update({f"{prefix}{key}_{i}": float(v) for i, v in enumerate(value)})
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat
