"""Analytic optimal mechanisms: Monte Carlo revenue vs closed form, truthfulness on a grid, feasibility, IR."""

from __future__ import annotations

import math

import pytest
import torch

from mechanisms.base import Mechanism
from adversary.regret import measure
from adversary.search import MisreportSearch
from baselines.optimal import MenuMechanism, Myerson, free_and_priced, manelli_vincent, posted_price
from tests.brute_force import grid_regret

# (factory, closed-form revenue derived by hand for U[0, 1])
MECHANISMS = [
    (lambda: posted_price(), 2 / (3 * math.sqrt(3))),
    (lambda: free_and_priced(), 2 / 27),
    (lambda: manelli_vincent(), 4 / 9 + 2 * math.sqrt(2) / 27),
    (lambda: Myerson(1), 1 / 4),  # posted price 1/2
    (lambda: Myerson(2), 5 / 12),
    (lambda: Myerson(3), 17 / 32),  # int_{1/2}^1 (2v - 1) 3 v^2 dv
]
IDS = ["posted_price", "free_and_priced", "manelli_vincent", "myerson1", "myerson2", "myerson3"]


def _sample(mechanism: Mechanism, n: int, high: float = 1.0) -> torch.Tensor:
    return high * torch.rand(n, mechanism.n_agents, mechanism.n_items, dtype=torch.float64)


@pytest.mark.parametrize("factory,revenue", MECHANISMS, ids=IDS)
def test_monte_carlo_revenue_matches_closed_form(factory, revenue: float) -> None:
    mechanism = factory()
    assert mechanism.expected_revenue == pytest.approx(revenue, rel=1e-12)
    n = 200_000
    realized = mechanism(_sample(mechanism, n))[1].sum(-1)
    stderr = float(realized.std()) / math.sqrt(n)
    assert abs(float(realized.mean()) - revenue) < 4 * stderr


def test_revenue_scales_with_value_range() -> None:
    mechanism = manelli_vincent(high=3.0)
    n = 200_000
    realized = mechanism(_sample(mechanism, n, high=3.0))[1].sum(-1)
    assert mechanism.expected_revenue == pytest.approx(3 * (4 / 9 + 2 * math.sqrt(2) / 27))
    assert abs(float(realized.mean()) - mechanism.expected_revenue) < 4 * float(realized.std()) / math.sqrt(n)


@pytest.mark.parametrize("factory,revenue", MECHANISMS, ids=IDS)
def test_no_profitable_misreport_on_a_grid(factory, revenue: float) -> None:
    mechanism = factory()
    valuations = torch.cat([_sample(mechanism, 6), torch.full((1, mechanism.n_agents, mechanism.n_items), 0.5,
                                                                 dtype=torch.float64)])
    grid = torch.linspace(0, 1, 41 if mechanism.n_items == 1 else 21, dtype=torch.float64)
    assert grid_regret(mechanism, valuations, grid).max() <= 1e-12


def _extreme_bids(mechanism: Mechanism) -> torch.Tensor:
    shape = (1, mechanism.n_agents, mechanism.n_items)
    boundary = [0.0, 1.0, 0.5, 1 / 3, 2 / 3, 1 / math.sqrt(3), (4 - math.sqrt(2)) / 3, (2 - math.sqrt(2)) / 3]
    return torch.cat([torch.full(shape, x, dtype=torch.float64) for x in boundary] + [_sample(mechanism, 50)])


@pytest.mark.parametrize("factory,revenue", MECHANISMS, ids=IDS)
def test_feasible_and_individually_rational(factory, revenue: float) -> None:
    mechanism = factory()
    bids = _extreme_bids(mechanism)
    allocation, payment = mechanism(bids)
    caps = torch.tensor(mechanism.capacities, dtype=torch.float64)
    assert ((allocation == 0) | (allocation == 1)).all()
    assert (allocation.sum(1) <= 1).all()
    if mechanism.demand.exact:
        assert (allocation.sum(2) == caps).all()
    else:
        assert (allocation.sum(2) <= caps).all()
    assert (payment <= (bids * allocation).sum(-1) + 1e-12).all()
    assert (payment >= 0).all()


def test_ties_go_to_the_seller_and_the_first_entry() -> None:
    """At v = price the bidder buys; equal values pick the first item; Myerson ties go to the lowest index."""
    price = 1 / math.sqrt(3)
    allocation, payment = posted_price()(torch.tensor([[[price, price]], [[0.2, 0.2]]], dtype=torch.float64))
    torch.testing.assert_close(allocation[:, 0], torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(payment[:, 0], torch.tensor([price, 0.0], dtype=torch.float64))
    allocation, payment = Myerson(3)(torch.tensor([[[0.7], [0.7], [0.1]], [[0.1], [0.5], [0.2]]]))
    torch.testing.assert_close(allocation[..., 0], torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    torch.testing.assert_close(payment, torch.tensor([[0.7, 0, 0], [0, 0.5, 0]]))


def test_autograd_and_inference_mode() -> None:
    for mechanism in (posted_price(), Myerson(2)):
        bids = torch.rand(4, mechanism.n_agents, mechanism.n_items, requires_grad=True)
        allocation, payment = mechanism(bids)
        assert allocation.dtype == payment.dtype == torch.float32
        assert not allocation.requires_grad and not payment.requires_grad
        with torch.inference_mode():
            inference = mechanism(bids.detach())
        torch.testing.assert_close(inference[1], payment)


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="feasible"):
        MenuMechanism([[1, 1]], [0.5], "unit", expected_revenue=0.0, name="two items to a unit bidder")
    with pytest.raises(ValueError, match="feasible"):
        MenuMechanism([[0, 0]], [0.0], "exactly_k", expected_revenue=0.0, name="nothing under exactly-one")
    with pytest.raises(ValueError, match="entries"):
        MenuMechanism([[1, 0]], [0.5, 0.2], "unit", expected_revenue=0.0, name="price count mismatch")
    with pytest.raises(ValueError, match="free disposal"):
        Myerson(1, demand="exactly_k")
    with pytest.raises(ValueError, match="high"):
        posted_price(high=0.0)
    with pytest.raises(ValueError, match="shape"):
        Myerson(2)(torch.rand(3, 2, 2))


@pytest.mark.parametrize("factory,revenue", MECHANISMS, ids=IDS)
def test_regret_engine_finds_no_regret(factory, revenue: float) -> None:
    mechanism = factory()
    result = measure(mechanism, _sample(mechanism, 256), MisreportSearch(steps=10, restarts=50),
                      generator=torch.Generator().manual_seed(0))
    assert result.regret_sum_over_agents_max <= 1e-12
    assert result.ir_violation_max <= 1e-12 and result.allocation_violation_max <= 1e-12
