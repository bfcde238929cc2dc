"""Argument checks of the Sinkhorn solvers (:mod:`mechanisms.sinkhorn`, :mod:`mechanisms.sinkhorn_fixed`).

Clear one-line errors for inputs that would otherwise fail deep inside the
iterations or be misread.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["check_call", "check_init", "check_inputs"]


def check_call(cost: Tensor, epsilons: Sequence[float]) -> None:
    """Clear errors for inputs that would otherwise fail deep inside (or be misread)."""
    if isinstance(epsilons, (str, bytes, int, float)):
        raise ValueError(f"epsilons must be a sequence of positive floats, e.g. [1.0, 0.05], got {epsilons!r}")
    if isinstance(cost, Tensor) and cost.is_floating_point() and cost.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"cost must be float32 or float64, got {cost.dtype}: cast it, e.g. cost.float()")
    if isinstance(cost, Tensor) and cost.dim() == 3 and cost.shape[0] == 0:
        raise ValueError(f"cost holds no problem: batch size 0 (shape {tuple(cost.shape)})")


def check_inputs(
    cost: Tensor, a: Tensor, b: Tensor, epsilons: Sequence[float], tol: float, max_iter: int
) -> tuple[Tensor, Tensor]:
    """Validate arguments; return ``a`` and ``b`` broadcast to ``(batch, N)``, ``(batch, M)``."""
    if not isinstance(cost, Tensor) or cost.dim() != 3:
        raise ValueError(f"cost must be a (batch, N, M) tensor, got shape {tuple(getattr(cost, 'shape', ()))}")
    if not cost.is_floating_point():
        raise ValueError(f"cost must be float32 or float64, got {cost.dtype}")
    batch, n, m = cost.shape
    if n == 0 or m == 0:
        raise ValueError(f"cost must have at least one row and one column, got shape {tuple(cost.shape)}")
    if not bool(torch.isfinite(cost).all()):
        raise ValueError("cost contains NaN or Inf; check the bids and the allocation network")
    if len(epsilons) == 0:
        raise ValueError("epsilons is empty: give at least the final epsilon, e.g. [0.05]")
    if any(not (float(e) > 0 and math.isfinite(float(e))) for e in epsilons):
        raise ValueError(f"every epsilon must be positive and finite, got {list(epsilons)}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter}")

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


