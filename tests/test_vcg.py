"""VCG against brute-force enumeration, closed-form revenue and a misreport grid."""

from __future__ import annotations

import math

import pytest
import torch

from adversary.regret import measure
from adversary.search import MisreportSearch
from baselines.vcg import VCG
from tests.brute_force import best_welfare, clarke_payments, grid_regret, owners_allocation

# (demand, k, agents, items): every demand type, per-agent k, both assignment and per-item paths
SETTINGS = [
    ("unit", 1, 2, 3),
    ("unit", 1, 3, 2),
    ("k_demand", 2, 2, 3),
    ("k_demand", [1, 2], 2, 4),
    ("exactly_k", 1, 2, 3),
    ("exactly_k", [1, 2], 2, 4),
    ("exactly_k", 1, 3, 3),
    ("additive", 1, 2, 3),
    ("additive", 1, 3, 2),
]


def _check_feasible(vcg: VCG, allocation: torch.Tensor) -> None:
    caps = torch.tensor(vcg.capacities, dtype=allocation.dtype)
    assert ((allocation == 0) | (allocation == 1)).all()
    assert (allocation.sum(1) <= 1).all()
    if vcg.demand.exact:
        assert (allocation.sum(2) == caps).all()
    else:
        assert (allocation.sum(2) <= caps).all()


@pytest.mark.parametrize("demand,k,agents,items", SETTINGS)
def test_matches_brute_force_on_random_bids(demand: str, k, agents: int, items: int) -> None:
    vcg = VCG(agents, items, demand, k)
    bids = torch.rand(6, agents, items, dtype=torch.float64)
    allocation, payment = vcg(bids)
    for b in range(len(bids)):
        values = bids[b].tolist()
        welfare, owners = best_welfare(values, list(range(agents)), vcg.capacities, vcg.demand.exact)
        assert len(owners) == 1  # continuous bids: the optimum is unique
        torch.testing.assert_close(allocation[b], owners_allocation(owners[0], agents))
        brute = clarke_payments(values, allocation[b], vcg.capacities, vcg.demand.exact)
        torch.testing.assert_close(payment[b], torch.tensor(brute, dtype=torch.float64), rtol=0, atol=1e-12)


def _extreme_bids(agents: int, items: int) -> torch.Tensor:
    grid = torch.randint(0, 3, (8, agents, items)).double() / 2  # values in {0, 0.5, 1}: many ties
    return torch.cat([torch.zeros(1, agents, items), torch.ones(1, agents, items),
                      torch.full((1, agents, items), 0.5), grid])


@pytest.mark.parametrize("demand,k,agents,items", SETTINGS)
def test_feasible_ir_and_welfare_optimal_on_extreme_bids(demand: str, k, agents: int, items: int) -> None:
    vcg = VCG(agents, items, demand, k)
    bids = torch.cat([_extreme_bids(agents, items), torch.rand(20, agents, items, dtype=torch.float64)])
    allocation, payment = vcg(bids)
    _check_feasible(vcg, allocation)
    value = (bids * allocation).sum(-1)
    assert (payment <= value + 1e-12).all(), "IR violated"
    assert (payment >= -1e-12).all(), "VCG never pays bidders"
    for b in range(len(bids)):
        values = bids[b].tolist()
        welfare = best_welfare(values, list(range(agents)), vcg.capacities, vcg.demand.exact)[0]
        assert float(value[b].sum()) == pytest.approx(welfare, abs=1e-12)
        brute = clarke_payments(values, allocation[b], vcg.capacities, vcg.demand.exact)
        torch.testing.assert_close(payment[b], torch.tensor(brute, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("agents", [2, 3])
def test_single_item_revenue_is_expected_second_highest_value(agents: int) -> None:
    """One item, n bidders U[0, 1]: revenue E[2nd highest of n] = (n - 1) / (n + 1), 1/3 for two."""
    n = 40_000
    revenue = VCG(agents, 1)(torch.rand(n, agents, 1, dtype=torch.float64))[1].sum(-1)
    stderr = float(revenue.std()) / math.sqrt(n)
    assert abs(float(revenue.mean()) - (agents - 1) / (agents + 1)) < 4 * stderr


@pytest.mark.parametrize(
    "demand,k,agents,items",
    [("unit", 1, 2, 2), ("k_demand", [1, 2], 2, 3), ("exactly_k", 1, 2, 2), ("additive", 1, 2, 2)],
)
def test_no_profitable_misreport_on_a_grid(demand: str, k, agents: int, items: int) -> None:
    vcg = VCG(agents, items, demand, k)
    valuations = torch.rand(4, agents, items, dtype=torch.float64)
    gains = grid_regret(vcg, valuations, torch.linspace(0, 1, 6, dtype=torch.float64))
    assert gains.max() <= 1e-12


class FirstPrice(VCG):
    """VCG's allocation, but winners pay their bids: manipulable (shading pays)."""

    def allocate_and_pay(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        allocation, _ = super().allocate_and_pay(bids)
        return allocation, (bids.detach() * allocation).sum(-1)


def test_grid_check_detects_a_manipulable_auction() -> None:
    """Sanity of the grid check itself: first-price auctions reward shading the bid."""
    valuations = torch.tensor([[[0.9], [0.35]]], dtype=torch.float64)
    gains = grid_regret(FirstPrice(2, 1), valuations, torch.linspace(0, 1, 11, dtype=torch.float64))
    # agent 0 best bids 0.4 (the lowest grid bid above 0.35): gain 0.9 - 0.4 = 0.5 over truthful 0
    assert float(gains[0, 0]) == pytest.approx(0.5)


def test_dtype_autograd_and_inference_mode() -> None:
    vcg = VCG(2, 3, "unit")
    bids = torch.rand(5, 2, 3, requires_grad=True)
    allocation, payment = vcg(bids)
    assert allocation.dtype == payment.dtype == torch.float32
    assert not allocation.requires_grad and not payment.requires_grad
    with torch.inference_mode():
        inference = vcg(bids.detach())
    torch.testing.assert_close(inference[0], allocation)
    torch.testing.assert_close(inference[1], payment)


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="shape"):
        VCG(2, 3)(torch.rand(4, 3, 2))
    with pytest.raises(ValueError, match="NaN"):
        VCG(2, 3)(torch.full((1, 2, 3), float("nan")))
    with pytest.raises(ValueError, match="exactly_k"):
        VCG(2, 3, "exactly_k", 2)


@pytest.mark.parametrize("demand,k,agents,items", [("unit", 1, 2, 3), ("exactly_k", 1, 2, 3), ("additive", 1, 2, 2)])
def test_regret_engine_finds_no_regret(demand: str, k, agents: int, items: int) -> None:
    valuations = torch.rand(64, agents, items, dtype=torch.float64)
    result = measure(VCG(agents, items, demand, k), valuations, MisreportSearch(steps=10, restarts=20),
                      generator=torch.Generator().manual_seed(0))
    assert result.regret_sum_over_agents_max <= 1e-12
    assert result.ir_violation_max <= 1e-12 and result.allocation_violation_max <= 1e-12


def test_regret_engine_random_starts_catch_a_manipulable_auction() -> None:
    """The zero-regret checks above are meaningful: the same search finds first-price regret."""
    valuations = torch.rand(64, 2, 1, dtype=torch.float64)
    result = measure(FirstPrice(2, 1), valuations, MisreportSearch(steps=10, restarts=20),
                      generator=torch.Generator().manual_seed(0))
    assert result.regret_sum_over_agents_mean > 0.05
