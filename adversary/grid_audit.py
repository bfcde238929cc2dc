"""The exhaustive grid audit as an adversary (``audit``): :func:`adversary.audit.audit` behind :class:`~adversary.base.Adversary`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from adversary.audit import MAX_ITEMS, AuditReport, AuditSettings, audit
from adversary.base import Adversary
from distributions import Setting

__all__ = ["GridAudit"]


@dataclass(frozen=True)
class GridAudit(Adversary):
    """A grid over each bidder's report, then a local refinement (``settings``; at most :data:`MAX_ITEMS` items).

    Deterministic: ``seed`` is not used.
    """

    name = "audit"
    label = "audited"
    comparison_key = "search_on_audited"
    settings: AuditSettings = AuditSettings()

    def check(self, setting: Setting) -> None:
        if setting.items > MAX_ITEMS:
            raise ValueError(f"the audit grids each bidder's report: at most {MAX_ITEMS} items, this setting has {setting.items}")

    def regret(self, mechanism: nn.Module, valuations: Tensor, setting: Setting, *, seed: int | None = None,
               progress: bool = False) -> AuditReport:
        low, high = setting.domain(valuations.device)
        return audit(mechanism, valuations, self.settings, low, high, progress)

    def details(self, report: dict[str, Any]) -> str:
        return f"grid {report['grid_points']}"
