"""The paper's gradient misreport search as an adversary: the test protocol's search (``search``).

:class:`GradientSearch` is :func:`adversary.search.find_misreports` measured by
:func:`adversary.regret.measure` in chunks of ``batch_size`` profiles: besides the regret its report
has revenue, IR and feasibility (:class:`adversary.regret.Measurement`).  Its defaults are the paper's
test protocol (:data:`adversary.search.TEST_SEARCH`); :data:`adversary.protocol.PAPER_PROTOCOL` is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from adversary.base import Adversary
from adversary.regret import Measurement, measure
from adversary.search import TEST_SEARCH, MisreportSearch
from distributions import Setting
from utils.checks import check_positive_int

__all__ = ["GradientSearch"]


@dataclass(frozen=True)
class GradientSearch(Adversary):
    """Gradient ascent on each bidder's report from the truth and ``restarts`` uniform random starts (defaults: the paper's).

    steps, lr:  optimizer steps per start and learning rate (relative to the report domain's width).
    restarts:   random starts besides the truthful one.
    optimizer:  ``"adam"`` or ``"sgd"``.
    shading:    factors of further starts at the truth shaded (:class:`adversary.search.MisreportSearch`).
    batch_size: profiles per chunk of the search (one progress-bar tick each).
    """

    name = "search"
    label = "search"
    steps: int = TEST_SEARCH.steps
    lr: float = TEST_SEARCH.lr
    restarts: int = TEST_SEARCH.restarts
    optimizer: str = TEST_SEARCH.optimizer
    shading: tuple[float, ...] = TEST_SEARCH.shading
    batch_size: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.batch_size, "batch_size")
        self.search  # noqa: B018 - raises ValueError on bad search settings

    @property
    def search(self) -> MisreportSearch:
        """The misreport search of this adversary."""
        return MisreportSearch(steps=self.steps, lr=self.lr, restarts=self.restarts, optimizer=self.optimizer,
                               shading=self.shading)

    def regret(self, mechanism: nn.Module, valuations: Tensor, setting: Setting, *, seed: int | None = None,
               progress: bool = False) -> Measurement:
        generator = None if seed is None else torch.Generator(device=valuations.device).manual_seed(seed)
        low, high = setting.domain(valuations.device)
        return measure(mechanism, valuations, self.search, low, high, self.batch_size, generator, progress, setting.demand)

    def details(self, report: dict[str, Any]) -> str:
        return f"{self.steps} steps at lr {self.lr:g}, truthful + {self.restarts} random start(s)"
