"""The augmented-Lagrangian schedules of an ensemble: one staircase and one dual rule per member.

They act on :class:`training.ensemble.EnsembleModule`'s buffers ``rho`` ``(K,)``
and ``lagrange_multipliers`` ``(K, agents)`` at ``trainer.global_step``, as
:mod:`callbacks.lagrangian` does for one mechanism, with member ``k``'s own
:class:`~training.lagrangian.RhoStaircase` and :class:`~training.lagrangian.LagrangeRule`.
An ensemble trains in one process (no reduction across processes).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import lightning.pytorch as pl
import torch

from training.lagrangian import REGRET_KEY, LagrangeRule, RhoStaircase

__all__ = ["EnsembleLagrangeUpdate", "EnsembleRhoSchedule"]


class EnsembleRhoSchedule(pl.Callback):
    """Before every training batch, ``rho[k] = staircases[k](global step)``."""

    def __init__(self, staircases: Sequence[RhoStaircase]) -> None:
        self.staircases = list(staircases)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        rho = pl_module.rho
        if rho.shape != (len(self.staircases),):
            raise ValueError(f"EnsembleRhoSchedule has {len(self.staircases)} staircases for rho of shape {tuple(rho.shape)}")
        values = [staircase(trainer.global_step) for staircase in self.staircases]
        rho.copy_(torch.tensor(values, dtype=rho.dtype))


class EnsembleLagrangeUpdate(pl.Callback):
    """After the optimizer steps where ``rules[k]`` is due: ``lambda[k] += rho[k] * rgt[k]``.

    ``rgt`` ``(K, agents)``: the members' batch-mean regrets that ``training_step`` returns under
    :data:`~training.lagrangian.REGRET_KEY`.
    """

    def __init__(self, rules: Sequence[LagrangeRule]) -> None:
        self.rules = list(rules)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        due = [k for k, rule in enumerate(self.rules) if rule.due(trainer.global_step)]
        if not due:
            return
        if not isinstance(outputs, Mapping) or REGRET_KEY not in outputs:
            raise ValueError(f"EnsembleLagrangeUpdate needs training_step to return the members' {REGRET_KEY!r} (K, agents)")
        multipliers, rho = pl_module.lagrange_multipliers, pl_module.rho
        regret = outputs[REGRET_KEY].detach().to(multipliers)
        for k in due:
            self.rules[k].apply(multipliers[k], rho[k], regret[k])
