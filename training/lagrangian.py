"""The augmented Lagrangian of RegretNet training (section 4.5, Eq. 1), in one place.

* the loss that every training path (the eager Lightning step and the captured
  fast step) minimizes, :func:`lagrangian_loss`, so the two cannot drift apart;
* the quadratic penalty weight as a pure function of the global step,
  :class:`RhoStaircase` (a capped staircase: resume-safe by construction);
* the dual update of the multipliers, :class:`LagrangeRule`;
* the stable alternative (issue 16, ``conf/lagrangian/stable.yaml``): a
  target-regret controller, :class:`TargetRegretRule`, whose multipliers can
  fall and whose rho grows only while the regret is above an annealed target
  :class:`TargetSchedule`; gradient-norm clipping is the module's
  ``clip_grad_norm`` (``lagrangian.clip_grad_norm``);
* the contract between the trainer-side schedules (:mod:`callbacks.lagrangian`,
  thin wrappers around the two classes above) and the module that trains:
  :class:`LagrangianState` (the two buffers) and :data:`REGRET_KEY` (the
  per-agent regret that ``training_step`` returns).

Every setting comes from the ``lagrangian`` config group (``conf/lagrangian/``),
which the ``model`` and ``callbacks`` sections interpolate.

With ``r[b, i]`` agent ``i``'s regret in profile ``b`` of a batch of ``B``
profiles, ``n`` agents, and ``rgt_i = mean_b r[b, i]``:

* ``penalty_over_agents="sum"`` (default, Eq. 1): ``sum_i lambda_i rgt_i``;
  ``"mean"`` (the original code): both penalty terms averaged over the agents,
  ``1/n`` of the sum (the code's ``(lambda * r).mean()`` over batch and agents).
* ``quadratic_penalty="batch_mean"`` (default, Eq. 1): ``rho/2 sum_i rgt_i^2``,
  the square of the batch mean; ``"per_sample"`` (the original code):
  ``rho/2 sum_i mean_b r[b, i]^2``, the batch mean of the per-sample squares.

The original code's loss is ``penalty_over_agents="mean", quadratic_penalty="per_sample"``:
``-mean_b sum_i p[b, i] + mean_{b,i} lambda_i r[b, i] + rho/2 mean_{b,i} r[b, i]^2``.
By Jensen ``mean_b r^2 >= rgt^2``, so the per-sample quadratic penalizes
regret concentrated on few profiles more than the paper's; with one agent the
two agent reductions agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from mechanisms.checks import check_positive_int

__all__ = [
    "PENALTY_OVER_AGENTS",
    "QUADRATIC_PENALTIES",
    "REGRET_KEY",
    "LagrangeRule",
    "LagrangianState",
    "RhoStaircase",
    "TargetRegretRule",
    "TargetSchedule",
    "check_penalty_options",
    "lagrangian_loss",
]

REGRET_KEY = "regret"
"""Key of the detached per-agent batch-mean regret ``(agents,)`` in what ``training_step`` returns."""


@runtime_checkable
class LagrangianState(Protocol):
    """What the Lagrangian schedules act on: two buffers of the training module (saved in checkpoints)."""

    rho: Tensor
    """Scalar quadratic penalty weight."""
    lagrange_multipliers: Tensor
    """``(agents,)`` Lagrange multipliers lambda."""


def check_lagrangian_state(module: object) -> LagrangianState:
    """``module`` itself, or a one-line ``ValueError`` unless it holds the two tensor buffers."""
    if not all(isinstance(getattr(module, name, None), Tensor) for name in ("rho", "lagrange_multipliers")):
        raise ValueError(
            f"{type(module).__name__} has no tensor attributes 'rho' and 'lagrange_multipliers' "
            "(training.lagrangian.LagrangianState) for the Lagrangian schedules"
        )
    return module  # type: ignore[return-value]


@dataclass(frozen=True)
class RhoStaircase:
    """``rho(step) = min(rho_init + increment * floor(step / every_n_steps), max_rho)``.

    The batch at global step ``step`` (optimizer steps taken before it) trains
    with ``rho(step)``: the weight rises before every batch whose step is a
    positive multiple of ``every_n_steps`` (the paper: every 2 batches).  The cap
    ``max_rho`` (``None``: none) applies from the first increase on, so a
    ``rho_init`` above it is kept until then.
    """

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


ANNEAL_SHAPES = ("geometric", "linear")
"""How :class:`TargetSchedule` moves the target from ``tau_start`` to ``tau_end``."""


@dataclass(frozen=True)
class TargetSchedule:
    """The regret target ``tau(step)``: ``tau_start`` at step 0, ``tau_end`` from ``anneal_steps`` on.

    In between, ``shape="geometric"``: ``tau_start * (tau_end / tau_start) ** (step / anneal_steps)``;
    ``"linear"``: ``tau_start + (tau_end - tau_start) * step / anneal_steps``.  ``anneal_steps=0``:
    ``tau_end`` throughout.  A pure function of the step (resume-safe).  ``tau_end <= tau_start``: a target that
    rose would loosen the constraint as training goes on (``ValueError``).
    """

    tau_start: float = 0.01
    tau_end: float = 0.001
    anneal_steps: int = 0
    shape: str = "geometric"

    def __post_init__(self) -> None:
        for name in ("tau_start", "tau_end"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite regret target, got {value!r}")
        if self.tau_end > self.tau_start:  # a target is tightened, never loosened: most likely swapped values
            raise ValueError(f"the regret target must not rise: tau_start={self.tau_start:g} < tau_end={self.tau_end:g}; "
                             "swap them (equal values: a constant target)")
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
    """The target-regret controller: after every ``every_n_steps``-th optimizer step, with ``tau = target(step)``,

    * ``lambda_i <- max(0, lambda_i + eta * (rgt_i - tau))`` (lambda falls while agent ``i`` is below target);
    * ``rho <- min(rho + rho_increment, max_rho)`` if the mean over agents of ``rgt_i`` exceeds ``tau``,
      else ``rho`` stays (``max_rho=None``: no cap).

    The state (lambda, rho) lives in the module's buffers (saved in checkpoints); the update is a pure
    function of the state, the step and the measured regret, so a resumed run continues exactly.
    """

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


PENALTY_OVER_AGENTS = ("sum", "mean")
"""``sum``: the paper's Eq. 1 (default); ``mean``: the original code (1/n of the paper's sum)."""

QUADRATIC_PENALTIES = ("batch_mean", "per_sample")
"""``batch_mean``: the paper's Eq. 1, square of the batch-mean regret (default); ``per_sample``: the original code."""


def check_penalty_options(quadratic_penalty: str, penalty_over_agents: str) -> None:
    """Raise a one-line ``ValueError`` unless both options are known."""
    if quadratic_penalty not in QUADRATIC_PENALTIES:
        raise ValueError(
            f"quadratic_penalty must be one of {', '.join(QUADRATIC_PENALTIES)}, got {quadratic_penalty!r}"
        )
    if penalty_over_agents not in PENALTY_OVER_AGENTS:
        raise ValueError(
            f"penalty_over_agents must be one of {', '.join(PENALTY_OVER_AGENTS)}, got {penalty_over_agents!r}"
        )


def lagrangian_loss(
    revenue: Tensor,
    regrets: Tensor,
    multipliers: Tensor,
    rho: Tensor,
    *,
    quadratic_penalty: str = "batch_mean",
    penalty_over_agents: str = "sum",
) -> Tensor:
    """``-mean revenue + sum_i lambda_i rgt_i + rho / 2 * sum_i rgt_i^2`` (the paper's Eq. 1) by default.

    Args:
        revenue: ``(batch,)`` revenue of every profile.
        regrets: ``(batch, agents)`` per-profile, per-agent regret.
        multipliers: ``(agents,)`` Lagrange multipliers lambda.
        rho: scalar tensor, the quadratic penalty weight.
        quadratic_penalty: ``"batch_mean"`` (Eq. 1: ``rgt_i^2``, ``rgt_i`` agent ``i``'s
            batch-mean regret) or ``"per_sample"`` (the original code: the batch mean
            of the per-profile squares ``r[b, i]^2``).
        penalty_over_agents: ``"sum"`` (Eq. 1) or ``"mean"`` (the original code: both
            penalty terms averaged over the agents, i.e. ``1/n`` of the sum).

    See the module docstring for the table of conventions.
    """
    check_penalty_options(quadratic_penalty, penalty_over_agents)
    rgt = regrets.mean(0)
    squares = rgt**2 if quadratic_penalty == "batch_mean" else (regrets**2).mean(0)
    penalty = multipliers * rgt + rho / 2 * squares  # (agents,)
    reduced = penalty.sum() if penalty_over_agents == "sum" else penalty.mean()
    return -revenue.mean() + reduced
