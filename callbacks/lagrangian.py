"""The augmented-Lagrangian schedules as Lightning callbacks: thin wrappers around :mod:`training.lagrangian`.

Both act on the module's :class:`~training.lagrangian.LagrangianState` (the
buffers ``rho`` and ``lagrange_multipliers``, saved in every checkpoint) at
``trainer.global_step`` (optimizer steps taken, also restored from a
checkpoint), so a resumed run applies the same updates at the same steps as an
uninterrupted one.  Their settings come from the ``lagrangian`` config group.
"""

from __future__ import annotations

from typing import Any, Mapping

import lightning.pytorch as pl

from training.lagrangian import REGRET_KEY, LagrangeRule, RhoStaircase, check_lagrangian_state

__all__ = ["LagrangeUpdate", "RhoSchedule"]


class RhoSchedule(pl.Callback):
    """Before every training batch, set ``rho`` to :class:`~training.lagrangian.RhoStaircase` at the global step.

    ``rho = min(rho_init + increment * floor(step / every_n_steps), max_rho)`` (the paper:
    +1 every 2 batches), so the batch and any Lagrange update after it use the same ``rho``.
    ``max_rho=None`` means no cap.
    """

    def __init__(
        self, increment: float = 1.0, every_n_steps: int = 2, max_rho: float | None = None, rho_init: float = 1.0
    ) -> None:
        self.staircase = RhoStaircase(increment, every_n_steps, max_rho, rho_init)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        check_lagrangian_state(pl_module).rho.fill_(self.staircase(trainer.global_step))


class LagrangeUpdate(pl.Callback):
    """Dual ascent after every ``every_n_steps``-th optimizer step (the paper: 100): :class:`~training.lagrangian.LagrangeRule`.

    ``rgt_i`` is the batch-mean regret ``(agents,)`` that ``training_step`` returns under
    :data:`~training.lagrangian.REGRET_KEY`, averaged over the processes of a distributed run.
    """

    def __init__(self, every_n_steps: int = 100) -> None:
        self.rule = LagrangeRule(every_n_steps)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.rule.due(trainer.global_step):
            return
        if not isinstance(outputs, Mapping) or REGRET_KEY not in outputs:
            raise ValueError(f"LagrangeUpdate needs training_step to return a dict with the per-agent {REGRET_KEY!r}")
        state = check_lagrangian_state(pl_module)
        # Under DDP every process saw other batches: the mean over processes is the regret of the global
        # batch, and every process applies the same update (lambda and rho stay identical everywhere).
        regret = outputs[REGRET_KEY].detach().to(state.lagrange_multipliers)
        strategy = getattr(trainer, "strategy", None)
        if strategy is not None:
            regret = strategy.reduce(regret, reduce_op="mean")
        self.rule.apply(state.lagrange_multipliers, state.rho, regret)
