"""The augmented-Lagrangian schedules of RegretNet training (section 4.5).

Both callbacks act on two buffers of the LightningModule, which therefore
travel with every checkpoint: ``rho`` (scalar) and ``lagrange_multipliers``
``(agents,)``.  They fire on ``trainer.global_step`` (optimizer steps taken),
which is also restored from a checkpoint, so a resumed run applies the same
updates at the same steps as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any, Mapping

import lightning.pytorch as pl
import torch

__all__ = ["LagrangeUpdate", "RhoSchedule"]


def _check_every(every_n_steps: int) -> None:
    if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
        raise ValueError(f"every_n_steps must be a positive integer, got {every_n_steps!r}")


def _require_buffer(pl_module: pl.LightningModule, name: str) -> torch.Tensor:
    buffer = getattr(pl_module, name, None)
    if not isinstance(buffer, torch.Tensor):
        raise ValueError(f"{type(pl_module).__name__} has no tensor attribute {name!r} for the Lagrangian callbacks")
    return buffer


class RhoSchedule(pl.Callback):
    """Raise the quadratic penalty weight: ``rho <- min(rho + increment, max_rho)``.

    The increment is applied before every training batch whose global step is
    a positive multiple of ``every_n_steps`` (the paper: every 2 batches), so
    the batch and any Lagrange update after it use the same ``rho``.
    ``max_rho=None`` means no cap.
    """

    def __init__(self, increment: float = 1.0, every_n_steps: int = 2, max_rho: float | None = None) -> None:
        _check_every(every_n_steps)
        if not increment >= 0:
            raise ValueError(f"rho increment must be >= 0, got {increment}")
        if max_rho is not None and not max_rho > 0:
            raise ValueError(f"max_rho must be positive or null, got {max_rho}")
        self.increment, self.every_n_steps, self.max_rho = increment, every_n_steps, max_rho

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step == 0 or step % self.every_n_steps:
            return
        rho = _require_buffer(pl_module, "rho")
        new = rho + self.increment
        rho.copy_(new if self.max_rho is None else new.clamp(max=self.max_rho))


class LagrangeUpdate(pl.Callback):
    """Dual ascent on the regret constraints: ``lambda_i <- lambda_i + rho * rgt_i``.

    Applied after every ``every_n_steps``-th optimizer step (the paper: every
    100 batches), with ``rgt_i`` the batch-mean regret of agent ``i``
    ``(agents,)`` that ``training_step`` returns under the key ``"regret"``,
    averaged over the processes of a distributed run.
    """

    def __init__(self, every_n_steps: int = 100) -> None:
        _check_every(every_n_steps)
        self.every_n_steps = every_n_steps

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        if not isinstance(outputs, Mapping) or "regret" not in outputs:
            raise ValueError("LagrangeUpdate needs training_step to return a dict with the per-agent 'regret'")
        multipliers = _require_buffer(pl_module, "lagrange_multipliers")
        rho = _require_buffer(pl_module, "rho")
        # Under DDP every process saw other batches: the mean over processes is the regret of the global
        # batch, and every process applies the same update (lambda and rho stay identical everywhere).
        regret = outputs["regret"].detach().to(multipliers)
        strategy = getattr(trainer, "strategy", None)
        if strategy is not None:
            regret = strategy.reduce(regret, reduce_op="mean")
        multipliers.add_(rho * regret)
