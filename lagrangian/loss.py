"""The augmented Lagrangian's loss (section 4.5, Eq. 1), which every rule and every training path minimizes.

The options choose between the paper's Eq. 1 and the original code's penalty forms (docs/training.md, "Paper vs
original code"): ``penalty_over_agents`` ``"sum"`` or ``"mean"`` (``1/n`` of the sum) over the agents,
``quadratic_penalty`` ``"batch_mean"`` (``rgt_i^2``, the square of agent ``i``'s batch-mean regret) or
``"per_sample"`` (the batch mean of the squares; by Jensen larger, penalizing regret concentrated on few profiles).
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["PENALTY_OVER_AGENTS", "QUADRATIC_PENALTIES", "check_penalty_options", "lagrangian_loss"]


PENALTY_OVER_AGENTS = ("sum", "mean")  # sum: the paper's Eq. 1 (default); mean: the original code
QUADRATIC_PENALTIES = ("batch_mean", "per_sample")  # batch_mean: the paper's Eq. 1 (default); per_sample: the code


def check_penalty_options(quadratic_penalty: str, penalty_over_agents: str) -> None:
    """Raise a one-line ``ValueError`` unless both options are known."""
    for name, value, options in (("quadratic_penalty", quadratic_penalty, QUADRATIC_PENALTIES),
                                 ("penalty_over_agents", penalty_over_agents, PENALTY_OVER_AGENTS)):
        if value not in options:
            raise ValueError(f"{name} must be one of {', '.join(options)}, got {value!r}")


def lagrangian_loss(revenue: Tensor, regrets: Tensor, multipliers: Tensor, rho: Tensor, *,
                    quadratic_penalty: str = "batch_mean", penalty_over_agents: str = "sum") -> Tensor:
    """``-mean revenue + sum_i lambda_i rgt_i + rho / 2 * sum_i rgt_i^2`` (the paper's Eq. 1) by default, from
    revenue ``(batch,)``, regrets ``(batch, agents)``, multipliers ``(agents,)`` and the scalar ``rho``; the
    options are the module docstring's conventions."""
    check_penalty_options(quadratic_penalty, penalty_over_agents)
    rgt = regrets.mean(0)
    squares = rgt**2 if quadratic_penalty == "batch_mean" else (regrets**2).mean(0)
    penalty = multipliers * rgt + rho / 2 * squares  # (agents,)
    reduced = penalty.sum() if penalty_over_agents == "sum" else penalty.mean()
    return -revenue.mean() + reduced
