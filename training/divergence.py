"""Divergence: a run stops at the first non-finite training value, and refuses penalty weights that overflow float32.

:class:`DivergenceWatch` keeps, on the device, the first step with a non-finite loss, gradient, lambda or rho
(no host synchronization) until :meth:`~DivergenceWatch.check` reads it: every eager step, the fast step's logging
steps, and before every validation and checkpoint, with the current state (docs/scaling_out.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import torch
from torch import Tensor

__all__ = ["PENALTY_LIMIT", "DivergenceWatch", "TrainingDiverged", "check_penalty_weights"]

PENALTY_LIMIT = math.sqrt(torch.finfo(torch.float32).max)  # the largest |lambda| and rho accepted

_WHAT = ("loss", "gradient", "lambda", "rho", "or exploding weights (|w| > 1e12)")
# A network weight above this in magnitude has exploded (e.g. a learning rate of 1e30): training stops as for a
# non-finite value, instead of running on with every Sinkhorn solve at its iteration cap.
EXPLODED = 1e12


def check_penalty_weights(lambda_init: float, rho_init: float, largest_rho: float | None = None) -> None:
    """One-line ``ValueError`` unless ``lambda_init``, ``rho_init`` (and the schedule's ``largest_rho``) are
    finite and at most :data:`PENALTY_LIMIT` in magnitude (``rho_init >= 0``)."""
    for name, value in (("lambda_init", lambda_init), ("rho_init", rho_init),
                        ("the largest rho of the schedule", largest_rho)):
        if value is not None and (not math.isfinite(value) or abs(value) > PENALTY_LIMIT):
            raise ValueError(f"{name}={value:g} overflows float32 training (the loss gradient scales with it and "
                             f"Adam squares it): use |{name}| <= {PENALTY_LIMIT:.2g}")
    if rho_init < 0:
        raise ValueError(f"need rho_init >= 0, got {rho_init}")


class TrainingDiverged(Exception):
    """Training produced a non-finite value at ``step``; ``checkpoint`` is the last one written before (or ``None``)."""

    def __init__(self, step: int, what: str, checkpoint: Path | None) -> None:
        self.step, self.what, self.checkpoint = step, what, checkpoint
        saved = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written before it"
        super().__init__(f"training diverged at step {step}: non-finite {what}; {saved}")


class DivergenceWatch:
    """The first non-finite step, kept on the device; ``last.ckpt`` in ``checkpoint_dir`` is the last good one."""

    def __init__(self, checkpoint_dir: Path | str | None = None) -> None:
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self._first: Tensor | None = None  # [step, bit mask of _WHAT], step -1: all finite so far
        self._bits: Tensor | None = None

    def record(self, step: int, loss: Tensor, gradients: Iterable[Tensor], lambdas: Tensor, rho: Tensor,
               weights: Iterable[Tensor] = ()) -> None:
        """Note whether this step's ``loss`` (scalar), ``gradients``, ``lambdas`` (any shape) and ``rho`` are finite
        and whether the ``weights`` (the parameters before the step) stay below :data:`EXPLODED`."""
        grads = [g for g in gradients if g is not None]
        no = loss.new_zeros((), dtype=torch.bool)
        grads_bad = ~torch.stack(torch._foreach_norm(grads)).isfinite().all() if grads else no
        weights = [w.detach() for w in weights]
        exploded = (torch.stack(torch._foreach_norm(weights, float("inf"))).nan_to_num(float("inf")).max() > EXPLODED
                    if weights else no)
        bad = torch.stack([~loss.detach().isfinite().all(), grads_bad, ~lambdas.isfinite().all(),
                           ~rho.isfinite().all(), exploded])
        if self._first is None:  # made once: no host-to-device copy per step
            self._first = torch.tensor([-1, 0], device=bad.device)
            self._bits = torch.tensor([1, 2, 4, 8, 16], device=bad.device)
        mask = (bad.long() * self._bits).sum()
        fresh = (self._first[0] < 0) & (mask > 0)
        self._first = torch.where(fresh, torch.stack([torch.full_like(mask, step), mask]), self._first)

    def check(self) -> None:
        """Raise :class:`TrainingDiverged` if a recorded step was not finite (reads one small tensor)."""
        step, mask = (-1, 0) if self._first is None else (int(v) for v in self._first.tolist())
        if step >= 0:
            what = ", ".join(name for bit, name in enumerate(_WHAT) if mask >> bit & 1)
            raise TrainingDiverged(step, what, self._last())

    def _last(self) -> Path | None:
        """``last.ckpt`` of the run if it exists (written before the divergence: see the module docstring)."""
        last = self.checkpoint_dir and self.checkpoint_dir / "last.ckpt"
        return last if last is not None and last.is_file() else None

    def check_state(self, step: int, parameters: Iterable[Tensor], lambdas: Tensor, rho: Tensor) -> None:
        """Raise :class:`TrainingDiverged` at ``step`` if a network weight, lambda or rho is not finite now
        (before a checkpoint or a validation, and after a failed step: one synchronization)."""
        bad = [name for name, finite in (
            ("network weights", all(bool(p.detach().isfinite().all()) for p in parameters)),
            ("lambda", bool(lambdas.isfinite().all())), ("rho", bool(rho.isfinite().all()))) if not finite]
        if bad:
            raise TrainingDiverged(step, ", ".join(bad), self._last())
