"""Training callbacks: the augmented-Lagrangian schedules and the regret-budget checkpoint score."""

from callbacks.budget import RegretBudgetScore, budgeted_score
from callbacks.lagrangian import LagrangeUpdate, RhoSchedule

__all__ = ["LagrangeUpdate", "RegretBudgetScore", "RhoSchedule", "budgeted_score"]
