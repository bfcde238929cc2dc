"""The collapse guard (issue 16, part 3; docs/stable_lagrangian.md, "Collapse guard").

From ``warmup_steps`` on, a validation revenue below ``fraction`` of the best so far (state saved in checkpoints)
is a collapse, e.g. the mechanism stops allocating as rho grows.  With ``on_collapse="restore"`` the weights and
buffers (mechanism, lambda, rho) come back from the regret-budget-best checkpoint and every
:class:`lagrangian.base.Softenable` rho schedule halves rho and holds it for ``hold_steps`` steps.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn

from lagrangian.base import Softenable, check_lagrangian_state
from utils.checks import is_int

__all__ = ["CollapseGuard", "ON_COLLAPSE"]

ON_COLLAPSE = ("warn", "restore")


class CollapseGuard(pl.Callback):
    """Watch ``revenue_key`` after each validation; see the module docstring."""

    def __init__(self, warmup_steps: int = 500, fraction: float = 0.5, on_collapse: str = "warn",
                 hold_steps: int = 1000, revenue_key: str = "val/revenue") -> None:
        if on_collapse not in ON_COLLAPSE:
            raise ValueError(f"on_collapse must be one of {', '.join(ON_COLLAPSE)}, got {on_collapse!r}")
        if not 0 < fraction < 1:
            raise ValueError(f"collapse fraction must be in (0, 1), got {fraction}")
        if not (is_int(warmup_steps, 0) and is_int(hold_steps, 0)):
            raise ValueError(f"warmup_steps and hold_steps must be integers >= 0, got {warmup_steps!r}, {hold_steps!r}")
        self.warmup_steps, self.fraction, self.on_collapse = warmup_steps, fraction, on_collapse
        self.hold_steps, self.revenue_key = hold_steps, revenue_key
        self.best = float("-inf")
        self.collapses: list[int] = []  # steps of the detected collapses

    @property
    def state_key(self) -> str:
        """A single run's guard: the class name (as its checkpoints have it); a member's: with its revenue key."""
        return (super().state_key if self.revenue_key == "val/revenue"
                else self._generate_state_key(revenue_key=self.revenue_key))

    def per_member(self, k: int) -> "CollapseGuard":
        """The same guard on ensemble member ``k``'s validation revenue; ``on_collapse=restore`` is refused (one
        member's best checkpoint is the whole ensemble's state at another step)."""
        if self.on_collapse == "restore":
            raise ValueError("callbacks.collapse.on_collapse=restore does not apply to an ensemble (a member's best "
                             "checkpoint holds every member at that step): use on_collapse=warn")
        return CollapseGuard(self.warmup_steps, self.fraction, self.on_collapse, self.hold_steps,
                             f"member_{k}/{self.revenue_key}")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.revenue_key not in trainer.callback_metrics:
            return
        revenue, step = float(trainer.callback_metrics[self.revenue_key]), trainer.global_step
        collapsed = step >= self.warmup_steps and revenue < self.fraction * self.best
        self.best = max(self.best, revenue)
        for logger in trainer.loggers:
            logger.log_metrics({"collapse/detected": float(collapsed), "collapse/best_revenue": self.best}, step=step)
        if not collapsed:
            return
        self.collapses.append(step)
        message = (f"collapse at step {step}: validation revenue {revenue:.4f} < {self.fraction} x its best "
                   f"{self.best:.4f}" + ("" if self.on_collapse == "warn" else self._restore(trainer, pl_module, step)))
        rank_zero_warn(message)
        for logger in trainer.loggers:
            add_text = getattr(getattr(logger, "experiment", None), "add_text", None)
            if add_text is not None:
                add_text("collapse", message, step)

    def _restore(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> str:
        """Reload the best checkpoint's weights and buffers, soften the rho schedules; the message's tail."""
        best = next((c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor and c.best_model_path), "")
        if not best:
            return "; no best checkpoint to restore"
        state = torch.load(best, map_location=pl_module.device, weights_only=False)["state_dict"]
        pl_module.load_state_dict(state)
        rho = check_lagrangian_state(pl_module).rho
        for callback in trainer.callbacks:
            if isinstance(callback, Softenable):
                callback.soften(step, self.hold_steps, rho)
        return f"; restored {best}, rho halved to {float(rho):g} and held for {self.hold_steps} steps"

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "collapses": list(self.collapses)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.collapses = float(state_dict["best"]), list(state_dict["collapses"])
