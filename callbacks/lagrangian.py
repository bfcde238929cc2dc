"""The augmented-Lagrangian schedules as Lightning callbacks: thin wrappers around :mod:`training.lagrangian`.

All act on the module's :class:`~training.lagrangian.LagrangianState` (the
buffers ``rho`` and ``lagrange_multipliers``, saved in every checkpoint) at
``trainer.global_step`` (optimizer steps taken, also restored from a
checkpoint), so a resumed run applies the same updates at the same steps as an
uninterrupted one.  Their settings come from the ``lagrangian`` config group.

:class:`RhoSchedule` and :class:`TargetRegretUpdate` can be *softened* by the
collapse guard (:class:`callbacks.CollapseGuard`, ``on_collapse=restore``):
rho is halved and held for a number of steps; what the softening changed is
callback state, saved in checkpoints (``state_dict``), so a resume continues it.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

import lightning.pytorch as pl
from torch import Tensor

from training.lagrangian import (
    REGRET_KEY,
    LagrangeRule,
    RhoStaircase,
    TargetRegretRule,
    TargetSchedule,
    check_lagrangian_state,
)

__all__ = ["LagrangeUpdate", "RhoSchedule", "Softenable", "TargetRegretUpdate"]


@runtime_checkable
class Softenable(Protocol):
    """A rho schedule the collapse guard can soften: halve rho now and hold it for ``hold_steps`` steps."""

    def soften(self, step: int, hold_steps: int, rho: Tensor) -> None: ...


def _batch_regret(trainer: pl.Trainer, outputs: Any, state: Any, who: str) -> Tensor:
    """The per-agent batch-mean regret ``(agents,)`` of ``training_step``'s outputs, averaged over processes."""
    if not isinstance(outputs, Mapping) or REGRET_KEY not in outputs:
        raise ValueError(f"{who} needs training_step to return a dict with the per-agent {REGRET_KEY!r}")
    # Under DDP every process saw other batches: the mean over processes is the regret of the global
    # batch, and every process applies the same update (lambda and rho stay identical everywhere).
    regret = outputs[REGRET_KEY].detach().to(state.lagrange_multipliers)
    strategy = getattr(trainer, "strategy", None)
    return regret if strategy is None else strategy.reduce(regret, reduce_op="mean")


class RhoSchedule(pl.Callback):
    """Before every training batch, set ``rho`` to :class:`~training.lagrangian.RhoStaircase` at the global step.

    ``rho = min(rho_init + increment * floor(step / every_n_steps), max_rho)`` (the paper:
    +1 every 2 batches), so the batch and any Lagrange update after it use the same ``rho``.
    ``max_rho=None`` means no cap.  After :meth:`soften` at step ``s`` with the module's ``rho = r``: ``r / 2``
    until step ``s + hold``, then the same staircase from there (``r / 2 + increment * floor((step - s - hold)
    / every_n_steps)``, capped).
    """

    def __init__(
        self, increment: float = 1.0, every_n_steps: int = 2, max_rho: float | None = None, rho_init: float = 1.0
    ) -> None:
        self.staircase = RhoStaircase(increment, every_n_steps, max_rho, rho_init)
        self.anchor: tuple[int, float] | None = None  # (step where growth resumes, rho there) after a softening

    def rho(self, step: int) -> float:
        """rho of the batch at global step ``step``."""
        if self.anchor is None:
            return self.staircase(step)
        start, value = self.anchor
        grown = value + self.staircase.increment * (max(step - start, 0) // self.staircase.every_n_steps)
        cap = self.staircase.max_rho
        return float(grown if cap is None else min(grown, max(cap, value)))

    def soften(self, step: int, hold_steps: int, rho: Tensor) -> None:
        """Halve ``rho`` (the module's, e.g. restored from the best checkpoint) and hold it for ``hold_steps`` steps."""
        self.anchor = (step + hold_steps, float(rho) / 2)
        rho.fill_(self.anchor[1])

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        check_lagrangian_state(pl_module).rho.fill_(self.rho(trainer.global_step))

    def state_dict(self) -> dict[str, Any]:
        return {"anchor": self.anchor}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        anchor = state_dict.get("anchor")
        self.anchor = None if anchor is None else (int(anchor[0]), float(anchor[1]))


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
        state = check_lagrangian_state(pl_module)
        self.rule.apply(state.lagrange_multipliers, state.rho, _batch_regret(trainer, outputs, state, "LagrangeUpdate"))


class TargetRegretUpdate(pl.Callback):
    """The target-regret controller (:class:`~training.lagrangian.TargetRegretRule`) in place of both
    :class:`RhoSchedule` and :class:`LagrangeUpdate` (``conf/callbacks/stable.yaml``).

    After every ``every_n_steps``-th optimizer step: ``lambda_i <- max(0, lambda_i + eta (rgt_i - tau))``, and
    ``rho <- min(rho + rho_increment, max_rho)`` while the mean over agents of ``rgt_i`` exceeds ``tau``.
    ``tau`` anneals from ``tau_start`` to ``tau_end`` (``shape``: geometric or linear) over the first
    ``anneal_fraction`` of the run's optimizer steps (``trainer.estimated_stepping_batches``), then stays.
    rho starts at the module's ``rho_init`` (``lagrangian.rho_init``).
    """

    def __init__(
        self,
        eta: float = 1.0,
        every_n_steps: int = 1,
        rho_increment: float = 1.0,
        max_rho: float | None = None,
        tau_start: float = 0.01,
        tau_end: float = 0.001,
        anneal_fraction: float = 0.0,
        shape: str = "geometric",
    ) -> None:
        if not (isinstance(anneal_fraction, (int, float)) and 0 <= anneal_fraction <= 1):
            raise ValueError(f"anneal_fraction must be in [0, 1], got {anneal_fraction!r}")
        self.anneal_fraction = float(anneal_fraction)
        # anneal_steps is set from the run's length when training starts (setup).
        self.rule = TargetRegretRule(eta, every_n_steps, rho_increment, max_rho, TargetSchedule(tau_start, tau_end, 0, shape))
        self.hold_until = 0  # rho does not grow before this step (after a softening)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        total = int(trainer.estimated_stepping_batches)
        target = self.rule.target
        anneal = round(self.anneal_fraction * total)
        self.rule = TargetRegretRule(
            self.rule.eta, self.rule.every_n_steps, self.rule.rho_increment, self.rule.max_rho,
            TargetSchedule(target.tau_start, target.tau_end, anneal, target.shape),
        )

    def soften(self, step: int, hold_steps: int, rho: Tensor) -> None:
        """Halve rho now and let it grow again only from step ``step + hold_steps`` on."""
        rho.mul_(0.5)
        self.hold_until = step + hold_steps

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if not self.rule.due(step):
            return
        state = check_lagrangian_state(pl_module)
        regret = _batch_regret(trainer, outputs, state, "TargetRegretUpdate")
        self.rule.apply(state.lagrange_multipliers, state.rho, regret, step, grow_rho=step >= self.hold_until)
        pl_module.log("train/tau", self.rule.target(step), on_step=True, on_epoch=False)

    def state_dict(self) -> dict[str, Any]:
        return {"hold_until": self.hold_until}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.hold_until = int(state_dict.get("hold_until", 0))
