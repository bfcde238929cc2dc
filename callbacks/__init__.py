"""Training callbacks: the augmented-Lagrangian schedules, the regret-budget checkpoint score, the regret audit, the heatmaps."""

from callbacks.audit import AuditWarning, RegretAudit
from callbacks.budget import RegretBudgetScore, budgeted_score
from callbacks.heatmaps import HeatmapLogger
from callbacks.lagrangian import LagrangeUpdate, RhoSchedule, Softenable, TargetRegretUpdate

__all__ = ["AuditWarning", "HeatmapLogger", "LagrangeUpdate", "RegretAudit", "RegretBudgetScore", "RhoSchedule", "Softenable", "TargetRegretUpdate", "budgeted_score"]
