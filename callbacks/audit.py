"""A cheap regret audit at validation: is the training's gradient search missing regret?

See docs/regret_audit.md: the audit (:class:`adversary.grid_audit.GridAudit`) and the training's or the
validation's search (:class:`adversary.gradient.GradientSearch`) attack the same validation profiles.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict
from typing import Any

import lightning.pytorch as pl
from torch import Tensor

from adversary.audit import AuditSettings
from adversary.gradient import GradientSearch
from adversary.grid_audit import GridAudit
from adversary.search import TRAIN_SEARCH, VAL_SEARCH, MisreportSearch
from distributions import Setting
from utils.checks import check_positive_int
from mechanisms.ensemble import members_of
from lagrangian.base import member_prefix

__all__ = ["AuditWarning", "RegretAudit"]

SEARCHES = {"train": TRAIN_SEARCH, "val": VAL_SEARCH}  # the searches to compare with; defaults when the module has none


class AuditWarning(UserWarning):
    """The audit found much more regret than the gradient search on the same profiles."""


class RegretAudit(pl.Callback):
    """After every ``every_n_validations``-th validation of an ``n_items`` setting, audit a subsample.

    The first ``samples`` profiles of the first validation batch are audited (a ``points`` x ``points`` grid,
    ``refine_rounds`` rounds of local search) and searched with the module's ``{search}_search``; the logged
    scalars, the warning and its default factor: docs/regret_audit.md ("During training").
    """

    def __init__(self, every_n_validations: int = 1, samples: int = 64, points: int = 41, refine_rounds: int = 6,
                 warn_factor: float = 2.0, warn_min_regret: float = 5e-4, n_items: int = 2,
                 search: str = "train") -> None:
        super().__init__()
        if search not in SEARCHES:
            raise ValueError(f"RegretAudit.search must be one of {', '.join(SEARCHES)}, got {search!r}")
        for name, value in (("every_n_validations", every_n_validations), ("samples", samples), ("n_items", n_items)):
            check_positive_int(value, f"RegretAudit.{name}")
        if not (math.isfinite(warn_factor) and warn_factor >= 1):
            raise ValueError(f"RegretAudit.warn_factor must be a finite number >= 1, got {warn_factor!r}")
        if not (math.isfinite(warn_min_regret) and warn_min_regret >= 0):
            raise ValueError(f"RegretAudit.warn_min_regret must be finite and >= 0, got {warn_min_regret!r}")
        self.adversary = GridAudit(settings=AuditSettings(points=points, refine_rounds=refine_rounds))  # validates them
        self.every_n_validations, self.samples, self.n_items = every_n_validations, samples, n_items
        self.warn_factor, self.warn_min_regret, self.search = warn_factor, warn_min_regret, search
        self.validations = 0
        self._profiles: Tensor | None = None
        self.last: dict[str, float] = {}

    def _applies(self, pl_module: pl.LightningModule) -> bool:
        mechanism: Any = getattr(pl_module, "mechanism", None)
        return mechanism is not None and getattr(mechanism, "n_items", None) == self.n_items

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        """Keep the first ``samples`` profiles of the first validation batch."""
        if batch_idx == 0 and isinstance(batch, Tensor) and not trainer.sanity_checking and self._applies(pl_module):
            self._profiles = batch[: self.samples].detach()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Audit and search the kept profiles, log both, warn on a large gap."""
        if trainer.sanity_checking or self._profiles is None or not self._applies(pl_module):
            return
        self.validations += 1
        if self.validations % self.every_n_validations:
            return
        profiles, self._profiles = self._profiles, None
        members = members_of(pl_module.mechanism)  # an ensemble: every member, logged under member_<k>/
        for k, mechanism in enumerate(members):
            self.last = self._audit(trainer, pl_module, mechanism, profiles, member_prefix(k, len(members)))

    def _audit(self, trainer: pl.Trainer, pl_module: pl.LightningModule, mechanism: Any, profiles: Tensor,
               prefix: str) -> dict[str, float]:
        """Audit and search ``profiles`` on ``mechanism``, log both under ``prefix``, warn on a large gap."""
        setting = Setting.of(mechanism, getattr(pl_module, "distribution", None))
        search: MisreportSearch = getattr(pl_module, f"{self.search}_search", None) or SEARCHES[self.search]
        searcher = GradientSearch(**asdict(search), batch_size=len(profiles))  # the profiles in one chunk
        audited = self.adversary.regret(mechanism, profiles, setting)
        searched = searcher.regret(mechanism, profiles, setting)  # seed None: torch's generator, as in training
        found, seen = audited.regret_sum_over_agents_mean, searched.regret_sum_over_agents_mean
        metrics = {"audit/regret_mean_over_agents": audited.regret_mean_over_agents_mean,
                   "audit/regret_sum_over_agents": found, "audit/search_regret_sum_over_agents": seen,
                   "audit/regret_sum_over_agents_max": audited.regret_sum_over_agents_max}
        if seen > 0:
            metrics["audit/ratio"] = found / seen
        for name, value in metrics.items():
            pl_module.log(prefix + name, value)
        if found > self.warn_min_regret and found > self.warn_factor * seen:
            warnings.warn(f"step {trainer.global_step}: {prefix}the regret audit finds {found:.4g} (sum over agents, "
                          f"{len(profiles)} validation profiles) but the {self.search} search only {seen:.4g} on the "
                          f"same profiles: more than {self.warn_factor:g}x; its regret estimate is too low "
                          "(docs/regret_audit.md)", AuditWarning, stacklevel=2)
        return metrics
