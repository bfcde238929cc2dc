"""The validation measurement of :class:`training.AuctionModule`: seeded random starts and epoch aggregates.

Under DDP every process validates its share of the validation batches; the
epoch metrics are torchmetrics aggregates (mean over all validation profiles,
max) synchronized across processes, so they equal the metrics of the whole
validation set computed in one process.  The random starts of the validation
search come from a generator seeded by the run seed, the global step and the
batch's index in the whole validation set: validation is reproducible,
independent of the number of processes and of a resume.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric

from datamodules.valuations import derive_seed

__all__ = ["VALIDATION_STREAM", "allocated_mass_metrics", "log_allocated_mass", "log_validation", "validation_generator",
           "validation_metrics"]

VALIDATION_STREAM = 4  # datamodules.valuations uses streams 0-3


def validation_generator(seed: int, step: int, batch_index: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of the random validation starts at global step ``step`` for batch ``batch_index`` of the
    whole validation set: seeded by ``(seed, step, batch_index)`` only, the same in every process and after a resume."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, VALIDATION_STREAM, step, batch_index))


def validation_metrics() -> nn.ModuleDict:
    """The validation epoch aggregates, synchronized across processes; keys are logged as ``val/<key>``."""
    return nn.ModuleDict(
        {
            "revenue": MeanMetric(),
            "regret_mean_over_agents": MeanMetric(),
            "regret_sum_over_agents": MeanMetric(),
            "regret_max": MaxMetric(),  # the largest regret of any agent on any validation profile
        }
    )


def log_validation(module: pl.LightningModule, metrics: nn.ModuleDict, revenue: Tensor, regrets: Tensor) -> None:
    """Add one validation batch, revenue ``(batch,)`` and regrets ``(batch, agents)``, to ``metrics``
    (:func:`validation_metrics`) and log them as epoch values."""
    values = {
        "revenue": revenue,
        "regret_mean_over_agents": regrets.mean(-1),
        "regret_sum_over_agents": regrets.sum(-1),
        "regret_max": regrets.amax(-1),
    }
    for name, value in values.items():
        metric = metrics[name]
        metric.update(value.detach())
        module.log(f"val/{name}", metric, on_step=False, on_epoch=True, prog_bar=name != "regret_max")


def allocated_mass_metrics(n_agents: int) -> nn.ModuleList:
    """One epoch mean per bidder of its allocated mass (items received), logged as ``val/allocated_mass_agent<i>``."""
    return nn.ModuleList(MeanMetric() for _ in range(n_agents))


def log_allocated_mass(module: pl.LightningModule, metrics: nn.ModuleList, allocation: Tensor) -> None:
    """Add the truthful allocation ``(batch, agents, items)`` of one validation batch: bidder ``i``'s
    ``sum_j allocation[:, i, j]`` to ``metrics[i]`` (:func:`allocated_mass_metrics`), logged per epoch
    (a bidder whose mass falls to 0 has been shut out: the collapse of issue 16)."""
    mass = allocation.detach().sum(-1)  # (batch, agents)
    for agent, metric in enumerate(metrics):
        metric.update(mass[:, agent])
        module.log(f"val/allocated_mass_agent{agent}", metric, on_step=False, on_epoch=True)
