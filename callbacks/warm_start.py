"""The warm start as a callback: before the Lagrangian phase, fit the mechanism to a baseline (issue 16, part 2).

What it fits, logs and measures, and how its time and steps count: docs/stable_lagrangian.md ("Warm start").
``init`` names the teacher (:data:`baselines.teachers.INITS`; ``none``: do nothing); a resume does nothing.
An ensemble (:mod:`training.members`): every member is fitted as its single run would be (its own seed,
:meth:`WarmStart.for_members`), one after the other; its metrics go under ``member_<k>/init/...``.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from adversary.audit import MAX_ITEMS, AuditSettings, audit
from adversary.regret import measure
from utils.checks import check_positive_int
from mechanisms.ensemble import ensemble_size, member_mechanism, set_member_state
from lagrangian.base import member_prefix
from baselines.teachers import INITS, resolve_teacher
from distributions import Setting
from training.warm_start import fit_to_teacher

__all__ = ["WarmStart"]


class WarmStart(pl.Callback):
    """Fit the mechanism to the ``init`` baseline for ``steps`` Adam steps (``lr``, batches of ``batch_size``)."""

    def __init__(self, init: str = "none", steps: int = 2000, lr: float = 1e-3, batch_size: int = 512,
                 audit_samples: int = 64, seed: int = 0) -> None:
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        for name, value in (("steps", steps), ("batch_size", batch_size), ("audit_samples", audit_samples)):
            check_positive_int(value, f"warm start {name}")
        self.init, self.steps, self.lr, self.batch_size = init, steps, lr, batch_size
        self.audit_samples, self.seeds = audit_samples, [seed]
        self.report: dict[str, Any] | None = None

    def for_members(self, built: Sequence["WarmStart"]) -> "WarmStart":
        """This warm start for an ensemble whose member ``k`` fits with ``built[k]``'s seed."""
        joined = copy.copy(self)
        joined.seeds = [seed for start in built for seed in start.seeds]
        return joined

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.init == "none" or trainer.global_step > 0:  # nothing to do, or a resume: the fit is done
            return
        mechanism, size = pl_module.mechanism, ensemble_size(pl_module.mechanism)
        if len(self.seeds) not in (1, size):
            raise ValueError(f"WarmStart has seeds for {len(self.seeds)} members, the module has {size}")
        reports = []
        for k in range(size):
            member = mechanism if size == 1 else member_mechanism(mechanism, k)
            seed = self.seeds[k % len(self.seeds)]
            reports.append(self._fit(trainer, pl_module, member, seed, member_prefix(k, size)))
            if size > 1:
                set_member_state(mechanism, k, member.state_dict())
        self.report = reports[0] if size == 1 else {"members": reports}

    def _fit(self, trainer: pl.Trainer, pl_module: pl.LightningModule, mechanism: nn.Module, seed: int,
             prefix: str) -> dict[str, Any]:
        """Fit ``mechanism`` (one member) to the teacher with ``seed``, measure it; its report."""
        data = trainer.datamodule
        teacher = resolve_teacher(self.init, Setting.of(mechanism, data.distribution), seed=seed)

        def log(metrics: dict[str, float], step: int) -> None:
            for logger in trainer.loggers:
                logger.log_metrics({prefix + name: value for name, value in metrics.items()}, step=step)

        fit = fit_to_teacher(mechanism, teacher.mechanism.to(pl_module.device), data.splits["train"].valuations,
                             self.steps, self.lr, self.batch_size, torch.Generator().manual_seed(seed), log)
        validation = data.splits["val"].valuations
        measured = measure(mechanism, validation, pl_module.val_search, low=pl_module.low, high=pl_module.high,
                           batch_size=data.val_batch_size,
                           generator=torch.Generator(validation.device).manual_seed(seed))
        report: dict[str, Any] = {
            "init": self.init, "teacher": teacher.name, "teacher_revenue": teacher.revenue, "fit": fit.to_dict(),
            "val_revenue": measured.revenue_mean, "val_regret_mean_over_agents": measured.regret_mean_over_agents_mean,
            "val_regret_sum_over_agents": measured.regret_sum_over_agents_mean}
        if mechanism.n_items <= MAX_ITEMS:
            audited = audit(mechanism, validation[: self.audit_samples], AuditSettings(), pl_module.low, pl_module.high)
            report["audit_regret_mean_over_agents"] = audited.regret_mean_over_agents_mean
            report["audit_samples"] = audited.n_samples
        log({f"init/{key}": float(value) for key, value in report.items()
             if key.startswith(("val_", "audit_regret", "teacher_revenue"))}, self.steps)
        audited_text = f", audited {report['audit_regret_mean_over_agents']:.5f}" if "audit_samples" in report else ""
        rank_zero_info(f"{prefix}warm start from {self.init} ({self.steps} steps, {fit.time_s:.0f} s): fitted revenue "
                       f"{fit.revenue:.4f} (teacher {fit.teacher_revenue:.4f}) on the training profiles; validation "
                       f"revenue {measured.revenue_mean:.4f}, regret {measured.regret_mean_over_agents_mean:.5f}"
                       + audited_text)
        return report
