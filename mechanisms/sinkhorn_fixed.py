"""Fixed-schedule Sinkhorn: a set number of iterations per epsilon, no host synchronization.

The tolerance solver (:func:`mechanisms.sinkhorn.solve`) checks the marginal
error as it goes, which costs a host synchronization per check and makes the
amount of work data-dependent: neither fits a CUDA graph.  This solver runs
``iterations[s]`` log-domain row+column updates at ``epsilons[s]`` and nothing
else, so the same kernels run every call.  The counts come from
:func:`calibrate`, which runs the tolerance solver on representative costs
and keeps its per-epsilon iteration counts (plus a margin), then checks that
the fixed schedule meets ``tol`` on them.

The iterates are those of the tolerance solver (both start with a column
update from ``f = 0`` and keep the potentials in cost units across epsilons),
so with the calibrated counts the two give the same plan up to rounding.
Inputs are trusted: check them once with :func:`mechanisms.sinkhorn.solve`
(or :func:`calibrate`), not in the hot loop.

Backends: ``"torch"`` (any device, also differentiable by unrolling) and
``"triton"`` (one fused kernel per solve on CUDA, :mod:`mechanisms.sinkhorn_triton`);
``"auto"`` picks Triton on CUDA when it is installed.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from mechanisms.sinkhorn import GradMode, solve
from mechanisms.sinkhorn_implicit import ImplicitSinkhorn
from mechanisms.sinkhorn_iterations import _logsumexp, _safe_log
from mechanisms.sinkhorn_settings import Backend, SinkhornSettings, check_backend

__all__ = ["Backend", "Calibration", "calibrate", "fixed_plan", "resolve_backend"]

def resolve_backend(backend: Backend, device: torch.device) -> str:
    """``"torch"`` or ``"triton"`` for ``backend`` on ``device`` (``"auto"``: Triton on CUDA if importable)."""
    check_backend(backend)
    if backend == "auto":
        from mechanisms import sinkhorn_triton

        return "triton" if device.type == "cuda" and sinkhorn_triton.available() else "torch"
    return backend


def _torch_plan(cost: Tensor, a: Tensor, b: Tensor, epsilons: Sequence[float], iterations: Sequence[int]) -> Tensor:
    """The fixed schedule in plain torch ops; ``cost`` ``(batch, N, M)``, ``a`` ``(N,)``, ``b`` ``(M,)``."""
    shift = (cost.amax((1, 2), keepdim=True) + cost.amin((1, 2), keepdim=True)) / 2
    kernel = shift - cost  # centred, as in solve()
    log_a, log_b = _safe_log(a), _safe_log(b)
    f = torch.where(a > 0, 0.0, -math.inf).to(cost).expand(cost.shape[0], -1)  # (batch, N)
    # Every reduction below has a finite entry (some a_i > 0 and some b_j > 0), so no -inf - -inf.
    # Without autograd each update's temporaries are overwritten in place (as in _iterate).  No out=
    # buffer: the marginals may have another dtype than the cost (the sums then promote, as before).
    inplace = not (torch.is_grad_enabled() and cost.requires_grad)

    def scaled_lse(potential: Tensor, eps: float, dim: int) -> Tensor:  # log sum exp((kernel + potential) / eps)
        x = kernel + potential
        return _logsumexp(x.div_(eps) if inplace else x / eps, dim, inplace)

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


def fixed_plan(
    cost: Tensor,
    a: Tensor,
    b: Tensor,
    *,
    epsilons: Sequence[float],
    iterations: Sequence[int],
    grad: GradMode = SinkhornSettings.grad,
    backend: Backend = "auto",
) -> Tensor:
    """Transport plan ``(batch, N, M)`` after ``iterations[s]`` updates at each ``epsilons[s]``.

    Args:
        cost: ``(batch, N, M)`` finite costs (not checked).
        a, b: ``(N,)`` and ``(M,)`` marginals shared by the batch, equal totals (not checked).
        epsilons: the epsilon schedule, as for :func:`mechanisms.sinkhorn.solve`.
        iterations: row+column updates at each epsilon (``len(epsilons)`` entries), e.g.
            :attr:`Calibration.iterations`.
        grad: ``"implicit"`` (the implicit-function backward) or ``"unroll"`` (torch backend only).
        backend: ``"auto"``, ``"torch"`` or ``"triton"``.

    No host synchronization and no data-dependent control flow: safe to capture in a CUDA graph.
    """
    if len(iterations) != len(epsilons):
        raise ValueError(f"iterations needs one count per epsilon ({len(epsilons)}), got {len(iterations)}")
    backend = resolve_backend(backend, cost.device)
    if grad == "unroll":
        if backend != "torch":
            raise ValueError("grad='unroll' needs the torch backend")
        return _torch_plan(cost, a, b, epsilons, iterations)
    with torch.no_grad():
        if backend == "triton":
            from mechanisms.sinkhorn_triton import triton_plan

            plan = triton_plan(cost.detach(), a, b, epsilons, iterations)
        else:
            plan = _torch_plan(cost.detach(), a, b, epsilons, iterations)
    if cost.requires_grad and torch.is_grad_enabled():
        plan = ImplicitSinkhorn.apply(cost, plan, float(epsilons[-1]))
    return plan


def row_error(plan: Tensor, a: Tensor) -> float:
    """Max relative row-marginal error of ``plan`` ``(batch, N, M)`` against ``a`` ``(N,)`` (zero rows skipped)."""
    rows = plan.sum(2)
    active = a > 0
    return float(((rows[:, active] / a[active]) - 1).abs().amax())


class Calibration(NamedTuple):
    """What :func:`calibrate` returns.

    iterations:     row+column updates per epsilon for :func:`fixed_plan`.
    marginal_error: max relative row error of the fixed schedule on the calibration costs.
    tolerance_iterations: the tolerance solver's own per-epsilon counts on them.
    """

    iterations: tuple[int, ...]
    marginal_error: float
    tolerance_iterations: tuple[int, ...]


def calibrate(
    cost: Tensor,
    a: Tensor,
    b: Tensor,
    *,
    epsilons: Sequence[float],
    tol: float,
    max_iter: int,
    margin: float = 0.25,
    backend: Backend = "auto",
) -> Calibration:
    """Per-epsilon iteration counts that bring ``cost`` ``(batch, N, M)`` within ``tol``.

    Runs the tolerance solver (which checks every input), scales its
    per-epsilon counts by ``1 + margin`` (rounded up), then runs the fixed
    schedule on the same costs; while its row error exceeds ``tol`` the final
    epsilon's count grows by half (at most ``max_iter``).  A few host
    synchronizations: call it outside captured regions.
    """
    if not margin >= 0:
        raise ValueError(f"calibration margin must be >= 0, got {margin}")
    with torch.no_grad():
        reference = solve(cost, a, b, epsilons=epsilons, tol=tol, max_iter=max_iter)
        # Every later epsilon starts with a full update, which stage_iterations counts: those counts are >= 1.
        counts = [min(max_iter, math.ceil(k * (1 + margin))) for k in reference.stage_iterations]
        while True:
            plan = fixed_plan(cost, a, b, epsilons=epsilons, iterations=counts, backend=backend)
            error = row_error(plan, a)
            if error <= tol or counts[-1] >= max_iter:
                break
            counts[-1] = min(max_iter, math.ceil(counts[-1] * 1.5) + 1)
    return Calibration(tuple(counts), error, reference.stage_iterations)
