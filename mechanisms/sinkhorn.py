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
see :func:`_iterate`).

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
from dataclasses import dataclass
from typing import Literal, NamedTuple, Sequence

import torch
from torch import Tensor

from mechanisms.sinkhorn_implicit import ImplicitSinkhorn

__all__ = [
    "GeometricEpsilonSchedule",
    "SinkhornNotConverged",
    "SinkhornResult",
    "geometric_epsilons",
    "sinkhorn",
    "solve",
]

GradMode = Literal["implicit", "unroll"]


@dataclass(frozen=True)
class GeometricEpsilonSchedule:
    """Geometric epsilon schedule from ``init`` to ``final`` in ``steps`` values.

    A pure function of the step index (``schedule(t)``), so it is resume-safe;
    ``schedule.values()`` gives the whole sequence, whose last entry is ``final``.
    The paper uses ``GeometricEpsilonSchedule(1.0, 0.05, 10)``.
    """

    init: float = 1.0
    final: float = 0.05
    steps: int = 10

    def __post_init__(self) -> None:
        if not (self.init > 0 and self.final > 0):
            raise ValueError(f"epsilon must be positive, got init={self.init}, final={self.final}")
        if int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"epsilon schedule needs steps >= 1, got {self.steps}")

    def __call__(self, t: int) -> float:
        """Epsilon at step ``t`` in ``[0, steps)``."""
        if not 0 <= t < self.steps:
            raise IndexError(f"step {t} outside the schedule's {self.steps} steps")
        # Endpoints exactly (exp(log(x)) need not round-trip).
        if t == self.steps - 1:
            return float(self.final)
        if t == 0:
            return float(self.init)
        ratio = t / (self.steps - 1)
        return float(math.exp((1 - ratio) * math.log(self.init) + ratio * math.log(self.final)))

    def values(self) -> tuple[float, ...]:
        """All epsilons of the schedule, first to last."""
        return tuple(self(t) for t in range(self.steps))


def geometric_epsilons(eps_init: float, eps_final: float, steps: int) -> tuple[float, ...]:
    """Geometric sequence of ``steps`` epsilons from ``eps_init`` to ``eps_final``."""
    return GeometricEpsilonSchedule(eps_init, eps_final, steps).values()


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


def _check_inputs(
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


def _check_init(init: Tensor, a: Tensor) -> Tensor:
    """Validate warm-start row potentials against the ``(batch, N)`` marginals ``a``."""
    if not isinstance(init, Tensor) or tuple(init.shape) != tuple(a.shape):
        shape = tuple(init.shape) if isinstance(init, Tensor) else type(init).__name__
        raise ValueError(f"init must be the row potentials f of shape {tuple(a.shape)}, got {shape}")
    init = init.detach().to(dtype=a.dtype, device=a.device)
    if not bool(torch.isfinite(init[a > 0]).all()):
        raise ValueError("init must be finite where the row marginal is positive")
    return init


def _safe_log(x: Tensor) -> Tensor:
    """``log x`` with ``log 0 = -inf`` (zero marginals are allowed)."""
    return torch.where(x > 0, x.log(), torch.full_like(x, -math.inf))


def _logsumexp(x: Tensor, dim: int, inplace: bool) -> Tensor:
    """Max-shifted ``log sum exp`` of ``x`` over ``dim``; overwrites ``x`` when ``inplace``.

    Written out because ``torch.logsumexp`` costs several times more for the
    short reduction dimensions of this layer.  The shift is detached: its
    gradient cancels exactly.
    """
    shift = x.detach().amax(dim, keepdim=True)
    if inplace:
        return x.sub_(shift).exp_().sum(dim).log_().add_(shift.squeeze(dim))
    return (x - shift).exp().sum(dim).log() + shift.squeeze(dim)


# Below this max relative row error the multiplicative updates cannot empty a row or a
# column (see _iterate); every _REFRESH-th iteration is a log-domain one all the same.
_SAFE_ERROR = 0.5
_REFRESH = 10


def _check_interval(previous: tuple[int, float] | None, done: int, error: float, tol: float, most: int) -> int:
    """Iterations until the next convergence check, between ``min(2, most)`` and ``most``.

    Fewer than ``most`` where the linear rate seen since the ``previous`` check
    (iteration, error) predicts convergence sooner: overshooting by up to
    ``most - 1`` iterations at every epsilon costs more than a few host
    synchronizations, but two checks in a row are never needed.
    """
    shortest = min(2, most)
    if previous is None:
        return shortest
    previous_done, previous_error = previous
    if not 0 < error < previous_error:
        return most
    rate = math.log(error / previous_error) / (done - previous_done)  # log-error per iteration, < 0
    return max(shortest, min(most, math.ceil(math.log(tol / error) / rate)))


class _Iterates(NamedTuple):
    plan: Tensor  # (batch, N, M), contiguous
    u: Tensor  # (N, batch): f / eps at the final epsilon
    v: Tensor  # (M, batch): g / eps at the final epsilon
    iterations: int
    converged: bool
    error: float
    stage_iterations: tuple[int, ...]


def _iterate(
    kernel: Tensor,
    a: Tensor,
    b: Tensor,
    f: Tensor,
    epsilons: Sequence[float],
    tol: float,
    max_iter: int,
    check_every: int,
) -> _Iterates:
    """Run the epsilon-scaled Sinkhorn iterations in the batch-last layout.

    ``kernel`` is ``-cost`` as ``(N, M, batch)`` (contiguous, so that every
    elementwise op and reduction runs over long contiguous batch vectors),
    ``a`` is ``(N, batch)``, ``b`` is ``(M, batch)`` and ``f`` ``(N, batch)``
    the starting row potentials in cost units (``-inf`` where ``a`` is 0).

    The first epsilon starts with a column update from ``f``, every later one
    with a log-domain iteration (a row then a column update, Algorithm 1);
    both are stabilized and work from any starting point.  Once the plan's max
    relative row error is below ``_SAFE_ERROR``, the iterations rescale the
    plan's rows and columns directly (two reductions and two products, no
    ``exp``), keeping track of the column scalings for ``v``.  This is safe:
    the range of the row-sum ratios ``rows / a`` never widens under Sinkhorn
    iterations, so no row or column can underflow to zero; entries that
    underflow are restored by a log-domain iteration every ``_REFRESH``
    iterations.  Without autograd everything runs in place in one buffer.
    """
    inplace = not (torch.is_grad_enabled() and kernel.requires_grad)
    scratch = torch.empty_like(kernel) if inplace else None
    log_a, log_b = _safe_log(a), _safe_log(b)
    # ratio(sums, m) = sums / m, and 1 where the marginal is zero (such rows and columns stay 0).
    inv_a, idle_a = torch.where(a > 0, 1 / a, 0.0), (a == 0).to(a.dtype)
    inv_b, idle_b = torch.where(b > 0, 1 / b, 0.0), (b == 0).to(b.dtype)

    def multiply(x: Tensor, y: Tensor) -> Tensor:
        return x.mul_(y) if inplace else x * y

    def row_potential(scaled: Tensor, v: Tensor) -> Tensor:  # log-domain row update: u (N, batch)
        x = torch.add(scaled, v.unsqueeze(0), out=scratch) if inplace else scaled + v.unsqueeze(0)
        return log_a - _logsumexp(x, 1, inplace)

    def column_update(scaled: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:  # -> (v, plan (N, M, batch))
        x = torch.add(scaled, u.unsqueeze(1), out=scratch) if inplace else scaled + u.unsqueeze(1)
        shift = x.detach().amax(0, keepdim=True)
        e = x.sub_(shift).exp_() if inplace else (x - shift).exp()
        total = e.sum(0)  # >= 1: the largest term is exp(0)
        v = log_b - total.log() - shift.squeeze(0)
        return v, multiply(e, (b / total).unsqueeze(0))  # columns sum to b (zero columns to 0)

    def scaling_iteration(plan: Tensor, row_ratio: Tensor, pending: Tensor) -> tuple[Tensor, Tensor]:
        # Reciprocals of the small ratios, then products: much cheaper than dividing the plan.
        plan = multiply(plan, row_ratio.reciprocal().unsqueeze(1))
        column_scale = torch.addcmul(idle_b, plan.sum(0), inv_b).reciprocal()
        return multiply(plan, column_scale.unsqueeze(0)), multiply(pending, column_scale)

    iterations, converged, error, previous_eps = 0, False, math.inf, float(epsilons[0])
    stage_iterations: list[int] = []
    for index, eps in enumerate(map(float, epsilons)):
        scaled = kernel / eps
        if index == 0:
            v, plan = column_update(scaled, f / eps)
            done = 0
        else:  # the potentials in cost units, g = eps * v, carry over
            v, plan = column_update(scaled, row_potential(scaled, v * (previous_eps / eps)))
            done = 1
        previous_eps = eps
        pending = torch.ones_like(v)  # column scalings since the last log-domain update
        since_refresh, known_error, converged, next_check, last_check = 0, math.inf, False, done, None
        while True:
            # The columns are exact after every update; the rows are off by row_ratio.
            row_ratio = torch.addcmul(idle_a, plan.sum(1), inv_a)  # (N, batch)
            if done >= next_check or done == max_iter:
                known_error = error = float((row_ratio.detach() - 1.0).abs().amax())  # one host sync
                if error < tol:
                    converged = True
                    break
                next_check = done + _check_interval(last_check, done, error, tol, check_every)
                last_check = (done, error)
            if done == max_iter:
                break
            if known_error < _SAFE_ERROR and since_refresh < _REFRESH - 1:
                plan, pending = scaling_iteration(plan, row_ratio, pending)
                since_refresh += 1
            else:
                v, plan = column_update(scaled, row_potential(scaled, v + pending.log()))
                pending, since_refresh = torch.ones_like(v), 0
            done += 1
        v = v + pending.log()
        iterations += done
        stage_iterations.append(done)
    with torch.no_grad():  # u that reproduces the plan: a row update (in a fresh buffer) plus log(rows / a)
        v = v.detach()
        u = log_a - _logsumexp(scaled + v.unsqueeze(0), 1, inplace=True) + row_ratio.detach().log()
    # The plan may live in the scratch buffer; (batch, N, M) is a view of it when batch == 1.
    plan = plan.permute(2, 0, 1).contiguous()
    return _Iterates(plan, u, v, iterations, converged, error, tuple(stage_iterations))


class SinkhornNotConverged(RuntimeWarning):
    """Warned by :func:`solve` when some problem's row marginals still miss by more than ``tol`` at the end."""


def _check_call(cost: Tensor, epsilons: Sequence[float]) -> None:
    """Clear errors for inputs that would otherwise fail deep inside (or be misread)."""
    if isinstance(epsilons, (str, bytes)) or isinstance(epsilons, (int, float)):
        raise ValueError(f"epsilons must be a sequence of positive floats, e.g. [1.0, 0.05], got {epsilons!r}")
    if isinstance(cost, Tensor) and cost.is_floating_point() and cost.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"cost must be float32 or float64, got {cost.dtype}: cast it, e.g. cost.float()")
    if isinstance(cost, Tensor) and cost.dim() == 3 and cost.shape[0] == 0:
        raise ValueError(f"cost holds no problem: batch size 0 (shape {tuple(cost.shape)})")


def solve(
    cost: Tensor,
    a: Tensor,
    b: Tensor,
    *,
    epsilons: Sequence[float],
    tol: float = 1e-2,
    max_iter: int = 1000,
    grad: GradMode = "implicit",
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
    _check_call(cost, epsilons)
    if grad not in ("implicit", "unroll"):
        raise ValueError(f"grad must be 'implicit' or 'unroll', got {grad!r}")
    a, b = _check_inputs(cost, a, b, epsilons, tol, max_iter)
    if check_every is None:
        check_every = 1 if cost.device.type == "cpu" else 5
    if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"check_every must be a positive integer, got {check_every!r}")
    final_eps = float(epsilons[-1])
    implicit = grad == "implicit"
    with torch.no_grad() if implicit else contextlib.nullcontext():
        kernel = cost.permute(1, 2, 0).contiguous()  # batch-last (N, M, batch), see _iterate
        # A constant added to one problem's cost changes neither its iterates nor its plan
        # (only g); centring each problem keeps float32 potentials small for offset costs.
        shift = (kernel.detach().amax((0, 1)) + kernel.detach().amin((0, 1))) / 2  # (batch,)
        kernel = shift - kernel
        a_t = a.t().contiguous()  # (N, batch)
        f = torch.zeros_like(a_t) if init is None else _check_init(init, a).t()
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
    tol: float = 1e-2,
    max_iter: int = 1000,
    grad: GradMode = "implicit",
    check_every: int | None = None,
    init: Tensor | None = None,
    return_result: bool = False,
) -> Tensor | SinkhornResult:
    """Transport plan ``(batch, N, M)`` of :func:`solve` (same arguments).

    With ``return_result=True`` the whole :class:`SinkhornResult` (``converged``, ``marginal_error``, ...).
    """
    result = solve(
        cost, a, b, epsilons=epsilons, tol=tol, max_iter=max_iter, grad=grad, check_every=check_every, init=init
    )
    return result if return_result else result.plan
