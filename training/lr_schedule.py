"""The optimizer and learning-rate schedule of :class:`training.AuctionModule`: constant, or a cosine decay, by step.

One run: a ``LambdaLR`` whose step count the module keeps equal to the global step (:func:`align` at the start,
one step after every optimizer step); K members: one :class:`training.member_adam.MemberAdam`, rates set every step.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Iterable, Sequence

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from training.member_adam import MemberAdam

__all__ = ["align", "check_learning_rates", "cosine_lr", "optimizer_config", "optimizer_step"]

Rates = Sequence[tuple[float, float | None]]  # (lr, lr_final) of every member


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


def align(scheduler: LambdaLR | None, step: int, lr: float) -> None:
    """Put ``scheduler`` (``None``: nothing) and its optimizer's rates on step ``step`` of this run's schedule: a
    resumed one holds the checkpoint run's rate and base ``lr`` (or none), whose schedule may span fewer steps."""
    if scheduler is None:
        return
    scheduler.base_lrs = [lr] * len(scheduler.optimizer.param_groups)
    with warnings.catch_warnings():  # torch warns of a step before any optimizer step: none is skipped here
        warnings.simplefilter("ignore", UserWarning)
        scheduler.last_epoch = step - 1
        scheduler.step()


def optimizer_config(factory: Callable[..., Optimizer], parameters: Iterable[nn.Parameter], rates: Rates,
                     total: int) -> dict[str, Any] | Optimizer:
    """The optimizer of a run of ``total`` optimizer steps: one member, ``factory(parameters, lr=lr)`` (a
    ``functools.partial``) with its scheduler; several, one :class:`MemberAdam` with ``factory``'s keywords."""
    if len(rates) > 1:
        return MemberAdam(parameters, lr=[cosine_lr(0, total, lr, final) for lr, final in rates], **factory.keywords)
    (lr, lr_final), = rates
    optimizer = factory(parameters, lr=lr)
    return {"optimizer": optimizer,
            "lr_scheduler": LambdaLR(optimizer, lambda step: cosine_lr(step, total, lr, lr_final) / lr)}


def optimizer_step(optimizer: Optimizer, scheduler: LambdaLR | None, step: int, total: int,
                   rates: Rates) -> list[float]:
    """One optimizer step, then one of ``scheduler`` (``None``: several members, rates set first); the rates used."""
    if scheduler is None:
        optimizer.param_groups[0]["lr"] = [cosine_lr(step, total, lr, final) for lr, final in rates]
    used = optimizer.param_groups[0]["lr"]
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return list(used) if isinstance(used, (list, tuple)) else [used]
