"""The stable rule (issue 16, docs/stable_lagrangian.md): a target-regret controller, :class:`TargetRegretRule`,
with an annealed target (:class:`TargetSchedule`) and its callback :class:`TargetRegretUpdate`."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from lagrangian.base import MemberRules, batch_regret, check_lagrangian_state, member_penalties, member_prefix
from utils.checks import check_positive_int

__all__ = ["ANNEAL_SHAPES", "TargetRegretRule", "TargetRegretUpdate", "TargetSchedule"]


ANNEAL_SHAPES = ("geometric", "linear")  # how TargetSchedule moves the target from tau_start to tau_end


@dataclass(frozen=True)
class TargetSchedule:
    """The regret target ``tau(step)``, a pure function of the step: ``tau_start`` at step 0, ``tau_end`` from
    ``anneal_steps`` on (0: throughout), a geometric or linear interpolation in between."""

    tau_start: float = 0.01
    tau_end: float = 0.001
    anneal_steps: int = 0
    shape: str = "geometric"

    def __post_init__(self) -> None:
        for name in ("tau_start", "tau_end"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite regret target, got {value!r}")
        if self.tau_end > self.tau_start:  # a rising target would loosen the constraint: most likely swapped values
            raise ValueError(f"the regret target must not rise: tau_start={self.tau_start:g} < "
                             f"tau_end={self.tau_end:g}; swap them (equal values: a constant target)")
        if not (isinstance(self.anneal_steps, int) and self.anneal_steps >= 0):
            raise ValueError(f"anneal_steps must be an integer >= 0, got {self.anneal_steps!r}")
        if self.shape not in ANNEAL_SHAPES:
            raise ValueError(f"tau anneal shape must be one of {', '.join(ANNEAL_SHAPES)}, got {self.shape!r}")

    def __call__(self, step: int) -> float:
        """The target of the update after ``step`` optimizer steps."""
        if step >= self.anneal_steps:
            return float(self.tau_end)
        progress = step / self.anneal_steps
        if self.shape == "geometric":
            return float(self.tau_start * (self.tau_end / self.tau_start) ** progress)
        return float(self.tau_start + (self.tau_end - self.tau_start) * progress)


@dataclass(frozen=True)
class TargetRegretRule:
    """The target-regret controller, after every ``every_n_steps``-th optimizer step with ``tau = target(step)``:
    ``lambda_i <- max(0, lambda_i + eta * (rgt_i - tau))``, and ``rho <- min(rho + rho_increment, max_rho)`` while
    the mean over agents of ``rgt_i`` exceeds ``tau`` (``max_rho=None``: no cap)."""

    eta: float = 1.0
    every_n_steps: int = 1
    rho_increment: float = 1.0
    max_rho: float | None = None
    target: TargetSchedule = TargetSchedule()

    def __post_init__(self) -> None:
        check_positive_int(self.every_n_steps, "every_n_steps")
        if not (math.isfinite(self.eta) and self.eta > 0):
            raise ValueError(f"controller step size eta must be positive, got {self.eta}")
        if not (math.isfinite(self.rho_increment) and self.rho_increment >= 0):
            raise ValueError(f"rho increment must be >= 0, got {self.rho_increment}")
        if self.max_rho is not None and not self.max_rho > 0:
            raise ValueError(f"max_rho must be positive or null, got {self.max_rho}")

    def due(self, step: int) -> bool:
        """Whether the update follows the batch after which ``step`` optimizer steps have been taken."""
        return step % self.every_n_steps == 0

    def apply(self, multipliers: Tensor, rho: Tensor, regret: Tensor, step: int, grow_rho: bool = True) -> None:
        """Update ``multipliers`` ``(agents,)`` and the scalar ``rho`` in place from the batch-mean regret
        ``(agents,)`` measured after ``step`` optimizer steps; ``grow_rho=False`` holds rho (see the collapse guard)."""
        tau = self.target(step)
        regret = regret.detach().to(multipliers)
        multipliers.copy_((multipliers + self.eta * (regret - tau)).clamp_(min=0.0))
        if grow_rho:  # without a host synchronization (the fast step's outputs stay on the device)
            raised = rho + self.rho_increment
            if self.max_rho is not None:
                raised = raised.clamp(max=self.max_rho)
            rho.copy_(torch.where(regret.mean() > tau, raised, rho))


class TargetRegretUpdate(MemberRules):
    """The target-regret controller in place of both :class:`RhoSchedule` and :class:`LagrangeUpdate`; ``tau``
    anneals over the first ``anneal_fraction`` of the run's optimizer steps, then stays."""

    def __init__(self, eta: float = 1.0, every_n_steps: int = 1, rho_increment: float = 1.0,
                 max_rho: float | None = None, tau_start: float = 0.01, tau_end: float = 0.001,
                 anneal_fraction: float = 0.0, shape: str = "geometric") -> None:
        if not (isinstance(anneal_fraction, (int, float)) and 0 <= anneal_fraction <= 1):
            raise ValueError(f"anneal_fraction must be in [0, 1], got {anneal_fraction!r}")
        self.anneal_fraction = float(anneal_fraction)
        self.rules: list[TargetRegretRule] = [
            TargetRegretRule(eta, every_n_steps, rho_increment, max_rho, TargetSchedule(tau_start, tau_end, 0, shape))]
        self.hold_until = 0  # rho does not grow before this step (after a softening)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Set ``anneal_steps`` from the run's length."""
        if stage != "fit":
            return
        anneal = round(self.anneal_fraction * int(trainer.estimated_stepping_batches))
        self.rules = [replace(rule, target=replace(rule.target, anneal_steps=anneal)) for rule in self.rules]

    def soften(self, step: int, hold_steps: int, rho: Tensor) -> None:
        """Halve rho now and let it grow again only from step ``step + hold_steps`` on."""
        rho.mul_(0.5)
        self.hold_until = step + hold_steps

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step, state = trainer.global_step, check_lagrangian_state(pl_module)
        multipliers, rho = member_penalties(state)
        due = [(k, rule) for k, rule in enumerate(self.member_rules(rho.numel())) if rule.due(step)]
        if not due:
            return
        regret = batch_regret(trainer, outputs, state, "TargetRegretUpdate")
        for k, rule in due:
            rule.apply(multipliers[k], rho[k], regret[k], step, grow_rho=step >= self.hold_until)
            pl_module.log(f"{member_prefix(k, rho.numel())}train/tau", rule.target(step), on_step=True, on_epoch=False)

    def state_dict(self) -> dict[str, Any]:
        return {"hold_until": self.hold_until}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.hold_until = int(state_dict.get("hold_until", 0))
