"""The fixed-schedule Sinkhorn solver and the sync-free training step against the tolerance path."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from typing import Callable

import pytest
import torch
from torch import nn

from mechanisms.demand import Demand
from mechanisms.lottery_ama import LotteryAMA
from adversary.deviation import trusted_forward
from adversary.search import MisreportSearch, ascend, find_misreports
from mechanisms.networks import MLP
from mechanisms.potential_auction import PotentialSinkhornMechanism
from mechanisms.prepared import PreparedCall
from mechanisms.sinkhorn import SinkhornSettings, calibrate, fixed_plan, geometric_epsilons, row_error, solve
from mechanisms.sinkhorn_auction import SinkhornMechanism
from training.fast_step import FastStep, FastStepSettings
from lagrangian.loss import lagrangian_loss

EPSILONS = geometric_epsilons(1.0, 0.05, 10)
SETTINGS = [("unit", 2, 3), ("exactly_k", 2, 3), ("unit", 2, 15), ("additive", 1, 2), ("k_demand", 2, 4)]


def _demand(name: str) -> Demand:
    return Demand(name, 2) if name == "k_demand" else Demand(name)


@pytest.mark.parametrize("name,agents,items", SETTINGS)
def test_calibrated_schedule_meets_tol_and_matches_tolerance_solver(name, agents, items) -> None:
    a, b = _demand(name).marginals(agents, items)
    a, b = a.double(), b.double()
    cost = torch.randn(64, agents + 1, items + 1, dtype=torch.float64)
    calibration = calibrate(cost, a, b, epsilons=EPSILONS, tol=1e-3, max_iter=1000, margin=0.0, backend="torch")
    # margin 0: exactly the tolerance solver's iterations, so the same iterates and the same plan
    assert calibration.iterations == calibration.tolerance_iterations
    reference = solve(cost, a, b, epsilons=EPSILONS, tol=1e-3, max_iter=1000)
    plan = fixed_plan(cost, a, b, epsilons=EPSILONS, iterations=calibration.iterations, backend="torch")
    torch.testing.assert_close(plan, reference.plan, atol=1e-9, rtol=1e-9)
    assert calibration.marginal_error <= 1e-3
    torch.testing.assert_close(plan.sum(1), b.expand(64, -1), atol=1e-12, rtol=0)  # columns exact
    with_margin = calibrate(cost, a, b, epsilons=EPSILONS, tol=1e-3, max_iter=1000, margin=0.5, backend="torch")
    assert all(k >= r for k, r in zip(with_margin.iterations, with_margin.tolerance_iterations))
    assert with_margin.marginal_error <= calibration.marginal_error


def test_fixed_schedule_converges_to_the_lp_optimum_of_a_planted_permutation() -> None:
    """A cost whose optimal assignment is a given permutation: the plan concentrates on it."""
    permutation = torch.tensor([2, 0, 3, 1])
    cost = torch.ones(1, 4, 4, dtype=torch.float64)
    cost[0, torch.arange(4), permutation] = 0.0
    ones = torch.ones(4, dtype=torch.float64)
    epsilons = geometric_epsilons(1.0, 0.01, 10)
    calibration = calibrate(cost, ones, ones, epsilons=epsilons, tol=1e-6, max_iter=2000, backend="torch")
    plan = fixed_plan(cost, ones, ones, epsilons=epsilons, iterations=calibration.iterations, backend="torch")
    assert plan[0].argmax(1).tolist() == permutation.tolist()
    assert float(plan[0, torch.arange(4), permutation].min()) > 0.99


def test_calibration_reports_the_fixed_schedules_true_error() -> None:
    a, b = Demand("unit").marginals(2, 3)
    a, b = a.double(), b.double()
    cost = torch.randn(32, 3, 4, dtype=torch.float64)
    calibration = calibrate(cost, a, b, epsilons=EPSILONS, tol=1e-4, max_iter=5000, backend="torch")
    plan = fixed_plan(cost, a, b, epsilons=EPSILONS, iterations=calibration.iterations, backend="torch")
    assert row_error(plan, a) == pytest.approx(calibration.marginal_error)
    assert calibration.marginal_error <= 1e-4
    capped = calibrate(cost, a, b, epsilons=EPSILONS, tol=1e-4, max_iter=2, backend="torch")
    assert max(capped.iterations) == 2 and capped.marginal_error > 1e-4  # reported, not hidden


@pytest.mark.parametrize("name,agents,items", SETTINGS[:3])
def test_fixed_mechanism_matches_tolerance_mechanism_with_gradients(name, agents, items) -> None:
    torch.manual_seed(1)
    mechanism = SinkhornMechanism(agents, items, _demand(name), sinkhorn=SinkhornSettings(tol=1e-6, max_iter=5000)).double()
    bids = torch.rand(16, agents, items, dtype=torch.float64)

    def outcome_and_grads():
        mechanism.zero_grad()
        allocation, payment = mechanism(bids)
        (allocation.square().sum() + payment.sum()).backward()
        return allocation.detach(), payment.detach(), [p.grad.clone() for p in mechanism.parameters()]

    tolerance = outcome_and_grads()
    mechanism.settings = mechanism.settings.replace(backend="torch").with_fixed_iterations(
        mechanism.calibrate(bids, margin=0.0).iterations
    )
    fixed = outcome_and_grads()
    assert mechanism.last_iterations == sum(mechanism.settings.fixed_iterations)
    torch.testing.assert_close(fixed[0], tolerance[0], atol=1e-8, rtol=1e-7)
    torch.testing.assert_close(fixed[1], tolerance[1], atol=1e-8, rtol=1e-7)
    for got, want in zip(fixed[2], tolerance[2]):
        torch.testing.assert_close(got, want, atol=1e-7, rtol=1e-6)


def test_written_out_adam_equals_torch_adam() -> None:
    """ascend()'s optimizer against torch.optim.Adam(maximize=True) on a toy whose utility rises along the path."""
    truth = torch.rand(5, 2, 3, dtype=torch.float64)

    def forward(bids):  # allocation = bids, payment = -(b - b^2 / 4): utility v*b + b - b^2/4 increases on [0, 1]
        return bids, -(bids - bids**2 / 4).sum(-1)

    search = MisreportSearch(steps=7, lr=0.05)
    start = truth.transpose(0, 1).unsqueeze(0) * 0.5
    low, high = torch.zeros(1, 2, 1, 3, dtype=torch.float64), torch.ones(1, 2, 1, 3, dtype=torch.float64)
    ours = [start.clone()]
    reference = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([reference], lr=0.05, maximize=True)
    call = PreparedCall(forward, truth)
    for _ in range(7):
        optimizer.zero_grad()
        call.utilities(reference).sum().backward()
        optimizer.step()
        with torch.no_grad():
            reference.clamp_(0, 1)
    best = ascend(call, start, search, low, high)
    # utility increases along the path, so the best iterate is the last one
    torch.testing.assert_close(best, reference.detach()[0], atol=1e-12, rtol=0)
    assert ours  # the start was not modified in place
    torch.testing.assert_close(ours[0], truth.transpose(0, 1).unsqueeze(0) * 0.5)


def _sinkhorn_auction() -> SinkhornMechanism:
    return SinkhornMechanism(
        2, 2, "unit", sinkhorn=SinkhornSettings(tol=1e-7, max_iter=5000), allocation_net=MLP((16, 16)), payment_net=MLP((16, 16))
    )


def _loss_sequence(fast: bool, steps: int = 4, device: str = "cpu", release_grads: bool = False,
                   make: Callable[[], nn.Module] = _sinkhorn_auction) -> list[float]:
    """Losses of ``steps`` training steps of ``make()``, eager or fast; ``release_grads``: ``.grad`` set to None
    before every step, as Lightning's ``on_validation_model_zero_grad`` does before a validation during training."""
    torch.manual_seed(3)
    mechanism = make().double().to(device)
    optimizer = torch.optim.Adam(mechanism.parameters(), lr=1e-2)
    kind = dict(dtype=torch.float64, device=device)
    multipliers, rho = torch.full((2,), 5.0, **kind), torch.tensor(1.0, **kind)
    low, high = torch.zeros(2, 1, **kind), torch.ones(2, 1, **kind)
    search = MisreportSearch(steps=5, lr=0.1)
    generator = torch.Generator().manual_seed(0)
    batches = [torch.rand(32, 2, 2, generator=generator, dtype=torch.float64).to(device) for _ in range(steps)]
    step = FastStep(
        mechanism,
        search,
        lambda revenue, regrets: lagrangian_loss(revenue, regrets, multipliers, rho),
        low,
        high,
        FastStepSettings(enabled=True, recalibrate_every=2, margin=0.5, backend="torch"),
    )
    losses = []
    for batch in batches:
        if release_grads:
            mechanism.zero_grad(set_to_none=True)
        if fast:
            loss = step(batch).loss
        else:
            from adversary.regret import regret

            misreports = find_misreports(mechanism, batch, search)
            terms = regret(mechanism, batch, misreports)
            loss = lagrangian_loss(terms.payment.sum(-1), terms.regret, multipliers, rho)
            optimizer.zero_grad()
            loss.backward()
        optimizer.step()
        rho += 1
        losses.append(float(loss.detach()))
    return losses


def _lottery_ama() -> LotteryAMA:
    return LotteryAMA(2, 2, "unit", sinkhorn=SinkhornSettings(tol=1e-7, max_iter=5000), options=8, temperature=0.05)


def _potential() -> PotentialSinkhornMechanism:
    settings = SinkhornSettings(eps_final=0.1, tol=1e-7, max_iter=5000)
    return PotentialSinkhornMechanism(2, 2, "unit", sinkhorn=settings, allocation_net=MLP((16, 16)), scale=2.0)


@pytest.mark.parametrize(
    "make", [_sinkhorn_auction, _lottery_ama, _potential], ids=["sinkhorn", "lottery_ama", "potential"]
)
def test_fast_step_trains_to_the_same_losses_as_the_eager_step(make: Callable[[], nn.Module]) -> None:
    eager, fast = _loss_sequence(False, make=make), _loss_sequence(True, make=make)
    assert eager[0] != eager[-1]  # training moved
    assert fast == pytest.approx(eager, rel=1e-6, abs=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_step_keeps_training_after_the_gradients_are_released() -> None:
    # Lightning sets every .grad to None before each validation during training: the replayed graph must
    # still write the gradients the optimizer reads (it once went on writing into detached tensors).
    eager = _loss_sequence(False, steps=6, device="cuda", release_grads=True)
    graph = _loss_sequence(True, steps=6, device="cuda", release_grads=True)
    assert eager[0] != eager[-1]
    assert graph == pytest.approx(eager, rel=1e-6, abs=1e-9)


def test_reattach_grads_restores_the_captured_gradient_tensors() -> None:
    from training.fast_step import reattach_grads

    net = torch.nn.Linear(3, 2)
    net(torch.ones(4, 3)).sum().backward()
    captured = [(p, p.grad) for p in net.parameters()]
    assert reattach_grads(captured) == 0
    net.zero_grad(set_to_none=True)  # what Lightning does before a validation
    assert all(p.grad is None for p in net.parameters())
    assert reattach_grads(captured) == 2
    assert all(p.grad is g for p, g in captured)
    torch.testing.assert_close(net.bias.grad, torch.full((2,), 4.0))


def test_fast_step_leaves_the_mechanism_on_its_tolerance_rule() -> None:
    mechanism = SinkhornMechanism(1, 2)
    low, high = torch.zeros(1, 1), torch.ones(1, 1)
    step = FastStep(
        mechanism,
        MisreportSearch(steps=2),
        lambda revenue, regrets: -revenue.mean(),
        low,
        high,
        FastStepSettings(enabled=True, backend="torch"),
    )
    out = step(torch.rand(8, 1, 2))
    assert out.misreports.shape == (8, 1, 2) and out.regrets.shape == (8, 1)
    assert mechanism.settings.fixed_iterations is None and step.last_calibration is not None
    assert all(p.grad is not None for p in mechanism.parameters())
    with pytest.raises(ValueError, match="restarts=0"):
        FastStep(mechanism, MisreportSearch(restarts=1), lambda r, g: r.mean(), low, high, FastStepSettings())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(enabled="yes"), "fast.enabled"),
        (dict(recalibrate_every=0), "recalibrate_every"),
        (dict(margin=-1), "margin"),
        (dict(backend="cuda"), "backend"),
    ],
)
def test_fast_step_settings_reject_bad_values(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        FastStepSettings(**kwargs)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs Triton (its CPU interpreter)")
def test_triton_kernel_matches_torch_backend_in_the_interpreter() -> None:
    """The fused kernel, run by Triton's CPU interpreter, against the torch backend."""
    script = textwrap.dedent(
        """
        import torch
        from mechanisms.demand import Demand
        from mechanisms.sinkhorn import geometric_epsilons
        from mechanisms.sinkhorn import fixed_plan
        eps = geometric_epsilons(1.0, 0.05, 10)
        torch.manual_seed(0)
        for name, k, n, m in [("unit", 1, 2, 3), ("exactly_k", 1, 2, 3), ("unit", 1, 2, 15), ("k_demand", 2, 2, 5)]:
            a, b = Demand(name, k).marginals(n, m)
            cost = 3 * torch.randn(37, n + 1, m + 1)
            counts = [7, 3, 4, 5, 6, 7, 8, 9, 10, 12]
            want = fixed_plan(cost, a, b, epsilons=eps, iterations=counts, backend="torch")
            got = fixed_plan(cost, a, b, epsilons=eps, iterations=counts, backend="triton")
            assert torch.isfinite(got).all(), name
            err = (got - want).abs().max().item()
            assert err < 1e-4, (name, err)
        print("ok")
        """
    )
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_trusted_forward_skips_checks() -> None:
    mechanism = SinkhornMechanism(1, 2)
    assert trusted_forward(mechanism) == mechanism.allocate_and_pay


def test_fast_step_warm_start_matches_find_misreports_init() -> None:
    """The fast step's warm start (persistent misreports) searches like find_misreports(init=...)."""
    torch.manual_seed(2)
    mechanism = SinkhornMechanism(2, 2, sinkhorn=SinkhornSettings(tol=1e-7, max_iter=5000), allocation_net=MLP((8,)), payment_net=MLP((8,))).double()
    batch = torch.rand(16, 2, 2, dtype=torch.float64)
    init = torch.rand(16, 2, 2, dtype=torch.float64)
    low, high = torch.zeros(2, 1, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64)
    search = MisreportSearch(steps=4, lr=0.1)
    settings = FastStepSettings(enabled=True, margin=0.5, backend="torch")
    fast = FastStep(mechanism, search, lambda revenue, regrets: regrets.sum(), low, high, settings)(batch, init)
    expected = find_misreports(mechanism, batch, search, init=init)
    torch.testing.assert_close(fast.misreports, expected, atol=1e-6, rtol=1e-6)


def test_fixed_schedule_lives_in_the_settings_and_a_new_rule_drops_it() -> None:
    settings = SinkhornSettings(eps_steps=3).with_fixed_iterations((4, 5, 6))
    assert settings.fixed_iterations == (4, 5, 6)
    assert settings.replace(backend="torch").fixed_iterations == (4, 5, 6)  # same rule: the calibration holds
    assert settings.replace(eps_final=0.1).fixed_iterations is None  # calibrated on another schedule
    assert settings.replace(tol=1e-3).fixed_iterations is None
    assert settings.with_fixed_iterations(None).fixed_iterations is None
    with pytest.raises(ValueError, match="one count per epsilon"):
        SinkhornSettings(eps_steps=3).with_fixed_iterations((4, 5))
    with pytest.raises(ValueError, match="backend must be auto, torch or triton"):
        SinkhornSettings(backend="cuda")


def test_auto_selects_the_fast_step_only_on_cuda_for_a_search_from_the_truth() -> None:
    from adversary.search import MisreportSearch
    from training.fast_step import FastStepSettings

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    auto, on = FastStepSettings(enabled="auto"), FastStepSettings(enabled=True)
    assert auto.active(cuda, MisreportSearch()) and not auto.active(cpu, MisreportSearch())
    assert not auto.active(cuda, MisreportSearch(restarts=1)) and not auto.active(cuda, MisreportSearch(shading=[0.9]))
    assert on.active(cpu, MisreportSearch(shading=[0.9]))  # asked for: FastStep itself then refuses the search
