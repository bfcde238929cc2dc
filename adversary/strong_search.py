"""The strong misreport search as an adversary (``strong``): :func:`adversary.strong.strong_regret` behind
:class:`~adversary.base.Adversary`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from adversary.base import Adversary
from adversary.strong import StrongReport, StrongSettings, strong_regret
from distributions import Setting

__all__ = ["StrongSearch"]


@dataclass(frozen=True)
class StrongSearch(Adversary):
    """Many random and structured starts, long Adam runs (``settings``; any number of items).

    Its random starts are seeded by ``seed``; ``seed=None`` draws that seed from torch's global generator.
    """

    name = "strong"
    label = "strong adversary"
    settings: StrongSettings = StrongSettings()

    def regret(self, mechanism: nn.Module, valuations: Tensor, setting: Setting, *, seed: int | None = None,
               progress: bool = False) -> StrongReport:
        low, high = setting.domain(valuations.device)
        seed = int(torch.randint(2**31 - 1, ())) if seed is None else seed
        return strong_regret(mechanism, valuations, self.settings, low, high, seed=seed, progress=progress)

    def details(self, report: dict[str, Any]) -> str:
        return f"{report['starts']} starts x {report['steps']} steps"
