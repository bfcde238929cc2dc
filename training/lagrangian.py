"""The augmented-Lagrangian objective of RegretNet training (section 4.5, Eq. 1).

One home for the loss that every training path (the eager Lightning step and
the captured fast step) minimizes, so the two cannot drift apart.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["lagrangian_loss"]


def lagrangian_loss(revenue: Tensor, regrets: Tensor, multipliers: Tensor, rho: Tensor) -> Tensor:
    """``-mean revenue + sum_i lambda_i rgt_i + rho / 2 * sum_i rgt_i^2`` (the paper's Eq. 1).

    Args:
        revenue: ``(batch,)`` revenue of every profile.
        regrets: ``(batch, agents)`` per-profile, per-agent regret.
        multipliers: ``(agents,)`` Lagrange multipliers lambda.
        rho: scalar tensor, the quadratic penalty weight.

    ``rgt_i`` is agent ``i``'s batch-mean regret.
    """
    rgt = regrets.mean(0)
    return -revenue.mean() + (multipliers * rgt).sum() + rho / 2 * (rgt**2).sum()
