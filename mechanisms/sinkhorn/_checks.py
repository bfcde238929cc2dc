"""Checks of the tensors given to the solver: the cost, the marginals and the warm start.

Clear one-line errors for inputs that would otherwise fail deep inside the
iterations or be misread.  The settings (schedule, stopping rule, gradient
mode, backend) are checked where they are built, in :mod:`._settings`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_init", "check_problem"]


def check_problem(cost: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Validate the cost ``(batch, N, M)`` and the marginals; return ``a`` and ``b`` broadcast to
    ``(batch, N)``, ``(batch, M)``."""
    if not isinstance(cost, Tensor) or cost.dim() != 3:
        raise ValueError(f"cost must be a (batch, N, M) tensor, got shape {tuple(getattr(cost, 'shape', ()))}")
    if cost.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"cost must be float32 or float64, got {cost.dtype}: cast it, e.g. cost.float()")
    if cost.shape[0] == 0:
        raise ValueError(f"cost holds no problem: batch size 0 (shape {tuple(cost.shape)})")
    batch, n, m = cost.shape
    if n == 0 or m == 0:
        raise ValueError(f"cost must have at least one row and one column, got shape {tuple(cost.shape)}")
    if not bool(torch.isfinite(cost).all()):
        raise ValueError("cost contains NaN or Inf; check the bids and the allocation network")

    def marginal(x: Tensor, size: int, name: str) -> Tensor:
        x = torch.as_tensor(x, dtype=cost.dtype, device=cost.device)
        if x.shape not in ((size,), (batch, size)):
            raise ValueError(f"{name} must have shape ({size},) or ({batch}, {size}), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()) or bool((x < 0).any()):
            raise ValueError(f"{name} must be finite and non-negative")
        return x.expand(batch, size)

    a, b = marginal(a, n, "a"), marginal(b, m, "b")
    total_a, total_b = a.sum(-1), b.sum(-1)
    if bool((total_a <= 0).any()):
        raise ValueError("marginals must have a positive total")
    if bool(((total_a - total_b).abs() > 1e-5 * total_a).any()):
        raise ValueError(
            f"marginal totals differ: sum(a)={total_a.flatten()[0].item():g}, sum(b)={total_b.flatten()[0].item():g}"
        )
    return a, b


def check_init(init: Tensor, a: Tensor) -> Tensor:
    """Validate warm-start row potentials against the ``(batch, N)`` marginals ``a``."""
    if not isinstance(init, Tensor) or tuple(init.shape) != tuple(a.shape):
        shape = tuple(init.shape) if isinstance(init, Tensor) else type(init).__name__
        raise ValueError(f"init must be the row potentials f of shape {tuple(a.shape)}, got {shape}")
    init = init.detach().to(dtype=a.dtype, device=a.device)
    if not bool(torch.isfinite(init[a > 0]).all()):
        raise ValueError("init must be finite where the row marginal is positive")
    return init


