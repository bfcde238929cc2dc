"""What every Lagrangian rule acts on, and the callback shape every rule's schedule has (docs/extending.md).

A rule is a pure function of the state (:class:`LagrangianState`, the module's buffers, viewed per member by
:func:`member_penalties`), the step and the regret (returned by ``training_step`` under :data:`REGRET_KEY`); its
:class:`MemberRules` callback applies rule ``k`` to member ``k`` at ``trainer.global_step`` (restored from a
checkpoint), so a resumed run applies the same updates at the same steps as an uninterrupted one.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

import lightning.pytorch as pl
from torch import Tensor

__all__ = ["REGRET_KEY", "LagrangianState", "MemberRules", "Softenable", "batch_regret", "check_lagrangian_state",
           "member_penalties", "member_prefix"]

Rules = TypeVar("Rules", bound="MemberRules")

REGRET_KEY = "regret"
"""Key of the detached per-agent batch-mean regret ``(agents,)`` in what ``training_step`` returns."""


@runtime_checkable
class LagrangianState(Protocol):
    """What the Lagrangian schedules act on: the module's buffers ``rho`` and ``lagrange_multipliers`` ``(agents,)``."""

    rho: Tensor
    lagrange_multipliers: Tensor


def check_lagrangian_state(module: object) -> LagrangianState:
    """``module`` itself, or a one-line ``ValueError`` unless it holds the two tensor buffers."""
    if not all(isinstance(getattr(module, name, None), Tensor) for name in ("rho", "lagrange_multipliers")):
        raise ValueError(f"{type(module).__name__} has no tensor attributes 'rho' and 'lagrange_multipliers' "
                         "(lagrangian.base.LagrangianState) for the Lagrangian schedules")
    return module  # type: ignore[return-value]


def member_penalties(module: Any) -> tuple[Tensor, Tensor]:
    """The module's multipliers as ``(K, agents)`` and rho as ``(K,)`` views (in-place updates reach the buffers)."""
    rho = module.rho
    return module.lagrange_multipliers.view(rho.numel(), -1), rho.view(rho.numel())


def member_prefix(k: int, size: int) -> str:
    """Where member ``k``'s metrics are logged: ``""`` for a single run, else ``member_<k>/``."""
    return "" if size == 1 else f"member_{k}/"


@runtime_checkable
class Softenable(Protocol):
    """A rho schedule the collapse guard (:class:`callbacks.CollapseGuard`) can soften: halve rho now and hold it
    for ``hold_steps`` steps (callback state, saved in checkpoints)."""

    def soften(self, step: int, hold_steps: int, rho: Tensor) -> None: ...


def batch_regret(trainer: pl.Trainer, outputs: Any, state: Any, who: str) -> Tensor:
    """The per-member, per-agent batch-mean regret ``(K, agents)`` of ``training_step``'s outputs (all processes)."""
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
        """This schedule with the rules of ``schedules`` (one per member, e.g. built from the members' configs)."""
        joined = copy.copy(self)
        joined.rules = [rule for schedule in schedules for rule in schedule.rules]
        return joined

    def member_rules(self, size: int) -> list[Any]:
        """One rule per member of ``size``; a one-line ``ValueError`` if the rules are for another number of members."""
        if len(self.rules) not in (1, size):
            raise ValueError(f"{type(self).__name__} has rules for {len(self.rules)} members, the module has {size}")
        return self.rules if len(self.rules) == size else self.rules * size
