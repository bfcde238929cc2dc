"""The learned mechanisms (Sinkhorn auction, RegretNet) and Demand.violation.

Feasibility is checked against the demand definitions written out here, and the
Sinkhorn allocation at small epsilon against the exact allocation LP (scipy).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from mechanisms.demand import Demand
from mechanisms.networks import MLP
from mechanisms.regretnet import RegretNet
from mechanisms.sinkhorn import SinkhornSettings
from mechanisms.sinkhorn_auction import SinkhornMechanism

# (demand, k, agents, items, capacity of each agent, capacities must be met exactly)
SINKHORN_SETTINGS = [
    ("unit", 1, 2, 3, [1, 1], False),
    ("unit", 1, 3, 2, [1, 1, 1], False),
    ("additive", 1, 2, 3, [3, 3], False),
    ("k_demand", 2, 3, 4, [2, 2, 2], False),
    ("k_demand", (1, 2), 2, 4, [1, 2], False),
    ("exactly_k", 1, 2, 3, [1, 1], True),
    ("exactly_k", (1, 2), 2, 3, [1, 2], True),  # every item must be sold
    ("exactly_k", 1, 1, 2, [1], True),
]
REGRETNET_SETTINGS = [
    ("unit", 1, 2, 3, [1, 1], False),
    ("unit", 1, 3, 2, [1, 1, 1], False),
    ("additive", 1, 2, 3, [3, 3], False),
    ("k_demand", 1, 2, 2, [1, 1], False),
    ("k_demand", 3, 2, 3, [3, 3], False),
    ("exactly_k", 1, 1, 3, [1], True),
]


def bid_profiles(n: int, m: int) -> dict[str, torch.Tensor]:
    """Random and extreme bids, each ``(batch, n, m)``."""
    return {
        "random": torch.rand(32, n, m),
        "zeros": torch.zeros(2, n, m),
        "ones": torch.ones(2, n, m),
        "ties": torch.full((2, n, m), 0.5),
        "corners": torch.randint(0, 2, (16, n, m)).float(),
    }


def max_infeasibility(x: torch.Tensor, capacities: list[int], exact: bool) -> torch.Tensor:
    """Largest violation ``(batch,)`` of ``0 <= x <= 1``, item totals <= 1, agent totals <= (or ==) capacity."""
    caps = torch.tensor(capacities, dtype=x.dtype)
    agent_gap = x.sum(2) - caps
    worst = [(-x).flatten(1).max(1).values, (x - 1).flatten(1).max(1).values, (x.sum(1) - 1).max(1).values]
    worst.append((agent_gap.abs() if exact else agent_gap).max(1).values)
    return torch.stack(worst).max(0).values.clamp_min(0)


def assert_ir(bids: torch.Tensor, allocation: torch.Tensor, payment: torch.Tensor) -> None:
    value = (bids * allocation).sum(-1)
    assert bool((payment >= 0).all())
    assert bool((payment <= value + 1e-6).all())


@pytest.mark.parametrize("demand,k,n,m,caps,exact", SINKHORN_SETTINGS)
def test_sinkhorn_mechanism_is_feasible_and_ir(demand, k, n, m, caps, exact) -> None:
    mechanism = SinkhornMechanism(n, m, demand, k, allocation_net=MLP((32, 32)), payment_net=MLP((32, 32)))
    for name, bids in bid_profiles(n, m).items():
        with torch.no_grad():
            allocation, payment = mechanism(bids)
        assert allocation.shape == (len(bids), n, m) and payment.shape == (len(bids), n)
        assert 0 <= mechanism.last_marginal_error < mechanism.settings.tol, name
        assert mechanism.last_iterations > 0
        # Item totals are exact; agent totals are within the relative tolerance of their capacity.
        caps_t = torch.tensor(caps, dtype=allocation.dtype)
        assert float((allocation.sum(1) - 1).max()) <= 1e-5, name
        assert float(allocation.min()) >= 0, name
        agent_gap = (allocation.sum(2) - caps_t) / caps_t
        assert float((agent_gap.abs() if exact else agent_gap).max()) <= mechanism.settings.tol, name
        torch.testing.assert_close(
            mechanism.demand.violation(allocation), max_infeasibility(allocation, caps, exact), atol=1e-6, rtol=0
        )
        assert_ir(bids, allocation, payment)


@pytest.mark.parametrize("demand,k,n,m,caps,exact", REGRETNET_SETTINGS)
def test_regretnet_is_exactly_feasible_and_ir(demand, k, n, m, caps, exact) -> None:
    mechanism = RegretNet(n, m, demand, k, allocation_net=MLP((32, 32)), payment_net=MLP((32, 32)))
    for name, bids in bid_profiles(n, m).items():
        with torch.no_grad():
            allocation, payment = mechanism(bids)
        assert allocation.shape == (len(bids), n, m) and payment.shape == (len(bids), n)
        assert float(max_infeasibility(allocation, caps, exact).max()) <= 1e-6, name
        assert float(mechanism.demand.violation(allocation).max()) <= 1e-6, name
        assert_ir(bids, allocation, payment)


@pytest.mark.parametrize(
    "demand,k,n,m,reason",
    [
        ("exactly_k", 1, 2, 3, "exactly_k demand with 2 agents"),
        ("exactly_k", 2, 1, 3, "exactly_k demand with 1 agents and k=2"),
        ("k_demand", 2, 2, 3, "k_demand with k=2"),
        ("k_demand", (1, 2), 2, 3, r"k_demand with k=\(1, 2\)"),
    ],
)
def test_regretnet_refuses_what_softmax_cannot_represent(demand, k, n, m, reason) -> None:
    with pytest.raises(ValueError, match=rf"{reason}.*section 4\.4.*use SinkhornMechanism"):
        RegretNet(n, m, demand, k)


def allocation_lp(scores: np.ndarray, capacities: list[int], exact: bool) -> float:
    """Exact ``min <scores, x>`` over feasible allocations ``x`` (n, m), by linear programming."""
    n, m = scores.shape
    agent_rows = np.kron(np.eye(n), np.ones((1, m)))  # agent totals
    item_rows = np.kron(np.ones((1, n)), np.eye(m))  # item totals
    equality = dict(A_eq=agent_rows, b_eq=capacities) if exact else {}
    upper = np.vstack([item_rows] if exact else [item_rows, agent_rows])
    upper_b = np.ones(m) if exact else np.concatenate([np.ones(m), capacities])
    result = linprog(scores.ravel(), A_ub=upper, b_ub=upper_b, bounds=(0, 1), **equality)
    assert result.status == 0
    return float(result.fun)


@pytest.mark.parametrize("demand,k,n,m,caps,exact", [SINKHORN_SETTINGS[i] for i in (0, 3, 6)])
def test_small_epsilon_approaches_the_exact_allocation_lp_and_large_epsilon_is_diffuse(
    demand, k, n, m, caps, exact
) -> None:
    mechanism = SinkhornMechanism(n, m, demand, k, allocation_net=MLP((32, 32)), payment_net=MLP((32, 32)))
    bids = torch.rand(6, n, m)
    with torch.no_grad():
        scores = mechanism.allocation_net(bids.flatten(1)).view(-1, n, m)
        mechanism.set_sinkhorn(eps_init=1.0, eps_final=1e-3, eps_steps=25, tol=1e-4, max_iter=20000)
        sharp, _ = mechanism(bids)
        mechanism.set_sinkhorn(eps_final=1.0, eps_steps=1)
        diffuse, _ = mechanism(bids)
    for b in range(len(bids)):
        optimum = allocation_lp(scores[b].double().numpy(), caps, exact)
        assert float((sharp[b] * scores[b]).sum()) == pytest.approx(optimum, abs=0.01)
    # Sharpness: distance of the entries from {0, 1}.
    assert float((sharp * (1 - sharp)).mean()) < 0.02
    assert float((diffuse * (1 - diffuse)).mean()) > 3 * float((sharp * (1 - sharp)).mean())


def test_set_sinkhorn_keeps_unset_values_and_validates() -> None:
    mechanism = SinkhornMechanism(2, 2)
    settings = mechanism.settings
    assert settings.epsilons[0] == pytest.approx(1.0) and settings.epsilons[-1] == pytest.approx(0.05)
    assert len(settings.epsilons) == 10 and settings.tol == 1e-2
    mechanism.set_sinkhorn(eps_final=0.01, tol=1e-3)
    settings = mechanism.settings
    assert len(settings.epsilons) == 10 and settings.epsilons[0] == pytest.approx(1.0)
    assert settings.epsilons[-1] == pytest.approx(0.01) and settings.tol == 1e-3 and settings.max_iter == 1000
    for bad in (dict(tol=0.0), dict(eps_final=-1.0), dict(eps_steps=0), dict(max_iter=0)):
        with pytest.raises(ValueError):
            mechanism.set_sinkhorn(**bad)
    with pytest.raises(ValueError, match="grad"):
        SinkhornMechanism(2, 2, sinkhorn=SinkhornSettings(grad="exact"))


def test_architecture_does_not_depend_on_the_demand() -> None:
    """Only the marginals change: a unit-demand network's weights load into an exactly-1 one."""
    unit = SinkhornMechanism(2, 3, "unit", allocation_net=MLP((16,)), payment_net=MLP((16,)))
    exact = SinkhornMechanism(2, 3, "exactly_k", 1, allocation_net=MLP((16,)), payment_net=MLP((16,)))
    exact.load_state_dict(unit.state_dict())
    bids = torch.rand(8, 2, 3)
    with torch.no_grad():
        allocation, _ = exact(bids)
        unit_allocation, _ = unit(bids)
    torch.testing.assert_close(allocation.sum(2), torch.ones(8, 2), atol=exact.settings.tol, rtol=0)
    assert float((unit_allocation - allocation).abs().max()) > 1e-3  # same weights, different marginals


def test_to_dtype_moves_the_marginals_and_mismatched_bids_are_refused() -> None:
    mechanism = SinkhornMechanism(2, 3).double()
    assert mechanism.row_marginals.dtype == torch.float64
    allocation, payment = mechanism(torch.rand(4, 2, 3, dtype=torch.float64))
    assert allocation.dtype == payment.dtype == torch.float64
    with pytest.raises(ValueError, match="mechanism is torch.float64"):
        mechanism(torch.rand(4, 2, 3))
    with pytest.raises(ValueError, match=r"shape \(batch, 2, 3\)"):
        mechanism(torch.rand(4, 3, 2, dtype=torch.float64))


@pytest.mark.parametrize("make", [lambda: SinkhornMechanism(2, 3, allocation_net=MLP((16,)), payment_net=MLP((16,))), lambda: RegretNet(2, 3, allocation_net=MLP((16,)), payment_net=MLP((16,)))])
def test_both_networks_receive_gradients(make) -> None:
    mechanism = make()
    _, payment = mechanism(torch.rand(16, 2, 3))
    payment.sum().backward()
    for name, parameter in mechanism.named_parameters():
        assert parameter.grad is not None and bool(torch.isfinite(parameter.grad).all()), name
    assert float(mechanism.allocation_net[0].weight.grad.abs().sum()) > 0
    assert float(mechanism.payment_net.net[0].weight.grad.abs().sum()) > 0


def test_implicit_and_unrolled_sinkhorn_gradients_agree() -> None:
    """Two independent backward passes through the Sinkhorn layer give the same parameter gradient."""
    grads = []
    for grad in ("implicit", "unroll"):
        torch.manual_seed(1)
        mechanism = SinkhornMechanism(
            2, 3, "exactly_k", 1, sinkhorn=SinkhornSettings(tol=1e-7, max_iter=5000, grad=grad), allocation_net=MLP((16,)), payment_net=MLP((16,))
        ).double()
        bids = torch.rand(8, 2, 3, dtype=torch.float64)
        allocation, payment = mechanism(bids)
        (payment.sum() + (allocation * bids).sum()).backward()
        grads.append(mechanism.allocation_net[0].weight.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


# --- Demand.violation, against hand-computed values --------------------------------------------


@pytest.mark.parametrize(
    "demand,allocation,expected",
    [
        (Demand("unit"), [[0.5, 0.5], [0.5, 0.5]], 0.0),
        (Demand("unit"), [[0.6, 0.6], [0.5, 0.0]], 0.2),  # agent 0 gets 1.2 items
        (Demand("unit"), [[0.7, 0.0], [0.45, 0.0]], 0.15),  # item 0 sold 1.15 times
        (Demand("additive"), [[1.4, 0.0], [0.0, 0.0]], 0.4),  # entry above 1 (and item 0 oversold)
        (Demand("additive"), [[-0.3, 1.0], [0.0, 0.0]], 0.3),  # negative entry
        (Demand("exactly_k", 1), [[0.7, 0.0], [0.0, 1.0]], 0.3),  # agent 0 is 0.3 short
        (Demand("unit"), [[0.7, 0.0], [0.0, 1.0]], 0.0),  # same allocation, free disposal
        (Demand("k_demand", (1, 2)), [[0.5, 0.6], [0.5, 0.4]], 0.1),  # agent 0 above its k=1
    ],
)
def test_violation_matches_hand_computed_values(demand: Demand, allocation, expected: float) -> None:
    x = torch.tensor([allocation])
    assert demand.violation(x).shape == (1,)
    assert float(demand.violation(x)[0]) == pytest.approx(expected, abs=1e-6)


def test_violation_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="NaN"):
        Demand("unit").violation(torch.tensor([[[float("nan")]]]))
    with pytest.raises(ValueError, match=r"\(batch, agents, items\)"):
        Demand("unit").violation(torch.rand(2, 2))
    with pytest.raises(ValueError, match="k has 2 entries"):
        Demand("k_demand", (1, 2)).violation(torch.rand(1, 3, 2))
