"""The augmented-Lagrangian schedules as Lightning callbacks: thin wrappers around :mod:`training.lagrangian`.

All act on the module's :class:`~training.lagrangian.LagrangianState` (the
buffers ``rho`` and ``lagrange_multipliers``, saved in every checkpoint) at
``trainer.global_step`` (optimizer steps taken, also restored from a
checkpoint), so a resumed run applies the same updates at the same steps as an
uninterrupted one.  Their settings come from the ``lagrangian`` config group.

:class:`RhoSchedule` and :class:`TargetRegretUpdate` can be *softened* by the
collapse guard (:class:`callbacks.CollapseGuard`, ``on_collapse=restore``):
rho is halved and held for a number of steps; what the softening changed is
callback state, saved in checkpoints (``state_dict``), so a resume continues it.

Members (:mod:`training.members`): each callback holds one rule per member (:meth:`for_members` joins the
callbacks built from the members' configurations) or one rule for all, and applies rule ``k`` to member
``k``'s rho and multipliers (``(K,)`` and ``(K, agents)`` views of the buffers) with member ``k``'s regret.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

import lightning.pytorch as pl
import torch
from torch import Tensor

from training.lagrangian import (
    REGRET_KEY,
    LagrangeRule,
    RhoStaircase,
    TargetRegretRule,
    TargetSchedule,
    check_lagrangian_state,
)
from training.members import member_penalties, member_prefix

__all__ = ["LagrangeUpdate", "MemberRules", "RhoSchedule", "Softenable", "TargetRegretUpdate"]

Rules = TypeVar("Rules", bound="MemberRules")


@runtime_checkable
class Softenable(Protocol):
    """A rho schedule the collapse guard can soften: halve rho now and hold it for ``hold_steps`` steps."""

    def soften(self, step: int, hold_steps: int, rho: Tensor) -> None: ...


def _batch_regret(trainer: pl.Trainer, outputs: Any, state: Any, who: str) -> Tensor:
    """The per-member, per-agent batch-mean regret ``(K, agents)`` of ``training_step``'s outputs, averaged over
    processes."""
    if not isinstance(outputs, Mapping) or REGRET_KEY not in outputs:
        raise ValueError(f"{who} needs training_step to return a dict with the per-agent {REGRET_KEY!r}")
    # Under DDP every process saw other batches: the mean over processes is the regret of the global
    # batch, and every process applies the same update (lambda and rho stay identical everywhere).
    regret = outputs[REGRET_KEY].detach().to(state.lagrange_multipliers)
    strategy = getattr(trainer, "strategy", None)
    regret = regret if strategy is None else strategy.reduce(regret, reduce_op="mean")
    return regret.view(state.rho.numel(), -1)


class MemberRules(pl.Callback):
    """A schedule with one rule per member in :attr:`rules` (or one for every member)."""

    rules: list[Any]

    def for_members(self: Rules, schedules: Sequence[Rules]) -> Rules:
        """This schedule with the rules of ``schedules`` (one per member, e.g. built from the members' configurations)."""
        joined = copy.copy(self)
        joined.rules = [rule for schedule in schedules for rule in schedule.rules]
        return joined

    def member_rules(self, size: int) -> list[Any]:
        """One rule per member of ``size``; a one-line ``ValueError`` if the rules are for another number of members."""
        if len(self.rules) not in (1, size):
            raise ValueError(f"{type(self).__name__} has rules for {len(self.rules)} members, the module has {size}")
        return self.rules if len(self.rules) == size else self.rules * size


class RhoSchedule(MemberRules):
    """Before every training batch, set ``rho`` to :class:`~training.lagrangian.RhoStaircase` at the global step.

    ``rho = min(rho_init + increment * floor(step / every_n_steps), max_rho)`` (the paper:
    +1 every 2 batches), so the batch and any Lagrange update after it use the same ``rho``.
    ``max_rho=None`` means no cap.  After :meth:`soften` at step ``s`` with the module's ``rho = r`` (a single
    run): ``r / 2`` until step ``s + hold``, then the same staircase from there (``r / 2 + increment *
    floor((step - s - hold) / every_n_steps)``, capped).
    """

    def __init__(
        self, increment: float = 1.0, every_n_steps: int = 2, max_rho: float | None = None, rho_init: float = 1.0
    ) -> None:
        self.rules: list[RhoStaircase] = [RhoStaircase(increment, every_n_steps, max_rho, rho_init)]
        self.anchor: tuple[int, float] | None = None  # (step where growth resumes, rho there) after a softening

    @property
    def staircase(self) -> RhoStaircase:
        """The (first member's) staircase."""
        return self.rules[0]

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

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        _, rho = member_penalties(check_lagrangian_state(pl_module))
        self.member_rules(rho.numel())
        rho.copy_(torch.tensor([self.rho(trainer.global_step, k) for k in range(rho.numel())], dtype=rho.dtype))

    def state_dict(self) -> dict[str, Any]:
        return {"anchor": self.anchor}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        anchor = state_dict.get("anchor")
        self.anchor = None if anchor is None else (int(anchor[0]), float(anchor[1]))


class LagrangeUpdate(MemberRules):
    """Dual ascent after every ``every_n_steps``-th optimizer step (the paper: 100): :class:`~training.lagrangian.LagrangeRule`.

    ``rgt_i`` is the batch-mean regret ``(agents,)`` that ``training_step`` returns under
    :data:`~training.lagrangian.REGRET_KEY`, averaged over the processes of a distributed run.
    """

    def __init__(self, every_n_steps: int = 100) -> None:
        self.rules: list[LagrangeRule] = [LagrangeRule(every_n_steps)]

    @property
    def rule(self) -> LagrangeRule:
        """The (first member's) rule."""
        return self.rules[0]

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        state = check_lagrangian_state(pl_module)
        multipliers, rho = member_penalties(state)
        due = [(k, rule) for k, rule in enumerate(self.member_rules(rho.numel())) if rule.due(trainer.global_step)]
        if not due:
            return
        regret = _batch_regret(trainer, outputs, state, "LagrangeUpdate")
        for k, rule in due:
            rule.apply(multipliers[k], rho[k], regret[k])


class TargetRegretUpdate(MemberRules):
    """The target-regret controller (:class:`~training.lagrangian.TargetRegretRule`) in place of both
    :class:`RhoSchedule` and :class:`LagrangeUpdate` (``conf/callbacks/stable.yaml``).

    After every ``every_n_steps``-th optimizer step: ``lambda_i <- max(0, lambda_i + eta (rgt_i - tau))``, and
    ``rho <- min(rho + rho_increment, max_rho)`` while the mean over agents of ``rgt_i`` exceeds ``tau``.
    ``tau`` anneals from ``tau_start`` to ``tau_end`` (``shape``: geometric or linear) over the first
    ``anneal_fraction`` of the run's optimizer steps (``trainer.estimated_stepping_batches``), then stays.
    rho starts at the module's ``rho_init`` (``lagrangian.rho_init``).
    """

    def __init__(
        self,
        eta: float = 1.0,
        every_n_steps: int = 1,
        rho_increment: float = 1.0,
        max_rho: float | None = None,
        tau_start: float = 0.01,
        tau_end: float = 0.001,
        anneal_fraction: float = 0.0,
        shape: str = "geometric",
    ) -> None:
        if not (isinstance(anneal_fraction, (int, float)) and 0 <= anneal_fraction <= 1):
            raise ValueError(f"anneal_fraction must be in [0, 1], got {anneal_fraction!r}")
        self.anneal_fraction = float(anneal_fraction)
        # anneal_steps is set from the run's length when training starts (setup).
        self.rules: list[TargetRegretRule] = [
            TargetRegretRule(eta, every_n_steps, rho_increment, max_rho, TargetSchedule(tau_start, tau_end, 0, shape))]
        self.hold_until = 0  # rho does not grow before this step (after a softening)

    @property
    def rule(self) -> TargetRegretRule:
        """The (first member's) rule."""
        return self.rules[0]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        anneal = round(self.anneal_fraction * int(trainer.estimated_stepping_batches))
        self.rules = [
            TargetRegretRule(rule.eta, rule.every_n_steps, rule.rho_increment, rule.max_rho,
                             TargetSchedule(rule.target.tau_start, rule.target.tau_end, anneal, rule.target.shape))
            for rule in self.rules
        ]

    def soften(self, step: int, hold_steps: int, rho: Tensor) -> None:
        """Halve rho now and let it grow again only from step ``step + hold_steps`` on."""
        rho.mul_(0.5)
        self.hold_until = step + hold_steps

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step, state = trainer.global_step, check_lagrangian_state(pl_module)
        multipliers, rho = member_penalties(state)
        due = [(k, rule) for k, rule in enumerate(self.member_rules(rho.numel())) if rule.due(step)]
        if not due:
            return
        regret = _batch_regret(trainer, outputs, state, "TargetRegretUpdate")
        for k, rule in due:
            rule.apply(multipliers[k], rho[k], regret[k], step, grow_rho=step >= self.hold_until)
            pl_module.log(f"{member_prefix(k, rho.numel())}train/tau", rule.target(step), on_step=True, on_epoch=False)

    def state_dict(self) -> dict[str, Any]:
        return {"hold_until": self.hold_until}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.hold_until = int(state_dict.get("hold_until", 0))
