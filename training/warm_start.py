"""Supervised warm start (issue 16, part 2; docs/stable_lagrangian.md): fit a mechanism to a teacher's outcomes.

:func:`fit_to_teacher` takes any teacher module mapping bids ``(batch, agents, items)`` to allocation ``(batch,
agents, items)`` and payment ``(batch, agents)``, and minimizes ``mean (a - a_teacher)^2 + mean (p - p_teacher)^2``
on batches drawn from the training profiles (:mod:`baselines.teachers` resolves ``init=<name>``;
:class:`callbacks.WarmStart` runs the fit before the Lagrangian phase).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from utils.checks import check_positive_int

__all__ = ["FitStats", "fit_to_teacher"]


@dataclass(frozen=True)
class FitStats:
    """What the fit did: ``steps``, the first and last batch losses, and the allocation and payment mean
    squared errors on the whole profile set at the end, with the fitted and the teacher's mean revenue there."""

    steps: int
    loss_first: float
    loss_last: float
    allocation_mse: float
    payment_mse: float
    revenue: float
    teacher_revenue: float
    time_s: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _outputs(mechanism: nn.Module, profiles: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """Allocation ``(n, agents, items)`` and payment ``(n, agents)`` of ``profiles``, batch by batch, no grad."""
    with torch.no_grad():
        parts = [mechanism(profiles[i : i + batch_size]) for i in range(0, len(profiles), batch_size)]
    return torch.cat([a for a, _ in parts]), torch.cat([p for _, p in parts])


def fit_to_teacher(mechanism: nn.Module, teacher: nn.Module, profiles: Tensor, steps: int, lr: float = 1e-3,
                   batch_size: int = 512, generator: torch.Generator | None = None,
                   log: Callable[[dict[str, float], int], None] | None = None, log_every: int = 50) -> FitStats:
    """Fit ``mechanism`` to ``teacher`` by Adam (``lr``) on ``steps`` batches of ``batch_size`` profiles drawn
    (with ``generator``, a CPU generator) from ``profiles`` ``(n, agents, items)``; ``log(metrics, step)`` gets
    ``init/loss``, ``init/allocation_mse`` and ``init/payment_mse`` every ``log_every`` steps and after the last."""
    check_positive_int(steps, "warm start steps")
    check_positive_int(batch_size, "warm start batch_size")
    if profiles.dim() != 3 or len(profiles) == 0:
        raise ValueError(f"profiles must be (n, agents, items) with n >= 1, got {tuple(profiles.shape)}")
    start = time.perf_counter()
    targets = _outputs(teacher, profiles, 65536)
    optimizer = torch.optim.Adam(mechanism.parameters(), lr=lr)
    first = last = float("nan")
    for step in range(steps):
        index = torch.randint(len(profiles), (min(batch_size, len(profiles)),), generator=generator).to(profiles.device)
        allocation, payment = mechanism(profiles[index])
        allocation_mse = (allocation - targets[0][index]).pow(2).mean()
        payment_mse = (payment - targets[1][index]).pow(2).mean()
        loss = allocation_mse + payment_mse
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        last = float(loss.detach())
        first = last if step == 0 else first
        if log is not None and (step % log_every == 0 or step == steps - 1):
            log({"init/loss": last, "init/allocation_mse": float(allocation_mse.detach()),
                 "init/payment_mse": float(payment_mse.detach())}, step)
    allocation, payment = _outputs(mechanism, profiles, 4096)
    return FitStats(steps=steps, loss_first=first, loss_last=last,
                    allocation_mse=float((allocation - targets[0]).pow(2).mean()),
                    payment_mse=float((payment - targets[1]).pow(2).mean()), revenue=float(payment.sum(-1).mean()),
                    teacher_revenue=float(targets[1].sum(-1).mean()), time_s=time.perf_counter() - start)
