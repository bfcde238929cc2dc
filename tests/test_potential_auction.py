"""The Sinkhorn auction with payments from the layer's objective (mechanisms/potential_auction.py).

Checked against independent truth: at the start (residual network zero) the payment equals the envelope
theorem's ``b_i . x_i - int_0^1 b_i . x_i(t b_i, b_-i) dt`` computed by quadrature from the allocations alone;
the exhaustive audit finds no regret; a sharp layer gives the hard VCG-with-reserve auction's payments
(:class:`baselines.VCGReserve`, an enumeration); payments stay in ``[0, b_i . x_i]`` for any network.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from adversary.audit import AuditSettings, audit
from baselines.vcg_reserve import VCGReserve
from mechanisms.potential_auction import PotentialSinkhornMechanism
from mechanisms.sinkhorn import SinkhornSettings
from mechanisms.sinkhorn_auction import SinkhornMechanism
from runs.checkpoints import load_checkpoint
from tests.test_config import make_config
from tests.test_training import TINY
from runs.run import run

TIGHT = SinkhornSettings(tol=1e-6, max_iter=50000)


def _mechanism(agents: int, items: int, demand: str = "unit", scale: float = 2.0, reserve: float = 0.5,
               sinkhorn: SinkhornSettings = TIGHT) -> PotentialSinkhornMechanism:
    return PotentialSinkhornMechanism(agents, items, demand, 1, sinkhorn, scale=scale, reserve=reserve).double()


def envelope_payment(mechanism: nn.Module, bids: Tensor, nodes: int = 64) -> Tensor:
    """``b_i . x_i(b) - int_0^1 b_i . x_i(t b_i, b_-i) dt`` ``(batch, agents)`` by Gauss-Legendre quadrature."""
    points, weights = np.polynomial.legendre.leggauss(nodes)
    t = torch.tensor((points + 1) / 2, dtype=bids.dtype)
    w = torch.tensor(weights / 2, dtype=bids.dtype)
    with torch.no_grad():
        allocation, _ = mechanism(bids)
        payments = []
        for i in range(bids.shape[1]):
            scaled = bids.unsqueeze(0).repeat(nodes, 1, 1, 1)  # (nodes, batch, agents, items)
            scaled[:, :, i] *= t.view(-1, 1, 1)
            along = mechanism(scaled.flatten(0, 1))[0].view(nodes, *bids.shape)[:, :, i]  # x_i(t b_i, b_-i)
            integral = (w.view(-1, 1) * (along * bids[:, i]).sum(-1)).sum(0)
            payments.append((bids[:, i] * allocation[:, i]).sum(-1) - integral)
    return torch.stack(payments, 1)


@pytest.mark.parametrize("demand", ["unit", "exactly_k", "additive"])
def test_at_the_start_the_payment_is_the_envelope_integral(demand: str) -> None:
    mechanism = _mechanism(2, 3, demand, scale=1.0)
    bids = torch.rand(4, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, payment = mechanism(bids)
    expected = envelope_payment(mechanism, bids, nodes=32)
    assert torch.allclose(payment, expected, atol=2e-5), (payment - expected).abs().max()
    assert (payment > 1e-3).any()  # not trivially zero


def test_at_the_start_the_audit_finds_no_regret() -> None:
    mechanism = _mechanism(2, 2, sinkhorn=SinkhornSettings(tol=1e-5, max_iter=5000)).float()
    values = torch.rand(3, 2, 2, generator=torch.Generator().manual_seed(2))
    report = audit(mechanism, values, AuditSettings(points=15, refine_rounds=4))
    assert report.regret_mean_over_agents_max < 2e-4, report.regret_mean_over_agents_max


def _margin(net: Tensor) -> Tensor:
    """Best minus second-best welfare ``(batch,)`` over the unit-demand assignments of net bids ``(batch, 2, 2)``
    (each item to bidder 0, 1 or nobody, each bidder at most one item)."""
    owners = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if a == -1 or a != b]
    welfare = torch.stack([sum(net[:, o, j] for j, o in enumerate(pair) if o >= 0) + 0 * net[:, 0, 0]
                           for pair in owners], -1)
    top = welfare.topk(2, -1).values
    return top[:, 0] - top[:, 1]


def test_a_sharp_layer_gives_the_vcg_with_reserve_payments() -> None:
    mechanism = _mechanism(2, 2, scale=20.0, reserve=0.4, sinkhorn=SinkhornSettings(tol=1e-5, max_iter=50000))
    bids = torch.rand(48, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        allocation, payment = mechanism(bids)
    hard_allocation, hard_payment = VCGReserve(2, 2, [0.4], "unit")(bids.float())
    # away from ties (the entropic layer splits those: here and with either bidder's bids zeroed), the soft
    # auction is the hard one
    profiles = [bids] + [bids * torch.tensor([[0.0], [1.0]] if i == 0 else [[1.0], [0.0]], dtype=bids.dtype)
                         for i in range(2)]
    clear = torch.stack([_margin(b - 0.4) for b in profiles]).amin(0) > 0.05
    assert clear.sum() >= 12
    assert torch.allclose(allocation[clear].float(), hard_allocation[clear], atol=0.02)
    assert torch.allclose(payment[clear].float(), hard_payment[clear], atol=0.02)


def test_payments_stay_between_zero_and_the_reported_value_for_any_network() -> None:
    mechanism = _mechanism(2, 3, sinkhorn=SinkhornSettings())
    last = [m for m in mechanism.allocation_net.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.normal_(0, 3.0)
        last.bias.normal_(0, 3.0)
    bids = torch.rand(256, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        allocation, payment = mechanism(bids)
    value = (bids * allocation).sum(-1)
    assert (payment >= 0).all() and (payment <= value + 1e-12).all()


def test_the_start_ignores_the_network_initialization_and_learns_scale_and_reserve() -> None:
    a, b = _mechanism(2, 3), (torch.manual_seed(7), _mechanism(2, 3))[1]
    bids = torch.rand(8, 2, 3, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(a(bids)[1], b(bids)[1], atol=1e-12)
    names = {name for name, _ in a.named_parameters()}
    assert {"log_scale", "reserve"} <= names and not any(name.startswith("payment_net") for name in names)
    assert math.isclose(a.scale.item(), 2.0, rel_tol=1e-6) and a.reserve.item() == 0.5


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": 0.0}, "scale must be a positive number"),
    ({"scale": -1.0}, "scale must be a positive number"),
    ({"scale": float("nan")}, "scale must be a positive number"),
    ({"scale": "8"}, "scale must be a positive number"),
    ({"reserve": float("inf")}, "reserve must be a finite number"),
    ({"reserve": None}, "reserve must be a finite number"),
    ({"allocation_net": lambda i, o: nn.Identity()}, "must end in an nn.Linear"),
])
def test_bad_arguments_are_refused_in_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PotentialSinkhornMechanism(2, 3, **kwargs)


def test_a_sinkhorn_mechanism_needs_a_payment_network() -> None:
    with pytest.raises(ValueError, match="payment_net is required"):
        SinkhornMechanism(1, 2, payment_net=None)


def test_it_trains_through_its_config_node_and_reloads(tmp_path: Path) -> None:
    overrides = [o for o in TINY if not o.startswith("mechanism.payment_net")]
    cfg = make_config(*overrides, "mechanism=sinkhorn_potential", "mechanism.reserve=0.4", output_dir=tmp_path)
    run(cfg)
    trained = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt").mechanism
    assert isinstance(trained, PotentialSinkhornMechanism)
    assert trained.reserve.item() != 0.4  # trained (the checkpoint holds the learned scalars)
    allocation, payment = trained(torch.rand(16, 1, 2))
    assert torch.isfinite(allocation).all() and (payment >= 0).all()
