"""What :class:`training.AuctionModule` logs, written once: metric names, the reference revenues, TensorBoard's layout.

Every function takes the LightningModule and calls its ``log``; the module decides when.
"""

from __future__ import annotations

from typing import Any, Mapping

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from mechanisms.references import references
from mechanisms.sinkhorn import Calibration

__all__ = [
    "add_custom_scalars",
    "flatten",
    "log_calibration",
    "log_regret",
    "log_training",
    "reference_revenues",
]


def reference_revenues(mechanism: nn.Module, low: Tensor, high: Tensor) -> dict[str, float]:
    """``reference/vcg_revenue`` and (where known) ``reference/optimal_revenue`` of ``mechanism``'s setting.

    ``low``/``high``: the bidders' value bounds ``(agents, 1)``; empty when the bidders are not
    identically distributed (the references assume i.i.d. bidders).
    """
    if not (bool((low == low[0]).all()) and bool((high == high[0]).all())):
        return {}
    demand = mechanism.demand
    found = references(demand.name, demand.k, mechanism.n_agents, mechanism.n_items, float(low[0]), float(high[0]))
    refs = {"reference/vcg_revenue": found.vcg}
    if found.optimal is not None:
        refs["reference/optimal_revenue"] = found.optimal
    return refs


def add_custom_scalars(logger: Any, reference_names: list[str]) -> None:
    """Lay out TensorBoard's Custom Scalars tab (revenue against the references, regret, Lagrangian); other loggers: nothing."""
    if not isinstance(logger, TensorBoardLogger):
        return
    logger.experiment.add_custom_scalars(
        {
            "auction": {
                "revenue": ["Multiline", ["train/revenue", "val/revenue", *reference_names]],
                "regret (mean over agents)": ["Multiline", [r"(train|val)/regret_mean_over_agents"]],
                "regret (sum over agents)": ["Multiline", [r"(train|val)/regret_sum_over_agents"]],
                "lagrangian": ["Multiline", [r"lagrangian/.*"]],
            }
        }
    )


def log_regret(module: pl.LightningModule, stage: str, revenue: Tensor, regrets: Tensor, **kwargs: Any) -> None:
    """``<stage>/revenue`` and both regret conventions of revenue ``(batch,)`` and regrets ``(batch, agents)``."""
    per_agent = regrets.mean(0)
    module.log(f"{stage}/revenue", revenue.mean(), **kwargs)
    module.log(f"{stage}/regret_mean_over_agents", per_agent.mean(), **kwargs)
    module.log(f"{stage}/regret_sum_over_agents", per_agent.sum(), **kwargs)


def log_training(module: pl.LightningModule, revenue: Tensor, regrets: Tensor, loss: Tensor, lr: float) -> None:
    """One training step's values: revenue ``(batch,)`` and regrets ``(batch, agents)`` (detached here), the
    loss, the learning rate, ``rho`` and every ``lambda_i``, and the Sinkhorn layer's last solve if it has one."""
    log_regret(module, "train", revenue.detach(), regrets.detach(), prog_bar=True)
    module.log("train/loss", loss.detach())
    module.log("train/lr", lr)
    module.log("lagrangian/rho", module.rho)
    for agent, value in enumerate(module.lagrange_multipliers):
        module.log(f"lagrangian/lambda_{agent}", value)
    iterations = getattr(module.mechanism, "last_iterations", None)
    if iterations is not None:
        module.log("sinkhorn/iterations", float(iterations))
    error = getattr(module.mechanism, "last_marginal_error", None)
    if error is not None:
        module.log("sinkhorn/marginal_error", float(error))


def log_calibration(module: pl.LightningModule, calibration: Calibration) -> None:
    """The fixed Sinkhorn schedule's size and its marginal error on the calibration profiles (a warning over tol)."""
    settings = module.mechanism.settings
    module.log("sinkhorn/calibrated_iterations", float(sum(calibration.iterations)))
    module.log("sinkhorn/calibrated_marginal_error", calibration.marginal_error)
    if calibration.marginal_error > settings.tol:
        rank_zero_warn(
            f"fixed Sinkhorn schedule misses tol={settings.tol:g} (error {calibration.marginal_error:.3g}) "
            f"at max_iter={settings.max_iter}"
        )


def flatten(results: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The numbers of a flat results dict as ``prefix + key``, lists expanded as ``key_<index>``."""
    flat: dict[str, float] = {}
    for key, value in results.items():
        if isinstance(value, (list, tuple)):
            flat.update({f"{prefix}{key}_{i}": float(v) for i, v in enumerate(value)})
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat
