"""The tolerance rule's iterations (:func:`iterate`, batch-last) for :meth:`mechanisms.sinkhorn.Sinkhorn.solve`;
docs/sinkhorn.md ("How it is fast") describes them."""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

__all__ = ["check_interval", "iterate", "logsumexp", "safe_log"]


def safe_log(x: Tensor) -> Tensor:
    """``log x`` with ``log 0 = -inf`` (zero marginals are allowed)."""
    return torch.where(x > 0, x.log(), torch.full_like(x, -math.inf))


def logsumexp(x: Tensor, dim: int, inplace: bool) -> Tensor:
    """Max-shifted ``log sum exp`` of ``x`` over ``dim``; overwrites ``x`` when ``inplace``.

    ``torch.logsumexp`` costs several times more for these short reductions.  The detached shift's gradient cancels.
    """
    shift = x.detach().amax(dim, keepdim=True)
    if inplace:
        return x.sub_(shift).exp_().sum(dim).log_().add_(shift.squeeze(dim))
    return (x - shift).exp().sum(dim).log() + shift.squeeze(dim)


# Below this max relative row error the multiplicative updates cannot empty a row or a
# column (see iterate); every _REFRESH-th iteration is a log-domain one all the same.
_SAFE_ERROR = 0.5
_REFRESH = 10


def check_interval(previous: tuple[int, float] | None, done: int, error: float, tol: float, most: int) -> int:
    """Iterations until the next convergence check, between ``min(2, most)`` and ``most``: fewer than ``most``
    where the linear rate since the ``previous`` check (iteration, error) predicts convergence sooner."""
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


def iterate(kernel: Tensor, a: Tensor, b: Tensor, f: Tensor, epsilons: Sequence[float], tol: float, max_iter: int,
            check_every: int) -> _Iterates:
    """Run the epsilon-scaled Sinkhorn iterations in the batch-last layout.

    ``kernel`` is ``-cost`` as ``(N, M, batch)`` (contiguous: every op runs over long batch vectors), ``a`` is
    ``(N, batch)``, ``b`` ``(M, batch)`` and ``f`` ``(N, batch)`` the starting row potentials in cost units (``-inf``
    where ``a`` is 0).  The first epsilon starts with a column update from ``f``, every later one with a log-domain
    iteration.  Below ``_SAFE_ERROR`` the plan's rows and columns are rescaled directly (tracking the column
    scalings for ``v``): the range of the ratios ``rows / a`` never widens, so no row or column underflows, and a
    log-domain iteration every ``_REFRESH`` restores underflowed entries.  Without autograd all runs in one buffer.
    """
    inplace = not (torch.is_grad_enabled() and kernel.requires_grad)
    scratch = torch.empty_like(kernel) if inplace else None
    log_a, log_b = safe_log(a), safe_log(b)
    # ratio(sums, m) = sums / m, and 1 where the marginal is zero (such rows and columns stay 0).
    inv_a, idle_a = torch.where(a > 0, 1 / a, 0.0), (a == 0).to(a.dtype)
    inv_b, idle_b = torch.where(b > 0, 1 / b, 0.0), (b == 0).to(b.dtype)

    def multiply(x: Tensor, y: Tensor) -> Tensor:
        return x.mul_(y) if inplace else x * y

    def row_potential(scaled: Tensor, v: Tensor) -> Tensor:  # log-domain row update: u (N, batch)
        x = torch.add(scaled, v.unsqueeze(0), out=scratch) if inplace else scaled + v.unsqueeze(0)
        return log_a - logsumexp(x, 1, inplace)

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

    converged, error, previous_eps = False, math.inf, float(epsilons[0])
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
                next_check = done + check_interval(last_check, done, error, tol, check_every)
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
        stage_iterations.append(done)
    with torch.no_grad():  # u that reproduces the plan: a row update (in a fresh buffer) plus log(rows / a)
        v = v.detach()
        u = log_a - logsumexp(scaled + v.unsqueeze(0), 1, inplace=True) + row_ratio.detach().log()
    # The plan may live in the scratch buffer; (batch, N, M) is a view of it when batch == 1.
    plan = plan.permute(2, 0, 1).contiguous()
    return _Iterates(plan, u, v, sum(stage_iterations), converged, error, tuple(stage_iterations))
