"""The measurement of :class:`training.AuctionModule`: validation (seeded random starts, epoch aggregates) and test.

The epoch metrics are torchmetrics aggregates synchronized across processes, and the validation starts are seeded
by the run seed, the step and the batch's index in the whole set: validation does not depend on the number of
processes or a resume.  The test measures each member with its own test seed (:func:`measure_member`).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric

from adversary.regret import measure
from datamodules.valuations import derive_seed
from mechanisms.ensemble import member_mechanism

__all__ = ["VALIDATION_STREAM", "log_validation", "measure_member", "validation_generator", "validation_metrics"]

VALIDATION_STREAM = 4  # datamodules.valuations uses streams 0-3


def validation_generator(seed: int, step: int, batch_index: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of the random validation starts at global step ``step`` for batch ``batch_index`` of the
    whole validation set: seeded by ``(seed, step, batch_index)`` only, the same in every process and after a resume."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, VALIDATION_STREAM, step, batch_index))


def validation_metrics() -> nn.ModuleDict:
    """The validation epoch aggregates, synchronized across processes; keys are logged as ``val/<key>``
    (``regret_max``: the largest regret of any agent on any validation profile)."""
    return nn.ModuleDict({"revenue": MeanMetric(), "regret_mean_over_agents": MeanMetric(),
                          "regret_sum_over_agents": MeanMetric(), "regret_max": MaxMetric()})


def log_validation(module: pl.LightningModule, metrics: nn.ModuleDict, mass: nn.ModuleList, revenue: Tensor,
                   regrets: Tensor, allocation: Tensor) -> None:
    """Add one validation batch, revenue ``(batch,)``, regrets ``(batch, agents)`` and the truthful allocation
    ``(batch, agents, items)``, to ``metrics`` (:func:`validation_metrics`) and to ``mass``, one mean per bidder of
    its allocated mass (``val/allocated_mass_agent<i>``: a bidder whose mass falls to 0 has been shut out, the
    collapse of issue 16), and log them as epoch values."""
    values = {"revenue": revenue, "regret_mean_over_agents": regrets.mean(-1),
              "regret_sum_over_agents": regrets.sum(-1), "regret_max": regrets.amax(-1)}
    for name, value in values.items():
        metrics[name].update(value.detach())
        module.log(f"val/{name}", metrics[name], on_step=False, on_epoch=True, prog_bar=name != "regret_max")
    allocated = allocation.detach().sum(-1)  # (batch, agents)
    for agent, metric in enumerate(mass):
        metric.update(allocated[:, agent])
        module.log(f"val/allocated_mass_agent{agent}", metric, on_step=False, on_epoch=True)


def measure_member(module: Any, k: int, valuations: Tensor, mechanism: nn.Module | None = None) -> dict[str, Any]:
    """Member ``k`` of the :class:`training.AuctionModule` ``module`` (or ``mechanism``, e.g. its best weights)
    measured with the test protocol on ``valuations`` ``(samples, agents, items)`` with its own test seed: what its
    single run's test reports."""
    generator = torch.Generator(device=valuations.device).manual_seed(module.test_seeds[k])
    if mechanism is None:
        mechanism = module.mechanism if module.members == 1 else member_mechanism(module.mechanism, k)
    with torch.enable_grad():
        evaluation = measure(mechanism, valuations, module.test_search, low=module.low, high=module.high,
                             batch_size=module.test_batch_size or valuations.shape[0], generator=generator,
                             progress=module._trainer is not None and module.trainer.progress_bar_callback is not None)
    return evaluation.to_dict()
