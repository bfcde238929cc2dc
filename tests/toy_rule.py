"""A test-only Lagrangian rule, the worked example of docs/extending.md ("A new Lagrangian rule").

Dual ascent with a decaying step and a fixed penalty weight: after every ``every_n_steps``-th optimizer step,
``lambda_i <- lambda_i + eta / sqrt(1 + step / every_n_steps) * rgt_i`` (``rgt_i``: bidder ``i``'s batch-mean
regret); rho stays at the module's ``rho_init``.  One rule per ensemble member (:class:`MemberRules`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
from torch import Tensor

from lagrangian.base import MemberRules, batch_regret, check_lagrangian_state, member_penalties


@dataclass(frozen=True)
class DecayingDualRule:
    """The update of one member: a pure function of the state, the step and the regret (resume-safe)."""

    eta: float = 1.0
    every_n_steps: int = 1

    def due(self, step: int) -> bool:
        return step % self.every_n_steps == 0

    def apply(self, multipliers: Tensor, regret: Tensor, step: int) -> None:
        """``multipliers`` ``(agents,)`` += the decayed step times ``regret`` ``(agents,)``, in place."""
        multipliers.add_(self.eta / math.sqrt(1 + step / self.every_n_steps) * regret.to(multipliers))


class DecayingDualAscent(MemberRules):
    """The rule's callback: member ``k``'s multipliers follow rule ``k`` after the optimizer steps it is due."""

    def __init__(self, eta: float = 1.0, every_n_steps: int = 1) -> None:
        self.rules = [DecayingDualRule(eta, every_n_steps)]

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        state = check_lagrangian_state(pl_module)
        multipliers, rho = member_penalties(state)
        due = [(k, rule) for k, rule in enumerate(self.member_rules(rho.numel())) if rule.due(trainer.global_step)]
        if due:
            regret = batch_regret(trainer, outputs, state, "DecayingDualAscent")  # (K, agents)
            for k, rule in due:
                rule.apply(multipliers[k], regret[k], trainer.global_step)
