"""Training callbacks: the regret-budget checkpoint score, the regret audit, the heatmaps, the warm start, the
collapse guard (the Lagrangian rules' schedules are in :mod:`lagrangian`)."""

from callbacks.audit import AuditWarning, RegretAudit
from callbacks.collapse import CollapseGuard
from callbacks.budget import RegretBudgetScore, budgeted_score
from callbacks.heatmaps import HeatmapLogger
from callbacks.warm_start import WarmStart

__all__ = ["AuditWarning", "CollapseGuard", "HeatmapLogger", "RegretAudit", "RegretBudgetScore", "WarmStart",
           "budgeted_score"]
