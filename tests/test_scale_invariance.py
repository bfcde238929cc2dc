"""The misreport search is scale-invariant: its steps are relative to the width of the report domain (issue 19).

:class:`Scaled` turns a mechanism on ``[0, 1]`` into the same mechanism on
``[0, s]`` (bids divided by ``s``, payments multiplied by it), so every regret
scales by ``s`` exactly.  With an absolute learning rate the search barely moves
on ``[0, 10^6]`` (0.1 per step); with steps relative to the width it finds the
same regret, in units of ``s``, as on ``[0, 1]``.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from adversary.audit import AuditSettings, audit
from adversary.regret import measure
from adversary.search import TEST_SEARCH, MisreportSearch, find_misreports
from tests.test_misreport import QuadraticToy, quadratic_regret


class Scaled(nn.Module):
    """``inner`` on values in ``[0, scale]``: allocation ``a(b / scale)``, payment ``scale * p(b / scale)``."""

    def __init__(self, inner: nn.Module, scale: float) -> None:
        super().__init__()
        self.inner, self.scale, self.demand = inner, scale, "additive"

    def forward(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        allocation, payment = self.inner(bids / self.scale)
        return allocation, self.scale * payment


@pytest.mark.parametrize("scale", [1.0, 1e6])
def test_search_regret_is_within_ten_percent_of_the_audit_on_any_scale(scale: float) -> None:
    """The paper's test search (1000 Adam steps at lr 0.1, truth + 10 random starts) against the
    audit and the closed form ``scale * quadratic_regret(v / scale)`` on values U[0, scale]."""
    valuations = scale * torch.rand(100, 1, 2, dtype=torch.float64)
    mechanism = Scaled(QuadraticToy(), scale)
    generator = torch.Generator().manual_seed(0)
    searched = measure(mechanism, valuations, TEST_SEARCH, low=0.0, high=scale, generator=generator, batch_size=100)
    audited = audit(mechanism, valuations, AuditSettings(), low=0.0, high=scale)
    closed_form = scale * quadratic_regret(valuations / scale).mean().item()
    found, exhaustive = searched.regret_sum_over_agents_mean, audited.regret_sum_over_agents_mean
    assert exhaustive == pytest.approx(closed_form, rel=1e-3)
    assert found == pytest.approx(exhaustive, rel=0.1)
    assert found == pytest.approx(closed_form, rel=0.02)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_search_path_in_units_of_the_domain_is_the_same_on_every_scale(optimizer: str) -> None:
    """A power-of-two scale is exact in floating point: the misreports on ``[0, 2^20]`` are exactly
    ``2^20`` times those on ``[0, 1]`` (same starts, same steps in units of the domain), per-agent bounds too."""
    scale = 2.0**20
    unit = torch.rand(50, 2, 3, dtype=torch.float64)
    search = MisreportSearch(steps=30, lr=0.05, restarts=2, optimizer=optimizer)
    found = {}
    for s in (1.0, scale):
        generator = torch.Generator().manual_seed(1)
        found[s] = find_misreports(Scaled(QuadraticToy(), s), s * unit, search, [0.0, 0.0], [s, s], generator)
    assert not torch.equal(found[1.0], unit)  # the search moved
    assert torch.equal(found[scale], scale * found[1.0])
