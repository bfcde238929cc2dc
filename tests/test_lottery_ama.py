"""The entropic lottery affine maximizer (mechanisms/lottery_ama.py).

Checked against independent truth: for random parameters the payment equals the envelope theorem's
``b_i . x_i - int_0^1 b_i . x_i(t b_i, b_-i) dt`` computed by quadrature from the allocations alone, and the
exhaustive audit finds no regret; with the deterministic assignments as the menu, unit weights, no boosts and a
small temperature it is the VCG auction (:class:`baselines.vcg.VCG`, an assignment solver); the allocations are
feasible for every demand; payments lie in ``[0, b_i . x_i]``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adversary.audit import AuditSettings, audit
from mechanisms.lottery_ama import LotteryAMA
from mechanisms.sinkhorn import SinkhornSettings
from baselines.vcg import VCG
from runs.checkpoints import load_checkpoint
from tests.test_config import make_config
from tests.test_potential_auction import _margin, envelope_payment
from tests.test_training import TINY
from runs.run import run

TIGHT = SinkhornSettings(tol=1e-5, max_iter=50000)


def _random_menu(agents: int, items: int, demand: str, seed: int = 0, k: int = 1) -> LotteryAMA:
    """A lottery AMA with random boosts, weights and temperature (as training could leave them), in float64."""
    torch.manual_seed(seed)
    mechanism = LotteryAMA(agents, items, demand, k, TIGHT, options=16, temperature=0.05).double()
    with torch.no_grad():
        mechanism.boosts.normal_(0, 0.2)
        mechanism.log_weights.normal_(0, 0.3)
    return mechanism


@pytest.mark.parametrize("demand", ["unit", "exactly_k", "additive"])
def test_the_payment_is_the_envelope_integral(demand: str) -> None:
    mechanism = _random_menu(2, 3, demand)
    bids = torch.rand(6, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, payment = mechanism(bids)
    expected = envelope_payment(mechanism, bids, nodes=64)
    assert torch.allclose(payment, expected, atol=1e-6), (payment - expected).abs().max()
    assert (payment > 1e-3).any()  # not trivially zero


def test_the_audit_finds_no_regret() -> None:
    mechanism = _random_menu(2, 2, "unit", seed=2).float()
    values = torch.rand(4, 2, 2, generator=torch.Generator().manual_seed(2))
    report = audit(mechanism, values, AuditSettings(points=15, refine_rounds=4))
    assert report.regret_mean_over_agents_max < 1e-5, report.regret_mean_over_agents_max


def test_the_deterministic_menu_at_a_low_temperature_is_vcg() -> None:
    # unit demand, 2 bidders, 2 items: the 7 deterministic allocations (each item to bidder 0, 1 or nobody, each
    # bidder at most one item) as options, each the plan of costs -5 where it allocates and +5 elsewhere
    owners = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if a == -1 or a != b]
    mechanism = LotteryAMA(2, 2, "unit", 1, TIGHT, options=len(owners), temperature=1e-4).double()
    with torch.no_grad():
        mechanism.option_costs.fill_(5.0)
        for k, pair in enumerate(owners):
            for item, owner in enumerate(pair):
                if owner >= 0:
                    mechanism.option_costs[k, owner, item] = -5.0
    bids = torch.rand(64, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        allocation, payment = mechanism(bids)
    hard_allocation, hard_payment = VCG(2, 2, "unit")(bids)
    # away from ties the softmax picks VCG's allocation (the welfare without a bidder is within T log 7 of the max)
    clear = _margin(bids) > 0.01
    assert clear.sum() >= 32
    assert torch.allclose(allocation[clear], hard_allocation[clear].double(), atol=1e-3)
    assert torch.allclose(payment[clear], hard_payment[clear].double(), atol=1e-3)


@pytest.mark.parametrize("demand, k", [("unit", 1), ("exactly_k", 1), ("exactly_k", 2), ("k_demand", 2),
                                       ("additive", 1)])
def test_allocations_are_feasible_and_payments_individually_rational(demand: str, k: int) -> None:
    mechanism = _random_menu(2, 4, demand, seed=4, k=k)
    bids = torch.rand(128, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        allocation, payment = mechanism(bids)
    assert mechanism.demand.violation(allocation).max() < 1.5 * TIGHT.tol * k  # the rows' relative tolerance
    value = (bids * allocation).sum(-1)
    assert (payment >= -1e-9).all() and (payment <= value + 1e-9).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"options": 0}, "options must be a positive integer"),
    ({"temperature": 0.0}, "temperature must be a positive number"),
    ({"temperature": float("nan")}, "temperature must be a positive number"),
    ({"cost_scale": -1.0}, "cost_scale must be a positive number"),
    ({"sinkhorn": {"tol": 1e-3}}, "sinkhorn must be a SinkhornSettings"),
])
def test_bad_arguments_are_refused_in_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LotteryAMA(2, 3, **kwargs)


def test_bids_of_another_dtype_are_refused() -> None:
    with pytest.raises(ValueError, match="cast one of them"):
        LotteryAMA(1, 2)(torch.rand(2, 1, 2, dtype=torch.float64))


def test_it_trains_through_its_config_node_and_reloads(tmp_path: Path) -> None:
    overrides = [o for o in TINY if not o.startswith("mechanism.")]
    cfg = make_config(*overrides, "mechanism=lottery_ama", "mechanism.options=8", output_dir=tmp_path)
    run(cfg)
    trained = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt").mechanism
    assert isinstance(trained, LotteryAMA)
    assert trained.boosts.abs().max() > 0  # trained (the checkpoint holds the learned menu)
    allocation, payment = trained(torch.rand(16, 1, 2))
    assert torch.isfinite(allocation).all() and (payment >= -1e-6).all()


def test_one_exp_softmax_and_logsumexp_match_torchs_with_gradients() -> None:
    """The floored single-exp softmax/logsumexp against torch's, on spreads where most terms underflow."""
    from mechanisms.lottery_ama import _exp_terms

    z = (300 * torch.randn(64, 128, dtype=torch.float64)).requires_grad_(True)
    weights = torch.randn(64, 128, dtype=torch.float64)
    terms, total, lse = _exp_terms(z, 1)
    soft = terms / total
    torch.testing.assert_close(soft, torch.softmax(z, 1), atol=1e-30, rtol=1e-14)
    torch.testing.assert_close(lse, torch.logsumexp(z, 1), atol=0, rtol=1e-15)
    (got,) = torch.autograd.grad((soft * weights).sum() + lse.sum(), z)
    (want,) = torch.autograd.grad((torch.softmax(z, 1) * weights).sum() + torch.logsumexp(z, 1).sum(), z)
    torch.testing.assert_close(got, want, atol=1e-30, rtol=1e-12)
