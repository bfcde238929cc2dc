"""The augmented Lagrangian: its loss (:mod:`lagrangian.loss`), the state its rules act on (:mod:`lagrangian.base`),
and the rules with their callbacks (:mod:`lagrangian.paper`, :mod:`lagrangian.target_regret`)."""

from lagrangian.base import REGRET_KEY, LagrangianState, MemberRules, Softenable, check_lagrangian_state
from lagrangian.loss import check_penalty_options, lagrangian_loss
from lagrangian.paper import LagrangeRule, LagrangeUpdate, RhoSchedule, RhoStaircase
from lagrangian.target_regret import TargetRegretRule, TargetRegretUpdate, TargetSchedule

__all__ = [
    "REGRET_KEY", "LagrangeRule", "LagrangeUpdate", "LagrangianState", "MemberRules", "RhoSchedule", "RhoStaircase",
    "Softenable", "TargetRegretRule", "TargetRegretUpdate", "TargetSchedule", "check_lagrangian_state",
    "check_penalty_options", "lagrangian_loss",
]
