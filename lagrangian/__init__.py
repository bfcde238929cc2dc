"""The augmented Lagrangian: its loss, the state its rules act on, and the rules with their callbacks.

* :mod:`lagrangian.loss` - the loss of the paper's Eq. 1 and the original code's penalty forms;
* :mod:`lagrangian.base` - the state (rho, lambda; per member), the regret key, the callback shape;
* :mod:`lagrangian.paper` - the paper's rho staircase and dual ascent;
* :mod:`lagrangian.target_regret` - the stable target-regret controller.
"""

from lagrangian.base import REGRET_KEY, LagrangianState, MemberRules, Softenable, check_lagrangian_state
from lagrangian.loss import check_penalty_options, lagrangian_loss
from lagrangian.paper import LagrangeRule, LagrangeUpdate, RhoSchedule, RhoStaircase
from lagrangian.target_regret import TargetRegretRule, TargetRegretUpdate, TargetSchedule

__all__ = [
    "REGRET_KEY", "LagrangeRule", "LagrangeUpdate", "LagrangianState", "MemberRules", "RhoSchedule", "RhoStaircase",
    "Softenable", "TargetRegretRule", "TargetRegretUpdate", "TargetSchedule", "check_lagrangian_state",
    "check_penalty_options", "lagrangian_loss",
]
