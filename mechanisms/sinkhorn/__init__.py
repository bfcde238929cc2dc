"""The Sinkhorn layer: a batched, log-domain, epsilon-scaled entropic transport solver (Algorithm 1 of the paper).

The public surface (the modules behind it are private):

* :class:`SinkhornSettings`: the frozen settings a mechanism holds and the ``sinkhorn`` config node
  describes (geometric schedule, tolerance rule, gradient mode, fixed iterations, backend);
* :class:`Sinkhorn`: the solver, ``Sinkhorn.from_settings(settings).solve(cost, a, b)`` ->
  :class:`SinkhornResult`; :meth:`Sinkhorn.calibrate` -> :class:`Calibration`;
* its parts: :class:`GeometricEpsilonSchedule` (:func:`geometric_epsilons`), the stopping rules
  :class:`Tolerance` and :class:`FixedIterations`, :data:`GradMode`, :data:`Backend`;
* functional forms for an explicit epsilon list: :func:`solve`, :func:`sinkhorn` (the plan only),
  :func:`fixed_plan`, :func:`calibrate`, and :func:`row_error`;
* :class:`SinkhornNotConverged`, the warning of a solve that missed ``tol``.

Shapes: ``cost`` is ``(batch, N, M)`` with ``N = agents (+ dummy agent)`` and
``M = items (+ dummy item)``; ``a`` ``(N,)`` and ``b`` ``(M,)`` are the marginals.
"""

from mechanisms.sinkhorn._fixed import row_error
from mechanisms.sinkhorn._settings import (
    Backend,
    FixedIterations,
    GeometricEpsilonSchedule,
    GradMode,
    SinkhornSettings,
    StoppingRule,
    Tolerance,
    check_backend,
    geometric_epsilons,
)
from mechanisms.sinkhorn._solver import (
    Calibration,
    Sinkhorn,
    SinkhornNotConverged,
    SinkhornResult,
    calibrate,
    fixed_plan,
    sinkhorn,
    solve,
)

__all__ = [
    "Backend", "Calibration", "FixedIterations", "GeometricEpsilonSchedule", "GradMode", "Sinkhorn",
    "SinkhornNotConverged", "SinkhornResult", "SinkhornSettings", "StoppingRule", "Tolerance", "calibrate",
    "check_backend", "fixed_plan", "geometric_epsilons", "row_error", "sinkhorn", "solve",
]  # fmt: skip
