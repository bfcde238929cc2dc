"""The checkpoint criterion that respects a regret budget (docs/training.md, "regret-budget score").

Revenue is never negative (payments are a fraction of the allocated value), so with ``-regret`` over budget
every checkpoint within budget outranks every checkpoint over it.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl

__all__ = ["RegretBudgetScore", "budgeted_score"]


def budgeted_score(revenue: float, regret: float, budget: float) -> float:
    """Checkpoint score: ``revenue`` if ``regret <= budget`` else ``-regret`` (higher is better)."""
    return revenue if regret <= budget else -regret


class RegretBudgetScore(pl.Callback):
    """After each validation, log ``score_key = budgeted_score(val revenue, val regret, budget)``; Lightning runs
    checkpoint callbacks after all others, so a ``ModelCheckpoint`` monitoring ``score_key`` sees the fresh score."""

    def __init__(self, budget: float = 0.002, revenue_key: str = "val/revenue",
                 regret_key: str = "val/regret_mean_over_agents", score_key: str = "val/budgeted_revenue") -> None:
        if not (math.isfinite(budget) and budget >= 0):
            raise ValueError(f"regret budget must be a finite number >= 0, got {budget}")
        self.budget, self.revenue_key, self.regret_key, self.score_key = budget, revenue_key, regret_key, score_key

    def per_member(self, k: int) -> "RegretBudgetScore":
        """The same score of ensemble member ``k``'s metrics (``member_<k>/`` keys)."""
        keys = (self.revenue_key, self.regret_key, self.score_key)
        return RegretBudgetScore(self.budget, *(f"member_{k}/{key}" for key in keys))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        missing = [key for key in (self.revenue_key, self.regret_key) if key not in metrics]
        if missing:
            raise ValueError(f"RegretBudgetScore: validation did not log {', '.join(missing)}")
        score = budgeted_score(float(metrics[self.revenue_key]), float(metrics[self.regret_key]), self.budget)
        metrics[self.score_key] = metrics[self.revenue_key].new_tensor(score)
        for logger in trainer.loggers:
            logger.log_metrics({self.score_key: score}, step=trainer.global_step)
