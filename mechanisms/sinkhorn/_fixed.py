"""The stopping rule :class:`FixedIterations` (a set number of updates per epsilon, no host synchronization) and
:class:`ImplicitSinkhorn`, the backward pass both stopping rules share.

The same kernels run every call (a CUDA graph fits); the iterates are the tolerance rule's, so with the counts of
:meth:`~mechanisms.sinkhorn.Sinkhorn.calibrate` the plans agree up to rounding.  Inputs are trusted.  Backends:
``"torch"``, ``"triton"`` (:mod:`._triton`), ``"auto"`` (Triton on CUDA when installed).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from mechanisms.sinkhorn._iterations import logsumexp, safe_log
from mechanisms.sinkhorn._settings import Backend, GradMode, check_backend

__all__ = ["ImplicitSinkhorn", "resolve_backend", "row_error", "run_fixed"]


_RIDGE = {torch.float16: 1e-2, torch.bfloat16: 1e-2, torch.float32: 1e-5, torch.float64: 1e-10}


class ImplicitSinkhorn(torch.autograd.Function):
    """Plan as a function of the cost, differentiated with the implicit function theorem: one batched ``(K, K)``
    solve, ``K = min(N, M)``, whatever the number of iterations.

    At a balanced plan ``P = exp((f + g - C) / eps)`` with row sums ``r`` and column sums ``c``, perturbing ``C`` and
    keeping the marginals fixed gives ``dL/dC = P * (x_i + y_j - G_ij) / eps`` where ``G = dL/dP`` and ``(x, y)``
    solve ``[[diag r, P], [P^T, diag c]] [x; y] = [(G*P) 1; (G*P)^T 1]``, reduced to its smaller side by a Schur
    complement; its null direction (``x + t, y - t``) is removed by adding ``w w^T`` (``w``: the indicator of
    non-zero marginals), and a relative ridge keeps near-permutation plans solvable.
    """

    @staticmethod
    def forward(ctx, cost: Tensor, plan: Tensor, eps: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(plan)
        ctx.eps = eps
        return plan

    @staticmethod
    def backward(ctx, grad_plan: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (plan,), eps = ctx.saved_tensors, ctx.eps
        weighted = grad_plan * plan  # (batch, N, M)
        # Eliminate the larger side; solve a (batch, K, K) system on the smaller one.
        transpose = plan.shape[1] < plan.shape[2]
        p = plan.transpose(1, 2) if transpose else plan  # (batch, L, K), L >= K
        q = weighted.transpose(1, 2) if transpose else weighted
        rows, cols = p.sum(2), p.sum(1)  # (batch, L), (batch, K)
        rhs_rows, rhs_cols = q.sum(2), q.sum(1)
        inv_rows = torch.where(rows > 0, 1.0 / rows.clamp_min(torch.finfo(p.dtype).tiny), torch.zeros_like(rows))
        p_scaled = p * inv_rows.unsqueeze(2)  # diag(1/r) P
        active = (cols > 0).to(p.dtype)
        # The ridge's damped directions leave the gradient unchanged up to the tiny couplings.
        schur = torch.diag_embed(cols * (1.0 + _RIDGE[p.dtype]) + (1 - active)) - p.transpose(1, 2) @ p_scaled
        schur = schur + active.unsqueeze(2) * active.unsqueeze(1)
        rhs = rhs_cols - (p_scaled.transpose(1, 2) @ rhs_rows.unsqueeze(2)).squeeze(2)
        y = torch.linalg.solve_ex(schur, rhs)[0]  # (batch, K); _ex: no host synchronization
        x = (rhs_rows - (p @ y.unsqueeze(2)).squeeze(2)) * inv_rows  # (batch, L)
        grad = p * (x.unsqueeze(2) + y.unsqueeze(1)) - q
        return (grad.transpose(1, 2) if transpose else grad) / eps, None, None


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


def run_fixed(cost: Tensor, a: Tensor, b: Tensor, epsilons: Sequence[float], iterations: Sequence[int], grad: GradMode,
              backend: Backend) -> Tensor:
    """Transport plan ``(batch, N, M)`` after ``iterations[s]`` updates at each ``epsilons[s]``; ``a`` ``(N,)`` and
    ``b`` ``(M,)`` shared by the batch; ``grad="unroll"`` needs the torch backend."""
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
