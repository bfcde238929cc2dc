"""The Sinkhorn layer: a batched, log-domain, epsilon-scaled entropic transport solver (Algorithm 1 of the paper).

The public surface over private modules (docs/sinkhorn_package.md; the method: docs/sinkhorn.md).  Shapes: ``cost``
``(batch, N, M)``, ``N = agents (+ dummy agent)``, ``M = items (+ dummy item)``; ``a`` ``(N,)``, ``b`` ``(M,)``.
"""

from mechanisms.sinkhorn._fixed import row_error
from mechanisms.sinkhorn._settings import (Backend, FixedIterations, GeometricEpsilonSchedule, GradMode,
                                           SinkhornSettings, StoppingRule, Tolerance, check_backend, geometric_epsilons)
from mechanisms.sinkhorn._solver import (Calibration, Sinkhorn, SinkhornNotConverged, SinkhornResult, calibrate,
                                         fixed_plan, sinkhorn, solve)

__all__ = [
    "Backend", "Calibration", "FixedIterations", "GeometricEpsilonSchedule", "GradMode", "Sinkhorn",
    "SinkhornNotConverged", "SinkhornResult", "SinkhornSettings", "StoppingRule", "Tolerance", "calibrate",
    "check_backend", "fixed_plan", "geometric_epsilons", "row_error", "sinkhorn", "solve",
]  # fmt: skip
