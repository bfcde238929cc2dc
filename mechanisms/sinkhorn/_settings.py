"""The solver's settings (the epsilon schedule, the stopping rule, the gradient mode, the backend): small frozen
objects, and the one home of every check of a setting.  :class:`SinkhornSettings` is the flat ``sinkhorn`` config
node (its defaults are the paper's and that node's, :mod:`runs.config_store`); docs/sinkhorn_package.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal, Sequence, Union

from utils.checks import check_int, check_positive_int

__all__ = [
    "BACKENDS", "Backend", "FixedIterations", "GRAD_MODES", "GeometricEpsilonSchedule", "GradMode",
    "SinkhornSettings", "StoppingRule", "Tolerance", "check_backend", "check_epsilons", "check_grad", "check_stopping",
    "geometric_epsilons",
]  # fmt: skip

GradMode = Literal["implicit", "unroll"]
GRAD_MODES = ("implicit", "unroll")
Backend = Literal["auto", "torch", "triton"]
BACKENDS = ("auto", "torch", "triton")
_TOLERANCE_RULE = ("eps_init", "eps_final", "eps_steps", "tol", "max_iter")  # a fixed schedule is calibrated on these


def check_grad(grad: str) -> None:
    if grad not in GRAD_MODES:
        raise ValueError(f"grad must be 'implicit' or 'unroll', got {grad!r}")


def check_backend(backend: str, name: str = "Sinkhorn backend") -> None:
    if backend not in BACKENDS:
        raise ValueError(f"{name} must be auto, torch or triton, got {backend!r}")


def check_epsilons(epsilons: Sequence[float]) -> tuple[float, ...]:
    """``epsilons`` as a tuple of floats; ``ValueError`` unless a non-empty sequence of positive finite numbers."""
    if isinstance(epsilons, (str, bytes, int, float)):
        raise ValueError(f"epsilons must be a sequence of positive floats, e.g. [1.0, 0.05], got {epsilons!r}")
    if len(epsilons) == 0:
        raise ValueError("epsilons is empty: give at least the final epsilon, e.g. [0.05]")
    if any(not (float(e) > 0 and math.isfinite(float(e))) for e in epsilons):
        raise ValueError(f"epsilon must be positive and finite, got {list(epsilons)}")
    return tuple(map(float, epsilons))


@dataclass(frozen=True)
class GeometricEpsilonSchedule:
    """Geometric epsilon schedule from ``init`` to ``final`` in ``steps`` values: ``schedule(t)`` (resume-safe),
    ``schedule.values()`` the whole sequence.  The paper's: ``GeometricEpsilonSchedule(1.0, 0.05, 10)``."""

    init: float = 1.0
    final: float = 0.05
    steps: int = 10

    def __post_init__(self) -> None:
        check_epsilons((self.init, self.final))
        if int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"epsilon schedule needs steps >= 1, got {self.steps}")

    def __call__(self, t: int) -> float:
        """Epsilon at step ``t`` in ``[0, steps)``."""
        if not 0 <= t < self.steps:
            raise IndexError(f"step {t} outside the schedule's {self.steps} steps")
        if t == self.steps - 1:  # endpoints exactly (exp(log(x)) need not round-trip)
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


@dataclass(frozen=True)
class Tolerance:
    """Stopping rule: at each epsilon, stop once the max relative row-marginal error is below ``tol``
    (the columns are exact), after at most ``max_iter`` row+column updates."""

    tol: float = 1e-2
    max_iter: int = 1000

    def __post_init__(self) -> None:
        if not (isinstance(self.tol, (int, float)) and 0 < self.tol < 1):  # >= 1 (or inf, nan) accepts any plan
            raise ValueError(f"tol must be positive and below 1 (a relative marginal error), got {self.tol!r}")
        check_positive_int(self.max_iter, "max_iter")


@dataclass(frozen=True)
class FixedIterations:
    """Stopping rule: ``counts[s]`` row+column updates at the ``s``-th epsilon, no checks and no host
    synchronization (e.g. the counts of :meth:`~mechanisms.sinkhorn.Sinkhorn.calibrate`)."""

    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", tuple(self.counts))
        for count in self.counts:
            check_int(count, "each fixed iteration count", minimum=0)


StoppingRule = Union[Tolerance, FixedIterations]


def check_stopping(stopping: StoppingRule, epsilons: tuple[float, ...]) -> None:
    """``ValueError`` unless ``stopping`` is a rule that fits the schedule ``epsilons``."""
    if not isinstance(stopping, (Tolerance, FixedIterations)):
        raise ValueError(f"the stopping rule must be Tolerance(...) or FixedIterations(...), got {stopping!r}")
    if isinstance(stopping, FixedIterations) and len(stopping.counts) != len(epsilons):
        raise ValueError(f"fixed iterations need one count per epsilon ({len(epsilons)}), got {len(stopping.counts)}")


@dataclass(frozen=True)
class SinkhornSettings:
    """Geometric epsilon schedule ``eps_init -> eps_final`` in ``eps_steps`` values, the tolerance rule (``tol``,
    ``max_iter``), the backward pass ``grad``, and ``fixed_iterations`` (``None``: the tolerance rule) run by
    ``backend``; :attr:`stopping` is the rule in force.  Defaults: the paper's (section 4.3)."""

    eps_init: float = GeometricEpsilonSchedule.init
    eps_final: float = GeometricEpsilonSchedule.final
    eps_steps: int = GeometricEpsilonSchedule.steps
    tol: float = Tolerance.tol
    max_iter: int = Tolerance.max_iter
    grad: GradMode = "implicit"
    fixed_iterations: tuple[int, ...] | None = None
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        check_grad(self.grad)
        init, final = self.eps_init, self.eps_final
        if isinstance(init, (int, float)) and isinstance(final, (int, float)) and 0 < init < final:
            raise ValueError(f"the epsilon schedule must not increase: eps_init={init} < eps_final={final}")
        object.__setattr__(self, "epsilons", geometric_epsilons(init, final, self.eps_steps))
        check_backend(self.backend)
        if self.fixed_iterations is not None:
            object.__setattr__(self, "fixed_iterations", tuple(self.fixed_iterations))
        for rule in (self.tolerance, self.stopping):  # building a rule validates its fields
            check_stopping(rule, self.epsilons)

    epsilons: tuple[float, ...] = dataclasses.field(init=False, repr=False, compare=False)  # the schedule (derived)

    @property
    def tolerance(self) -> Tolerance:
        """The tolerance rule (in force unless ``fixed_iterations`` is set; what a fixed schedule is calibrated on)."""
        return Tolerance(self.tol, self.max_iter)

    @property
    def stopping(self) -> StoppingRule:
        """The rule in force: :class:`FixedIterations` if ``fixed_iterations`` is set, else :attr:`tolerance`."""
        return self.tolerance if self.fixed_iterations is None else FixedIterations(self.fixed_iterations)

    def replace(self, **changes: object) -> "SinkhornSettings":
        """A copy with the given fields changed (``None`` values keep the current ones), validated; a change of the
        schedule or the stopping rule drops the fixed schedule calibrated on them."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if any(changes.get(name, getattr(self, name)) != getattr(self, name) for name in _TOLERANCE_RULE):
            changes.setdefault("fixed_iterations", None)
        return dataclasses.replace(self, **changes)

    def with_fixed_iterations(self, iterations: tuple[int, ...] | None) -> "SinkhornSettings":
        """A copy on the fixed schedule ``iterations`` (updates per epsilon), or on the tolerance rule for ``None``."""
        return dataclasses.replace(self, fixed_iterations=iterations)
