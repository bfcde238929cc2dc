"""Implicit-function-theorem backward pass of the Sinkhorn layer.

Shared by both stopping rules of the solver (tolerance, :mod:`._iterations`, and
fixed iterations, :mod:`._fixed`): both compute a
balanced plan without autograd and attach this backward to it, so gradients
cost one batched ``(K, K)`` solve, ``K = min(N, M)``, whatever the number of
iterations.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ImplicitSinkhorn"]


_RIDGE = {torch.float16: 1e-2, torch.bfloat16: 1e-2, torch.float32: 1e-5, torch.float64: 1e-10}


class ImplicitSinkhorn(torch.autograd.Function):
    """Plan as a function of the cost, differentiated with the implicit function theorem.

    At a balanced plan ``P = exp((f + g - C) / eps)`` with row sums ``r`` and
    column sums ``c``, perturbing ``C`` and keeping the marginals fixed gives
    ``dL/dC = P * (x_i + y_j - G_ij) / eps`` where ``G = dL/dP`` and ``(x, y)``
    solve ``[[diag r, P], [P^T, diag c]] [x; y] = [(G*P) 1; (G*P)^T 1]``.
    The system is reduced to its smaller side by a Schur complement; its one
    null direction (``x + t, y - t``) does not change the gradient and is
    removed by adding ``w w^T`` (``w``: the indicator of non-zero marginals),
    and a relative ridge on the diagonal keeps near-permutation plans solvable.
    """

    @staticmethod
    def forward(ctx, cost: Tensor, plan: Tensor, eps: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(plan)
        ctx.eps = eps
        return plan

    @staticmethod
    def backward(ctx, grad_plan: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (plan,) = ctx.saved_tensors
        eps = ctx.eps
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
        # A relative ridge keeps nearly disconnected plans (near-permutations) solvable;
        # the directions it damps leave the gradient unchanged up to the tiny couplings.
        ridge = 1.0 + _RIDGE[p.dtype]
        schur = torch.diag_embed(cols * ridge + (1 - active)) - p.transpose(1, 2) @ p_scaled
        schur = schur + active.unsqueeze(2) * active.unsqueeze(1)
        rhs = rhs_cols - (p_scaled.transpose(1, 2) @ rhs_rows.unsqueeze(2)).squeeze(2)
        y = torch.linalg.solve_ex(schur, rhs)[0]  # (batch, K); _ex: no host synchronization
        x = (rhs_rows - (p @ y.unsqueeze(2)).squeeze(2)) * inv_rows  # (batch, L)
        grad = p * (x.unsqueeze(2) + y.unsqueeze(1)) - q
        if transpose:
            grad = grad.transpose(1, 2)
        return grad / eps, None, None
