"""The learning-rate schedule of :class:`training.AuctionModule`: constant, or a cosine decay, by optimizer step.

:func:`lr_scheduler` wraps the optimizer in a :class:`torch.optim.lr_scheduler.LambdaLR` whose factor is a
pure function of the scheduler's step count, which the module keeps equal to the trainer's global step:
:func:`align` puts it there when training starts (fresh or resumed), then one ``scheduler.step()``
follows every optimizer step.
"""

from __future__ import annotations

import math
import warnings

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["align", "check_learning_rates", "cosine_lr", "lr_scheduler"]


def check_learning_rates(lr: float, lr_final: float | None) -> None:
    """``ValueError`` unless ``lr > 0`` and ``lr_final`` is ``None`` or in ``(0, lr]``."""
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate must be positive, got {lr}")
    if lr_final is not None and not (math.isfinite(lr_final) and 0 < lr_final <= lr):
        raise ValueError(f"lr_final must be in (0, lr={lr}], got {lr_final}")


def cosine_lr(step: int, total: int, lr: float, lr_final: float | None) -> float:
    """Learning rate at optimizer step ``step`` of ``total``: ``lr``, or a cosine from ``lr`` to ``lr_final``."""
    if lr_final is None:
        return lr
    progress = min(step / max(total, 1), 1.0)
    return lr_final + (lr - lr_final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_scheduler(optimizer: Optimizer, lr: float, lr_final: float | None, total: int) -> LambdaLR:
    """A scheduler setting ``optimizer``'s learning rate (base ``lr``) to :func:`cosine_lr` at each step.

    ``total``: the optimizer steps of the run (e.g. ``trainer.estimated_stepping_batches``).
    """
    return LambdaLR(optimizer, lambda step: cosine_lr(step, total, lr, lr_final) / lr)


def align(scheduler: LambdaLR, step: int, lr: float) -> None:
    """Put ``scheduler`` and its optimizer's learning rates on optimizer step ``step`` of this run's schedule.

    At the start of training, fresh or resumed: a resumed optimizer holds the learning rate of the
    checkpoint's run, whose schedule may span fewer steps (a longer ``trainer.max_epochs``), a restored
    scheduler that run's base ``lr``, and a checkpoint written before the scheduler existed no
    scheduler state at all.  With this the learning rate is a pure function of the step and the
    current ``lr``, ``lr_final`` and run length.
    """
    scheduler.base_lrs = [lr] * len(scheduler.optimizer.param_groups)
    with warnings.catch_warnings():  # torch warns of a step before any optimizer step: none is skipped here
        warnings.simplefilter("ignore", UserWarning)
        scheduler.last_epoch = step - 1
        scheduler.step()
