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
see :func:`._iterations.iterate`).

:class:`Sinkhorn` is the solver, built from the frozen settings of
:mod:`._settings` (the epsilon schedule, the stopping rule, the gradient mode
and the backend); its stopping rule is either :class:`Tolerance` (the above)
or :class:`FixedIterations` (a set number of updates per epsilon, no checks
and no host synchronization, :mod:`._fixed`; :meth:`Sinkhorn.calibrate` finds
the counts).  :func:`solve`, :func:`sinkhorn`, :func:`fixed_plan` and
:func:`calibrate` are its functional forms for an explicit epsilon list.

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
from typing import Any, NamedTuple, Sequence

import torch
from torch import Tensor

from utils.checks import check_positive_int
from mechanisms.sinkhorn._checks import check_init, check_problem
from mechanisms.sinkhorn._fixed import row_error, run_fixed
from mechanisms.sinkhorn._implicit import ImplicitSinkhorn
from mechanisms.sinkhorn._iterations import iterate
from mechanisms.sinkhorn._settings import (
    Backend,
    FixedIterations,
    GradMode,
    SinkhornSettings,
    StoppingRule,
    Tolerance,
    check_backend,
    check_epsilons,
    check_grad,
    check_stopping,
)

__all__ = [
    "Calibration", "Sinkhorn", "SinkhornNotConverged", "SinkhornResult", "calibrate", "fixed_plan", "sinkhorn", "solve",
]  # fmt: skip


class SinkhornResult(NamedTuple):
    """What :meth:`Sinkhorn.solve` returns.

    plan:            ``(batch, N, M)`` transport plan.
    f, g:            ``(batch, N)``, ``(batch, M)`` dual potentials in cost units
                     at the final epsilon (``-inf`` where a marginal is zero);
                     detached from autograd (``None`` for fixed iterations).
    iterations:      total row+column updates over the whole schedule.
    converged:       whether the final epsilon met ``tol`` before ``max_iter``
                     (``None`` for fixed iterations, which check nothing).
    marginal_error:  max relative row-marginal error of ``plan`` (columns are
                     exact); NaN for fixed iterations.
    stage_iterations: row+column updates at each epsilon (what fixed
                     iterations need to reproduce this solve, see
                     :meth:`Sinkhorn.calibrate`).
    """

    plan: Tensor
    f: Tensor | None
    g: Tensor | None
    iterations: int
    converged: bool | None
    marginal_error: float
    stage_iterations: tuple[int, ...] = ()


class SinkhornNotConverged(RuntimeWarning):
    """Warned by :meth:`Sinkhorn.solve` when some problem's row marginals still miss by more than ``tol`` at the end."""


class Calibration(NamedTuple):
    """What :meth:`Sinkhorn.calibrate` returns.

    iterations:     row+column updates per epsilon for :class:`FixedIterations`.
    marginal_error: max relative row error of the fixed iterations on the calibration costs.
    tolerance_iterations: the tolerance rule's own per-epsilon counts on them.
    """

    iterations: tuple[int, ...]
    marginal_error: float
    tolerance_iterations: tuple[int, ...]


@dataclass(frozen=True)
class Sinkhorn:
    """The Sinkhorn solver: an epsilon schedule, a stopping rule, a gradient mode and a backend.

    epsilons: decreasing epsilon schedule; the last entry is the final epsilon.
    stopping: :class:`Tolerance` (checks the row marginals as it goes) or
        :class:`FixedIterations` (a set number of updates per epsilon; inputs are
        not checked; no host synchronization, safe to capture in a CUDA graph).
    grad: ``"implicit"`` (implicit-function backward) or ``"unroll"`` (autograd
        through the iterations; fixed iterations: the torch backend only).
    backend: fixed iterations' kernels: ``"auto"`` (Triton on CUDA, else torch),
        ``"torch"`` or ``"triton"`` (the tolerance rule always runs torch).

    Build it from the settings of a mechanism or a config with :meth:`from_settings`.
    """

    epsilons: tuple[float, ...]
    stopping: StoppingRule = Tolerance()
    grad: GradMode = "implicit"
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilons", check_epsilons(self.epsilons))
        check_stopping(self.stopping, self.epsilons)
        check_grad(self.grad)
        check_backend(self.backend)

    @classmethod
    def from_settings(cls, settings: SinkhornSettings) -> "Sinkhorn":
        """The solver of ``settings``: its geometric schedule, its stopping rule in force, its grad and backend."""
        return cls(settings.epsilons, settings.stopping, settings.grad, settings.backend)

    def solve(self, cost: Tensor, a: Tensor, b: Tensor, *, init: Tensor | None = None,
              check_every: int | None = None) -> SinkhornResult:
        """Solve a batch of entropy-regularized transport problems.

        Args:
            cost: ``(batch, N, M)`` cost matrices, finite.
            a: ``(N,)`` or ``(batch, N)`` row marginals, non-negative (zeros allowed);
                ``(N,)`` for fixed iterations.
            b: ``(M,)`` or ``(batch, M)`` column marginals with the same totals as ``a``;
                ``(M,)`` for fixed iterations.
            init: tolerance rule only: warm start: row potentials ``f`` ``(batch, N)`` in cost
                units, e.g. ``SinkhornResult.f`` of a previous solve of a similar cost (finite
                where ``a > 0``; entries where ``a == 0`` are ignored).  The first update
                computes ``g`` from them; the default is ``f = 0``.  With a warm start a
                short schedule (often just the final epsilon) suffices.
            check_every: tolerance rule only: the longest interval, in iterations, between
                convergence checks (each is one host synchronization).  Default: 1 on the
                CPU; 5 on accelerators, where checks come every 2 to 5 iterations, sooner
                when the convergence rate seen so far predicts that ``tol`` is near.

        Returns:
            :class:`SinkhornResult` whose ``plan`` is ``(batch, N, M)`` and
            differentiable with respect to ``cost``.  When some problem did not
            reach ``tol`` at the final epsilon (``converged`` is false), a
            :class:`SinkhornNotConverged` warning is issued: the plan's rows then
            miss their marginals by ``marginal_error`` (relative).
        """
        if isinstance(self.stopping, FixedIterations):
            if init is not None or check_every is not None:
                raise ValueError("init and check_every apply to the tolerance rule, not to fixed iterations")
            counts = self.stopping.counts
            plan = run_fixed(cost, a, b, self.epsilons, counts, self.grad, self.backend)
            return SinkhornResult(plan, None, None, sum(counts), None, math.nan, counts)
        return self._solve_to_tolerance(cost, a, b, init, check_every)

    def _solve_to_tolerance(self, cost: Tensor, a: Tensor, b: Tensor, init: Tensor | None,
                            check_every: int | None) -> SinkhornResult:
        """:meth:`solve` under the stopping rule :class:`Tolerance`."""
        tol, max_iter = self.stopping.tol, self.stopping.max_iter
        a, b = check_problem(cost, a, b)
        if check_every is None:
            check_every = 1 if cost.device.type == "cpu" else 5
        check_positive_int(check_every, "check_every")
        epsilons, final_eps = self.epsilons, self.epsilons[-1]
        implicit = self.grad == "implicit"
        with torch.no_grad() if implicit else contextlib.nullcontext():
            kernel = cost.permute(1, 2, 0).contiguous()  # batch-last (N, M, batch), see iterate
            # A constant added to one problem's cost changes neither its iterates nor its plan
            # (only g); centring each problem keeps float32 potentials small for offset costs.
            shift = (kernel.detach().amax((0, 1)) + kernel.detach().amin((0, 1))) / 2  # (batch,)
            kernel = shift - kernel
            a_t = a.t().contiguous()  # (N, batch)
            f = torch.zeros_like(a_t) if init is None else check_init(init, a).t()
            f = torch.where(a_t > 0, f, -math.inf)
            out = iterate(kernel, a_t, b.t().contiguous(), f, epsilons, tol, max_iter, check_every)
        plan = out.plan
        if not out.converged:
            warnings.warn(
                f"Sinkhorn did not converge: some row marginals miss by more than tol={tol:g} (relative) after "
                f"max_iter={max_iter} iterations at the final epsilon {final_eps:g}, so the plan's rows miss their marginals "
                "(SinkhornResult.marginal_error holds the error); raise max_iter or the final epsilon, or scale the cost down",
                SinkhornNotConverged, stacklevel=3)
        if implicit and cost.requires_grad:
            plan = ImplicitSinkhorn.apply(cost, plan, final_eps)
        f, g = (out.u * final_eps).t().contiguous(), (out.v * final_eps + shift.detach()).t().contiguous()
        return SinkhornResult(plan, f, g, out.iterations, out.converged, out.error, out.stage_iterations)

    def calibrate(self, cost: Tensor, a: Tensor, b: Tensor, margin: float = 0.25) -> Calibration:
        """Per-epsilon counts for :class:`FixedIterations` that bring ``cost`` ``(batch, N, M)`` within ``tol``.

        Runs this solver's tolerance rule (which checks every input; ``a`` ``(N,)``, ``b`` ``(M,)``),
        scales its per-epsilon counts by ``1 + margin`` (rounded up), then runs the fixed iterations
        on the same costs with this solver's backend; while their row error exceeds ``tol`` the final
        epsilon's count grows by half (at most ``max_iter``).  A few host synchronizations: call it
        outside captured regions.
        """
        if not isinstance(self.stopping, Tolerance):
            raise ValueError("calibrate needs a solver on the tolerance rule: the counts are calibrated on tol and max_iter")
        if not margin >= 0:
            raise ValueError(f"calibration margin must be >= 0, got {margin}")
        tol, max_iter = self.stopping.tol, self.stopping.max_iter
        with torch.no_grad():
            reference = self.solve(cost, a, b)
            # Every later epsilon starts with a full update, which stage_iterations counts: those counts are >= 1.
            counts = [min(max_iter, math.ceil(k * (1 + margin))) for k in reference.stage_iterations]
            while True:
                plan = run_fixed(cost, a, b, self.epsilons, counts, self.grad, self.backend)
                error = row_error(plan, a)
                if error <= tol or counts[-1] >= max_iter:
                    break
                counts[-1] = min(max_iter, math.ceil(counts[-1] * 1.5) + 1)
        return Calibration(tuple(counts), error, reference.stage_iterations)


def solve(cost: Tensor, a: Tensor, b: Tensor, *, epsilons: Sequence[float], tol: float = Tolerance.tol,
          max_iter: int = Tolerance.max_iter, grad: GradMode = "implicit", check_every: int | None = None,
          init: Tensor | None = None) -> SinkhornResult:
    """:meth:`Sinkhorn.solve` of ``Sinkhorn(epsilons, Tolerance(tol, max_iter), grad)``: the functional form."""
    return Sinkhorn(epsilons, Tolerance(tol, max_iter), grad).solve(cost, a, b, init=init, check_every=check_every)


def sinkhorn(cost: Tensor, a: Tensor, b: Tensor, **options: Any) -> Tensor:
    """Transport plan ``(batch, N, M)`` of :func:`solve` (the same keyword ``options``; :func:`solve` gives the whole
    :class:`SinkhornResult`: ``converged``, ``marginal_error``, ...)."""
    return solve(cost, a, b, **options).plan


def fixed_plan(cost: Tensor, a: Tensor, b: Tensor, *, epsilons: Sequence[float], iterations: Sequence[int],
               grad: GradMode = "implicit", backend: Backend = "auto") -> Tensor:
    """Plan ``(batch, N, M)`` of ``Sinkhorn(epsilons, FixedIterations(iterations), grad, backend)``: ``iterations[s]``
    updates at each ``epsilons[s]``; ``cost`` and the marginals ``a`` ``(N,)``, ``b`` ``(M,)`` are not checked."""
    return Sinkhorn(epsilons, FixedIterations(tuple(iterations)), grad, backend).solve(cost, a, b).plan


def calibrate(cost: Tensor, a: Tensor, b: Tensor, *, epsilons: Sequence[float], tol: float, max_iter: int,
              margin: float = 0.25, backend: Backend = "auto") -> Calibration:
    """:meth:`Sinkhorn.calibrate` of ``Sinkhorn(epsilons, Tolerance(tol, max_iter), backend=backend)``."""
    return Sinkhorn(epsilons, Tolerance(tol, max_iter), backend=backend).calibrate(cost, a, b, margin)
