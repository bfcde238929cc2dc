"""Training callbacks: the augmented-Lagrangian schedules, the regret-budget checkpoint score, the regret audit, the heatmaps,
the warm start, the collapse guard."""

from callbacks.audit import AuditWarning, RegretAudit
from callbacks.collapse import CollapseGuard
from callbacks.budget import RegretBudgetScore, budgeted_score
from callbacks.heatmaps import HeatmapLogger
from callbacks.warm_start import WarmStart
from callbacks.lagrangian import LagrangeUpdate, RhoSchedule, Softenable, TargetRegretUpdate

__all__ = ["AuditWarning", "CollapseGuard", "HeatmapLogger", "LagrangeUpdate", "RegretAudit", "RegretBudgetScore", "RhoSchedule", "Softenable", "TargetRegretUpdate", "WarmStart", "budgeted_score"]
