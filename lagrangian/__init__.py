"""The augmented Lagrangian: its loss (:mod:`lagrangian.loss`), the state its rules act on (:mod:`lagrangian.base`),
and the rules with their callbacks (:mod:`lagrangian.paper`, :mod:`lagrangian.target_regret`)."""

from lagrangian.base import REGRET_KEY
from lagrangian.paper import LagrangeUpdate, RhoSchedule
from lagrangian.target_regret import TargetRegretUpdate

__all__ = ["REGRET_KEY", "LagrangeUpdate", "RhoSchedule", "TargetRegretUpdate"]
