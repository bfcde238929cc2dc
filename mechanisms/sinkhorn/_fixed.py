"""The iterations of the stopping rule :class:`FixedIterations`: a set number per epsilon, no host synchronization.

The tolerance rule checks the marginal error as it goes, which costs a host
synchronization per check and makes the amount of work data-dependent:
neither fits a CUDA graph.  :func:`run_fixed` runs ``iterations[s]``
log-domain row+column updates at ``epsilons[s]`` and nothing else, so the same
kernels run every call.  The counts come from
:meth:`~mechanisms.sinkhorn.Sinkhorn.calibrate`, which runs the tolerance rule
on representative costs and keeps its per-epsilon iteration counts (plus a
margin), then checks that the fixed schedule meets ``tol`` on them.

The iterates are those of the tolerance rule (both start with a column
update from ``f = 0`` and keep the potentials in cost units across epsilons),
so with the calibrated counts the two give the same plan up to rounding.
Inputs are trusted: check them once with the tolerance rule (or the
calibration), not in the hot loop.

Backends: ``"torch"`` (any device, also differentiable by unrolling) and
``"triton"`` (one fused kernel per solve on CUDA, :mod:`._triton`);
``"auto"`` picks Triton on CUDA when it is installed.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from mechanisms.sinkhorn._implicit import ImplicitSinkhorn
from mechanisms.sinkhorn._iterations import logsumexp, safe_log
from mechanisms.sinkhorn._settings import Backend, GradMode, check_backend

__all__ = ["resolve_backend", "row_error", "run_fixed"]


def resolve_backend(backend: Backend, device: torch.device) -> str:
    """``"torch"`` or ``"triton"`` for ``backend`` on ``device`` (``"auto"``: Triton on CUDA if importable)."""
    check_backend(backend)
    if backend == "auto":
        from mechanisms.sinkhorn import _triton

        return "triton" if device.type == "cuda" and _triton.available() else "torch"
    return backend


def torch_plan(cost: Tensor, a: Tensor, b: Tensor, epsilons: Sequence[float], iterations: Sequence[int]) -> Tensor:
    """The fixed schedule in plain torch ops; ``cost`` ``(batch, N, M)``, ``a`` ``(N,)``, ``b`` ``(M,)``."""
    shift = (cost.amax((1, 2), keepdim=True) + cost.amin((1, 2), keepdim=True)) / 2
    kernel = shift - cost  # centred, as under the tolerance rule (Sinkhorn.solve)
    log_a, log_b = safe_log(a), safe_log(b)
    f = torch.where(a > 0, 0.0, -math.inf).to(cost).expand(cost.shape[0], -1)  # (batch, N)
    # Every reduction below has a finite entry (some a_i > 0 and some b_j > 0), so no -inf - -inf.
    # Without autograd each update's temporaries are overwritten in place (as in iterate).  No out=
    # buffer: the marginals may have another dtype than the cost (the sums then promote, as before).
    inplace = not (torch.is_grad_enabled() and cost.requires_grad)

    def scaled_lse(potential: Tensor, eps: float, dim: int) -> Tensor:  # log sum exp((kernel + potential) / eps)
        x = kernel + potential
        return logsumexp(x.div_(eps) if inplace else x / eps, dim, inplace)

    def column(f: Tensor, eps: float) -> Tensor:  # g (batch, M)
        return eps * (log_b - scaled_lse(f.unsqueeze(2), eps, 1))

    def row(g: Tensor, eps: float) -> Tensor:  # f (batch, N)
        return eps * (log_a - scaled_lse(g.unsqueeze(1), eps, 2))

    g = column(f, float(epsilons[0]))
    for eps, count in zip(map(float, epsilons), iterations):
        for _ in range(int(count)):
            f = row(g, eps)
            g = column(f, eps)
    eps = float(epsilons[-1])
    return ((f.unsqueeze(2) + g.unsqueeze(1) + kernel) / eps).exp()


def run_fixed(
    cost: Tensor, a: Tensor, b: Tensor, epsilons: Sequence[float], iterations: Sequence[int], grad: GradMode, backend: Backend
) -> Tensor:
    """Transport plan ``(batch, N, M)`` after ``iterations[s]`` updates at each ``epsilons[s]``.

    Args:
        cost: ``(batch, N, M)`` finite costs (not checked).
        a, b: ``(N,)`` and ``(M,)`` marginals shared by the batch, equal totals (not checked).
        epsilons: the epsilon schedule; iterations: row+column updates at each epsilon (as many).
        grad: ``"implicit"`` (the implicit-function backward) or ``"unroll"`` (torch backend only).
        backend: ``"auto"``, ``"torch"`` or ``"triton"``.

    No host synchronization and no data-dependent control flow: safe to capture in a CUDA graph.
    """
    backend = resolve_backend(backend, cost.device)
    if grad == "unroll":
        if backend != "torch":
            raise ValueError("grad='unroll' needs the torch backend")
        return torch_plan(cost, a, b, epsilons, iterations)
    with torch.no_grad():
        if backend == "triton":
            from mechanisms.sinkhorn._triton import triton_plan

            plan = triton_plan(cost.detach(), a, b, epsilons, iterations)
        else:
            plan = torch_plan(cost.detach(), a, b, epsilons, iterations)
    if cost.requires_grad and torch.is_grad_enabled():
        plan = ImplicitSinkhorn.apply(cost, plan, float(epsilons[-1]))
    return plan


def row_error(plan: Tensor, a: Tensor) -> float:
    """Max relative row-marginal error of ``plan`` ``(batch, N, M)`` against ``a`` ``(N,)`` (zero rows skipped)."""
    rows = plan.sum(2)
    active = a > 0
    return float(((rows[:, active] / a[active]) - 1).abs().amax())
