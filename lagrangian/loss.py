"""The augmented Lagrangian's loss (section 4.5, Eq. 1), which every rule and every training path minimizes.

With ``r[b, i]`` agent ``i``'s regret in profile ``b`` of a batch, ``n`` agents, and ``rgt_i = mean_b r[b, i]``:

* ``penalty_over_agents="sum"`` (default, Eq. 1): ``sum_i lambda_i rgt_i``; ``"mean"`` (the original code): both
  penalty terms averaged over the agents, ``1/n`` of the sum (the code's ``(lambda * r).mean()``).
* ``quadratic_penalty="batch_mean"`` (default, Eq. 1): ``rho/2 sum_i rgt_i^2``, the square of the batch mean;
  ``"per_sample"`` (the original code): ``rho/2 sum_i mean_b r[b, i]^2``, the batch mean of the squares.

The original code's loss is ``penalty_over_agents="mean", quadratic_penalty="per_sample"``:
``-mean_b sum_i p[b, i] + mean_{b,i} lambda_i r[b, i] + rho/2 mean_{b,i} r[b, i]^2``.  By Jensen
``mean_b r^2 >= rgt^2``, so the per-sample quadratic penalizes regret concentrated on few profiles more than the
paper's; with one agent the two agent reductions agree.
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
