"""Batched, log-domain, epsilon-scaled Sinkhorn layer (Algorithm 1 of the paper).

The layer solves, for every problem ``b`` in a batch, the entropy-regularized
transport problem

    min_P  <P, C>  +  eps * sum_ij P_ij log P_ij      s.t.  P 1 = a,  P^T 1 = b

with the stabilized log-domain updates of Peyre & Cuturi (2019)::

    f_i = -eps * log sum_j exp((g_j - C_ij) / eps) + eps * log a_i
    g_j = -eps * log sum_i exp((f_i - C_ij) / eps) + eps * log b_j

and returns the plan ``P_ij = exp((f_i + g_j - C_ij) / eps)``.  The potentials
are warm-started across a decreasing epsilon schedule.  Column marginals are
exact after every column update; iteration at one epsilon stops when the
maximum relative row-marginal error drops below ``tol``.  For speed the
iterations run batch-last and, once the plan is close to balanced, rescale its
rows and columns directly (the same Sinkhorn iterates without ``exp``/``log``;
see :func:`mechanisms.sinkhorn_iterations._iterate`).

Two backward passes are available:

* ``grad="implicit"`` (default): the forward iterations run without autograd
  and the backward pass solves the linear system given by the implicit
  function theorem at the returned plan (one batched ``(K, K)`` solve with
  ``K = min(N, M)``).  Cost and memory do not grow with the iteration count.
* ``grad="unroll"``: autograd through every iteration, as in the paper.

Shapes: ``cost`` is ``(batch, N, M)`` with ``N = agents (+ dummy agent)`` and
``M = items (+ dummy item)``.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from mechanisms.checks import check_positive_int
from mechanisms.sinkhorn_checks import check_call, check_init, check_inputs
from mechanisms.sinkhorn_implicit import ImplicitSinkhorn
from mechanisms.sinkhorn_iterations import _iterate
from mechanisms.sinkhorn_settings import GeometricEpsilonSchedule, GradMode, SinkhornSettings, check_grad, geometric_epsilons

__all__ = [
    "GeometricEpsilonSchedule",  # re-exported from mechanisms.sinkhorn_settings
    "GradMode",
    "SinkhornNotConverged",
    "SinkhornResult",
    "geometric_epsilons",
    "sinkhorn",
    "solve",
]

class SinkhornResult(NamedTuple):
    """What :func:`solve` returns.

    plan:            ``(batch, N, M)`` transport plan.
    f, g:            ``(batch, N)``, ``(batch, M)`` dual potentials in cost units
                     at the final epsilon (``-inf`` where a marginal is zero);
                     detached from autograd.
    iterations:      total row+column updates over the whole schedule.
    converged:       whether the final epsilon met ``tol`` before ``max_iter``
                     (``None`` for a fixed schedule, which checks nothing).
    marginal_error:  max relative row-marginal error of ``plan`` (columns are
                     exact); NaN for a fixed schedule.
    stage_iterations: row+column updates at each epsilon (what a fixed
                     schedule needs to reproduce this solve, see
                     :mod:`mechanisms.sinkhorn_fixed`).
    """

    plan: Tensor
    f: Tensor
    g: Tensor
    iterations: int
    converged: bool | None
    marginal_error: float
    stage_iterations: tuple[int, ...] = ()


class SinkhornNotConverged(RuntimeWarning):
    """Warned by :func:`solve` when some problem's row marginals still miss by more than ``tol`` at the end."""


def solve(
    cost: Tensor,
    a: Tensor,
    b: Tensor,
    *,
    epsilons: Sequence[float],
    tol: float = SinkhornSettings.tol,
    max_iter: int = SinkhornSettings.max_iter,
    grad: GradMode = SinkhornSettings.grad,
    check_every: int | None = None,
    init: Tensor | None = None,
) -> SinkhornResult:
    """Solve a batch of entropy-regularized transport problems.

    Args:
        cost: ``(batch, N, M)`` cost matrices, finite.
        a: ``(N,)`` or ``(batch, N)`` row marginals, non-negative (zeros allowed).
        b: ``(M,)`` or ``(batch, M)`` column marginals with the same totals as ``a``.
        epsilons: decreasing epsilon schedule; the last entry is the final epsilon.
        tol: per-epsilon stopping threshold on the max relative row-marginal error.
        max_iter: maximum row+column updates at each epsilon.
        grad: ``"implicit"`` (implicit-function backward) or ``"unroll"`` (autograd
            through the iterations).
        check_every: the longest interval, in iterations, between convergence
            checks (each is one host synchronization).  Default: 1 on the CPU; 5
            on accelerators, where checks come every 2 to 5 iterations, sooner
            when the convergence rate seen so far predicts that ``tol`` is near.
        init: warm start: row potentials ``f`` ``(batch, N)`` in cost units, e.g.
            ``SinkhornResult.f`` of a previous solve of a similar cost (finite
            where ``a > 0``; entries where ``a == 0`` are ignored).  The first
            update computes ``g`` from them; the default is ``f = 0``.  With a
            warm start a short schedule (often just the final epsilon) suffices.

    Returns:
        :class:`SinkhornResult` whose ``plan`` is ``(batch, N, M)`` and
        differentiable with respect to ``cost``.  When some problem did not
        reach ``tol`` at the final epsilon (``converged`` is false), a
        :class:`SinkhornNotConverged` warning is issued: the plan's rows then
        miss their marginals by ``marginal_error`` (relative).
    """
    check_call(cost, epsilons)
    check_grad(grad)
    a, b = check_inputs(cost, a, b, epsilons, tol, max_iter)
    if check_every is None:
        check_every = 1 if cost.device.type == "cpu" else 5
    check_positive_int(check_every, "check_every")
    final_eps = float(epsilons[-1])
    implicit = grad == "implicit"
    with torch.no_grad() if implicit else contextlib.nullcontext():
        kernel = cost.permute(1, 2, 0).contiguous()  # batch-last (N, M, batch), see _iterate
        # A constant added to one problem's cost changes neither its iterates nor its plan
        # (only g); centring each problem keeps float32 potentials small for offset costs.
        shift = (kernel.detach().amax((0, 1)) + kernel.detach().amin((0, 1))) / 2  # (batch,)
        kernel = shift - kernel
        a_t = a.t().contiguous()  # (N, batch)
        f = torch.zeros_like(a_t) if init is None else check_init(init, a).t()
        f = torch.where(a_t > 0, f, -math.inf)
        out = _iterate(kernel, a_t, b.t().contiguous(), f, epsilons, tol, max_iter, check_every)
    plan = out.plan
    if not out.converged:
        warnings.warn(
            f"Sinkhorn did not converge: some row marginals miss by more than tol={tol:g} (relative) after "
            f"max_iter={max_iter} iterations at the final epsilon {final_eps:g}, so the plan's rows miss their marginals "
            "(SinkhornResult.marginal_error holds the error); raise max_iter or the final epsilon, or scale the cost down",
            SinkhornNotConverged,
            stacklevel=2,
        )
    if implicit and cost.requires_grad:
        plan = ImplicitSinkhorn.apply(cost, plan, final_eps)
    return SinkhornResult(
        plan=plan,
        f=(out.u * final_eps).t().contiguous(),
        g=(out.v * final_eps + shift.detach()).t().contiguous(),
        iterations=out.iterations,
        converged=out.converged,
        marginal_error=out.error,
        stage_iterations=out.stage_iterations,
    )


def sinkhorn(
    cost: Tensor,
    a: Tensor,
    b: Tensor,
    *,
    epsilons: Sequence[float],
    tol: float = SinkhornSettings.tol,
    max_iter: int = SinkhornSettings.max_iter,
    grad: GradMode = SinkhornSettings.grad,
    check_every: int | None = None,
    init: Tensor | None = None,
) -> Tensor:
    """Transport plan ``(batch, N, M)`` of :func:`solve` (same arguments; :func:`solve` gives the whole
    :class:`SinkhornResult`: ``converged``, ``marginal_error``, ...)."""
    return solve(
        cost, a, b, epsilons=epsilons, tol=tol, max_iter=max_iter, grad=grad, check_every=check_every, init=init
    ).plan
