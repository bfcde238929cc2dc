"""The paper's rule (section 4.5): rho on a capped staircase, lambda by dual ascent every so many steps; the callbacks
:class:`RhoSchedule` and :class:`LagrangeUpdate` (``conf/lagrangian/paper.yaml``, ``original.yaml``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from lagrangian.base import MemberRules, batch_regret, check_lagrangian_state, member_penalties
from utils.checks import check_positive_int

__all__ = ["LagrangeRule", "LagrangeUpdate", "RhoSchedule", "RhoStaircase"]


@dataclass(frozen=True)
class RhoStaircase:
    """``rho(step) = min(rho_init + increment * floor(step / every_n_steps), max_rho)`` for the batch at global
    step ``step`` (the paper: +1 every 2 batches); the cap (``None``: none) applies from the first increase on."""

    increment: float = 1.0
    every_n_steps: int = 2
    max_rho: float | None = None
    rho_init: float = 1.0

    def __post_init__(self) -> None:
        check_positive_int(self.every_n_steps, "every_n_steps")
        if not self.increment >= 0:
            raise ValueError(f"rho increment must be >= 0, got {self.increment}")
        if self.max_rho is not None and not self.max_rho > 0:
            raise ValueError(f"max_rho must be positive or null, got {self.max_rho}")
        if not (math.isfinite(self.rho_init) and self.rho_init >= 0):
            raise ValueError(f"need a finite rho_init >= 0, got {self.rho_init}")

    def __call__(self, step: int) -> float:
        """rho for the batch at global step ``step`` (>= 0)."""
        raises = step // self.every_n_steps
        if raises == 0:
            return float(self.rho_init)
        rho = self.rho_init + self.increment * raises
        return float(rho if self.max_rho is None else min(rho, self.max_rho))


@dataclass(frozen=True)
class LagrangeRule:
    """Dual ascent ``lambda_i <- lambda_i + rho * rgt_i`` after every ``every_n_steps``-th optimizer step."""

    every_n_steps: int = 100

    def __post_init__(self) -> None:
        check_positive_int(self.every_n_steps, "every_n_steps")

    def due(self, step: int) -> bool:
        """Whether the update follows the batch after which ``step`` optimizer steps have been taken."""
        return step % self.every_n_steps == 0

    @staticmethod
    def apply(multipliers: Tensor, rho: Tensor, regret: Tensor) -> None:
        """``multipliers += rho * regret`` in place (``regret``: batch-mean regret per agent ``(agents,)``)."""
        multipliers.add_(rho * regret.detach().to(multipliers))


class RhoSchedule(MemberRules):
    """Before every training batch, set ``rho`` to :class:`RhoStaircase` at the global step (the batch and any
    Lagrange update after it use the same ``rho``); after :meth:`soften` at step ``s`` with ``rho = r``: ``r / 2``
    until step ``s + hold``, then the staircase's growth from there."""

    def __init__(self, increment: float = 1.0, every_n_steps: int = 2, max_rho: float | None = None,
                 rho_init: float = 1.0) -> None:
        self.rules: list[RhoStaircase] = [RhoStaircase(increment, every_n_steps, max_rho, rho_init)]
        self.anchor: tuple[int, float] | None = None  # (step where growth resumes, rho there) after a softening

    def rho(self, step: int, k: int = 0) -> float:
        """rho of member ``k`` for the batch at global step ``step``."""
        staircase = self.rules[k % len(self.rules)]
        if self.anchor is None:
            return staircase(step)
        start, value = self.anchor
        grown = value + staircase.increment * (max(step - start, 0) // staircase.every_n_steps)
        cap = staircase.max_rho
        return float(grown if cap is None else min(grown, max(cap, value)))

    def soften(self, step: int, hold_steps: int, rho: Tensor) -> None:
        """Halve ``rho`` (the module's, e.g. restored from the best checkpoint) and hold it for ``hold_steps`` steps."""
        self.anchor = (step + hold_steps, float(rho) / 2)
        rho.fill_(self.anchor[1])

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        _, rho = member_penalties(check_lagrangian_state(pl_module))
        self.member_rules(rho.numel())
        rho.copy_(torch.tensor([self.rho(trainer.global_step, k) for k in range(rho.numel())], dtype=rho.dtype))

    def state_dict(self) -> dict[str, Any]:
        return {"anchor": self.anchor}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        anchor = state_dict.get("anchor")
        self.anchor = None if anchor is None else (int(anchor[0]), float(anchor[1]))


class LagrangeUpdate(MemberRules):
    """Dual ascent (:class:`LagrangeRule`) after every ``every_n_steps``-th optimizer step (the paper: 100)."""

    def __init__(self, every_n_steps: int = 100) -> None:
        self.rules: list[LagrangeRule] = [LagrangeRule(every_n_steps)]

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        state = check_lagrangian_state(pl_module)
        multipliers, rho = member_penalties(state)
        due = [(k, rule) for k, rule in enumerate(self.member_rules(rho.numel())) if rule.due(trainer.global_step)]
        if not due:
            return
        regret = batch_regret(trainer, outputs, state, "LagrangeUpdate")
        for k, rule in due:
            rule.apply(multipliers[k], rho[k], regret[k])
