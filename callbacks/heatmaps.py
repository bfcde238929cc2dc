"""Logging the allocation and payment heatmaps to TensorBoard during validation."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger

from utils.checks import check_positive_int
from mechanisms.ensemble import members_of
from reporting.heatmaps import heatmap_figure

__all__ = ["HeatmapLogger"]


class HeatmapLogger(pl.Callback):
    """After every ``every_n_validations``-th validation, log :func:`heatmap_figure` of ``pl_module.mechanism``.

    Only for two-item settings and only to a :class:`TensorBoardLogger` (tag ``tag``, step = global step).  The
    value range is that of ``pl_module.distribution`` (U[0, 1] for a module without one).
    """

    def __init__(self, every_n_validations: int = 1, resolution: int = 51, others: float = 0.5, agent: int = 0,
                 tag: str = "heatmaps") -> None:
        super().__init__()
        check_positive_int(every_n_validations, "every_n_validations")
        self.every_n_validations, self.resolution, self.others = every_n_validations, resolution, others
        self.agent, self.tag = agent, tag
        self.validations = 0  # validations seen in this process (sanity checks excluded)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Render and log the heatmaps (skipped during the sanity check and between the chosen validations)."""
        mechanism: Any = getattr(pl_module, "mechanism", None)
        if trainer.sanity_checking or mechanism is None or getattr(mechanism, "n_items", None) != 2:
            return
        self.validations += 1
        if self.validations % self.every_n_validations:
            return
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not loggers or not trainer.is_global_zero:  # only the first process writes logs
            return
        members = members_of(mechanism)  # an ensemble: one figure per member
        for k, member in enumerate(members):
            figure = heatmap_figure(member, self.agent, self.others, self.resolution,
                                    distribution=getattr(pl_module, "distribution", None))
            tag = self.tag if len(members) == 1 else f"{self.tag}/member_{k}"
            for logger in loggers:
                logger.experiment.add_figure(tag, figure, global_step=trainer.global_step, close=False)
