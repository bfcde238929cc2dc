"""The Sinkhorn layer's settings: the epsilon schedule, the stopping rule and the gradient mode.

A small frozen object (as OTT-JAX separates a solver's settings from its
iterations): :class:`SinkhornSettings` is what a
:class:`~mechanisms.sinkhorn_auction.SinkhornMechanism` holds and what the
``sinkhorn`` config section describes; its defaults are the paper's, and the
one source of that section's values (:mod:`training.config_store`) and of
:class:`~mechanisms.sinkhorn_auction.SinkhornMechanism`'s keyword defaults.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from mechanisms.checks import check_int, check_positive_int

__all__ = [
    "BACKENDS", "Backend", "GRAD_MODES", "GeometricEpsilonSchedule", "GradMode", "SinkhornSettings", "check_backend",
    "check_grad", "geometric_epsilons",
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


@dataclass(frozen=True)
class SinkhornSettings:
    """Geometric epsilon schedule ``eps_init -> eps_final`` in ``eps_steps`` values, the per-epsilon
    stopping rule (max relative row-marginal error < ``tol``, at most ``max_iter`` updates) and the
    backward pass (``grad``: ``"implicit"`` or ``"unroll"``).  Defaults: the paper's (section 4.3).

    ``fixed_iterations`` (``None``: the tolerance rule) switches the layer to the fixed-schedule
    solver (:mod:`mechanisms.sinkhorn_fixed`): that many updates at each epsilon, no checks and no
    host synchronization, run by ``backend`` (``"auto"``: Triton on CUDA, else torch).
    """

    eps_init: float = GeometricEpsilonSchedule.init
    eps_final: float = GeometricEpsilonSchedule.final
    eps_steps: int = GeometricEpsilonSchedule.steps
    tol: float = 1e-2
    max_iter: int = 1000
    grad: GradMode = "implicit"
    fixed_iterations: tuple[int, ...] | None = None
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        check_grad(self.grad)
        if not 0 < self.tol < 1:  # a relative marginal error: >= 1 (or inf, nan) accepts any plan
            raise ValueError(f"tol must be positive and below 1 (a relative marginal error), got {self.tol}")
        check_positive_int(self.max_iter, "max_iter")
        init, final = self.eps_init, self.eps_final
        if isinstance(init, (int, float)) and isinstance(final, (int, float)) and 0 < init < final:
            raise ValueError(f"the epsilon schedule must not increase: eps_init={init} < eps_final={final}")
        object.__setattr__(self, "epsilons", geometric_epsilons(init, final, self.eps_steps))
        check_backend(self.backend)
        if self.fixed_iterations is not None:
            object.__setattr__(self, "fixed_iterations", tuple(self.fixed_iterations))
            if len(self.fixed_iterations) != len(self.epsilons):
                raise ValueError(
                    f"fixed_iterations needs one count per epsilon ({len(self.epsilons)}), got {len(self.fixed_iterations)}"
                )
            for count in self.fixed_iterations:
                check_int(count, "each of fixed_iterations", minimum=0)

    epsilons: tuple[float, ...] = dataclasses.field(init=False, repr=False, compare=False)
    """The whole schedule, first to last (derived)."""

    def replace(self, **changes: object) -> "SinkhornSettings":
        """A copy with the given fields changed (``None`` values keep the current ones), validated.

        A change of the schedule or the stopping rule drops the fixed schedule calibrated on them.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        if any(changes.get(name, getattr(self, name)) != getattr(self, name) for name in _TOLERANCE_RULE):
            changes.setdefault("fixed_iterations", None)
        return dataclasses.replace(self, **changes)

    def with_fixed_iterations(self, iterations: tuple[int, ...] | None) -> "SinkhornSettings":
        """A copy on the fixed schedule ``iterations`` (updates per epsilon), or on the tolerance rule for ``None``."""
        return dataclasses.replace(self, fixed_iterations=iterations)
