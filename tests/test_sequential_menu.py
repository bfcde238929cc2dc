"""Sequential menus (mechanisms/sequential_menu.py) against independent truth: pay_to_choose's own implementation at
the corner that is pay_to_choose, the envelope integral of the allocation for the payments, random misreports for
truthfulness, the demand's constraints; bad arguments; training through its config node."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from baselines.pay_to_choose import PayToChoose
from mechanisms.base import utility
from mechanisms.sequential_menu import SequentialMenu
from runs.checkpoints import load_checkpoint
from runs.run import run
from tests.test_config import make_config
from tests.test_potential_auction import envelope_payment
from tests.test_training import TINY


def _random_menu(agents: int, items: int, seed: int = 0, temperature: float = 0.05) -> SequentialMenu:
    """Random rank lotteries and prices (as training could leave them), in float64."""
    torch.manual_seed(seed)
    mechanism = SequentialMenu(agents, items, options=5, temperature=temperature).double()
    with torch.no_grad():
        mechanism.rank_logits.normal_(0, 2.0)
        mechanism.prices.uniform_(0.0, 0.5)
    return mechanism


@pytest.mark.parametrize("agents, items", [(1, 4), (2, 3), (2, 15), (3, 5)])
def test_the_menu_best_item_or_free_is_pay_to_choose(agents: int, items: int) -> None:
    prices = [0.3 + 0.05 * i for i in range(agents)]
    mechanism = SequentialMenu(agents, items, prices=prices, temperature=1e-9, spread=200.0, jitter=0.0).double()
    with torch.no_grad():
        mechanism.prices[:, 1:] = 10.0  # no bidder takes the other entries
    bids = torch.rand(256, agents, items, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        allocation, payment = mechanism(bids)
    expected_allocation, expected_payment = PayToChoose(agents, items, prices)(bids)
    assert torch.allclose(allocation, expected_allocation, atol=1e-9)
    assert torch.allclose(payment, expected_payment, atol=1e-6)  # the prices are float32 parameters


@pytest.mark.parametrize("agents, items", [(1, 3), (2, 3), (3, 4)])
def test_the_payment_is_the_envelope_integral(agents: int, items: int) -> None:
    mechanism = _random_menu(agents, items)
    bids = torch.rand(6, agents, items, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        _, payment = mechanism(bids)
    expected = envelope_payment(mechanism, bids, nodes=64)
    assert torch.allclose(payment, expected, atol=1e-6), (payment - expected).abs().max()
    assert (payment > 1e-3).any()  # not trivially zero


@pytest.mark.parametrize("temperature", [0.05, 1e-3])
def test_no_misreport_gains(temperature: float) -> None:
    agents, items, profiles, tries = 2, 4, 32, 256
    mechanism = _random_menu(agents, items, seed=3, temperature=temperature)
    generator = torch.Generator().manual_seed(3)
    values = torch.rand(profiles, agents, items, dtype=torch.float64, generator=generator)
    with torch.no_grad():
        truthful = utility(values, *mechanism(values))  # (profiles, agents)
        for agent in range(agents):
            bids = values.repeat(tries, 1, 1)  # (tries * profiles, agents, items)
            bids[:, agent] = torch.rand(tries * profiles, items, dtype=torch.float64, generator=generator)
            lied = utility(values.repeat(tries, 1, 1), *mechanism(bids))[:, agent].view(tries, profiles)
            assert (lied - truthful[:, agent]).max() < 1e-9


def test_allocations_are_feasible_and_payments_individually_rational() -> None:
    mechanism = _random_menu(2, 5, seed=4)
    bids = torch.rand(128, 2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        allocation, payment = mechanism(bids)
    assert mechanism.demand.violation(allocation).max() < 1e-12
    assert torch.allclose(allocation.sum(-1), torch.ones(128, 2, dtype=torch.float64))
    value = (bids * allocation).sum(-1)
    assert (payment >= -1e-12).all() and (payment <= value + 1e-12).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"demand": "unit"}, "sequential_menu is for exactly-one demand"),
    ({"k": 2, "n_items": 4}, "sequential_menu is for exactly-one demand"),
    ({"n_agents": 5, "n_items": 15}, "would enumerate 32760 remaining-item sets"),
    ({"prices": [0.3]}, "prices must be a number or 2 finite numbers"),
    ({"prices": float("nan")}, "prices must be a number or 2 finite numbers"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"spread": -1.0}, "spread and jitter >= 0"),
    ({"jitter": float("inf")}, "spread and jitter >= 0"),
    ({"options": 0}, "options must be a positive integer"),
])
def test_bad_arguments_are_refused_in_one_line(kwargs: dict, message: str) -> None:
    arguments = {"n_agents": 2, "n_items": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        SequentialMenu(**arguments)


def test_it_trains_through_its_config_node_and_reloads(tmp_path: Path) -> None:
    overrides = [o for o in TINY if not o.startswith("mechanism.")]
    cfg = make_config(*overrides, "demand=exactly_k", "agents=2", "items=3", "mechanism=sequential_menu",
                      "model.lr=0.01", output_dir=tmp_path)
    start = SequentialMenu(2, 3)
    run(cfg)
    trained = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt").mechanism
    assert isinstance(trained, SequentialMenu)
    assert not torch.equal(trained.prices, start.prices)  # trained (the checkpoint holds the learned menu)
    allocation, payment = trained(torch.rand(16, 2, 3))
    assert torch.isfinite(allocation).all() and (payment >= -1e-6).all()
