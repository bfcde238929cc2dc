"""The Sinkhorn solver (:class:`Sinkhorn`; the method: docs/sinkhorn.md), the checks of its tensors, and its
functional forms for an explicit epsilon list (:func:`solve`, :func:`sinkhorn`, :func:`fixed_plan`, :func:`calibrate`).
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
from mechanisms.sinkhorn._fixed import ImplicitSinkhorn, row_error, run_fixed
from mechanisms.sinkhorn._iterations import iterate
from mechanisms.sinkhorn._settings import (Backend, FixedIterations, GradMode, SinkhornSettings, StoppingRule,
                                           Tolerance, check_backend, check_epsilons, check_grad, check_stopping)

__all__ = [
    "Calibration", "Sinkhorn", "SinkhornNotConverged", "SinkhornResult", "calibrate", "fixed_plan", "sinkhorn", "solve",
]  # fmt: skip


def check_problem(cost: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Validate the cost ``(batch, N, M)`` and the marginals; return them as ``(batch, N)``, ``(batch, M)``."""
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
        raise ValueError(f"marginal totals differ: sum(a)={total_a.flatten()[0].item():g}, "
                         f"sum(b)={total_b.flatten()[0].item():g}")
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


class SinkhornResult(NamedTuple):
    """What :meth:`Sinkhorn.solve` returns (fields: docs/sinkhorn.md; ``None``/NaN ones: fixed iterations)."""

    plan: Tensor  # (batch, N, M)
    f: Tensor | None  # (batch, N) detached potentials in cost units at the final epsilon (-inf at zero marginals)
    g: Tensor | None  # (batch, M)
    iterations: int  # row+column updates over the whole schedule
    converged: bool | None  # whether the final epsilon met tol before max_iter
    marginal_error: float  # max relative row-marginal error of plan (the columns are exact)
    stage_iterations: tuple[int, ...] = ()  # updates at each epsilon (what Sinkhorn.calibrate reproduces)


class SinkhornNotConverged(RuntimeWarning):
    """Warned by :meth:`Sinkhorn.solve` when some problem's row marginals still miss by more than ``tol`` at the end."""


class Calibration(NamedTuple):
    """What :meth:`Sinkhorn.calibrate` returns."""

    iterations: tuple[int, ...]  # row+column updates per epsilon for FixedIterations
    marginal_error: float  # max relative row error of the fixed iterations on the calibration costs
    tolerance_iterations: tuple[int, ...]  # the tolerance rule's own per-epsilon counts on them


@dataclass(frozen=True)
class Sinkhorn:
    """The Sinkhorn solver: a decreasing epsilon schedule (the last entry is the final epsilon), a stopping rule
    (:class:`Tolerance` or :class:`FixedIterations`: unchecked inputs, no host synchronization), a gradient mode
    and the fixed iterations' backend (the tolerance rule always runs torch); usually :meth:`from_settings`."""

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
        """Solve the transport problems of ``cost`` ``(batch, N, M)`` with marginals ``a`` ``(N,)`` or ``(batch, N)``
        and ``b`` ``(M,)`` or ``(batch, M)`` (fixed iterations: ``(N,)``, ``(M,)``); ``init`` (warm-start row
        potentials ``(batch, N)``) and ``check_every`` (default 1 on the CPU, 5 on accelerators) are the tolerance
        rule's (docs/sinkhorn.md).  A solve that misses ``tol`` warns :class:`SinkhornNotConverged`."""
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
            warnings.warn(f"Sinkhorn did not converge: some row marginals miss by more than tol={tol:g} (relative) "
                          f"after max_iter={max_iter} iterations at the final epsilon {final_eps:g}, so the plan's "
                          "rows miss their marginals (SinkhornResult.marginal_error holds the error); raise max_iter "
                          "or the final epsilon, or scale the cost down", SinkhornNotConverged, stacklevel=3)
        if implicit and cost.requires_grad:
            plan = ImplicitSinkhorn.apply(cost, plan, final_eps)
        f, g = (out.u * final_eps).t().contiguous(), (out.v * final_eps + shift.detach()).t().contiguous()
        return SinkhornResult(plan, f, g, out.iterations, out.converged, out.error, out.stage_iterations)

    def calibrate(self, cost: Tensor, a: Tensor, b: Tensor, margin: float = 0.25) -> Calibration:
        """Per-epsilon counts for :class:`FixedIterations` that bring ``cost`` ``(batch, N, M)`` within ``tol``.

        The tolerance rule's counts times ``1 + margin`` (rounded up); while the fixed iterations' row error on the
        same costs exceeds ``tol`` the final count grows by half (at most ``max_iter``).  Host synchronizations.
        """
        if not isinstance(self.stopping, Tolerance):
            raise ValueError("calibrate needs a solver on the tolerance rule: the counts are calibrated on tol and "
                             "max_iter")
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
    """Transport plan ``(batch, N, M)`` of :func:`solve` (the same keyword ``options``)."""
    return solve(cost, a, b, **options).plan


def fixed_plan(cost: Tensor, a: Tensor, b: Tensor, *, epsilons: Sequence[float], iterations: Sequence[int],
               grad: GradMode = "implicit", backend: Backend = "auto") -> Tensor:
    """Plan ``(batch, N, M)`` of ``Sinkhorn(epsilons, FixedIterations(iterations), grad, backend)`` (unchecked)."""
    return Sinkhorn(epsilons, FixedIterations(tuple(iterations)), grad, backend).solve(cost, a, b).plan


def calibrate(cost: Tensor, a: Tensor, b: Tensor, *, epsilons: Sequence[float], tol: float, max_iter: int,
              margin: float = 0.25, backend: Backend = "auto") -> Calibration:
    """:meth:`Sinkhorn.calibrate` of ``Sinkhorn(epsilons, Tolerance(tol, max_iter), backend=backend)``."""
    return Sinkhorn(epsilons, Tolerance(tol, max_iter), backend=backend).calibrate(cost, a, b, margin)
