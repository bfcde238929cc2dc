"""The Sinkhorn layer against independent truth.

Marginals are checked against the requested ``a`` and ``b``; transport costs
against the exact linear program (scipy's ``linear_sum_assignment`` on the
expanded assignment problem) and the entropic suboptimality bound; plans
against POT; gradients against finite differences (``gradcheck``) and against
each other.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import ot
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mechanisms.demand import marginals
from mechanisms.sinkhorn import GeometricEpsilonSchedule, geometric_epsilons, sinkhorn, solve
from mechanisms.sinkhorn._iterations import check_interval as _check_interval

PAPER = geometric_epsilons(1.0, 0.05, 10)
N_AGENTS, N_ITEMS = 2, 4
# (demand, k): every demand type, per-agent k, and exactly-k with a zero dummy-agent marginal.
DEMANDS = [
    ("additive", 1),
    ("unit", 1),
    ("k_demand", 2),
    ("k_demand", (1, 3)),
    ("exactly_k", 1),
    ("exactly_k", 2),  # 2 agents x 2 items = all 4 items: a_dummy = b_dummy = 0
]
DEMAND_IDS = [f"{d}-{k}" for d, k in DEMANDS]


def problem_marginals(demand: str, k, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    return marginals(demand, N_AGENTS, N_ITEMS, k, dtype=dtype)


def costs(kind: str, batch: int, dtype: torch.dtype) -> tuple[Tensor, tuple[float, ...]]:
    """A ``(batch, N_AGENTS + 1, N_ITEMS + 1)`` cost of the given kind and an epsilon schedule for it."""
    shape = (batch, N_AGENTS + 1, N_ITEMS + 1)
    if kind == "random":
        return torch.randn(shape, dtype=dtype), PAPER
    if kind == "tied":  # integer costs with many exact ties, and an all-equal problem
        cost = torch.randint(0, 2, shape).to(dtype)
        cost[0] = 3.0
        return cost, PAPER
    if kind == "offset":  # magnitude 1e4, spread O(1)
        return 1e4 + torch.randn(shape, dtype=dtype), PAPER
    if kind == "spread":  # spread 1e4: the schedule scales with the cost, as the plan only sees cost / eps
        return (1e4 / 3) * torch.randn(shape, dtype=dtype).clamp(-3, 3), tuple(1e4 * e for e in PAPER)
    if kind == "adversarial":
        # One dominant row and column, a rank-one block and exact ties across problems: nearly degenerate LPs.
        cost = torch.zeros(shape, dtype=dtype)
        cost[:, 0, :] = -30.0
        cost[:, :, 0] = 30.0
        x, y = torch.rand(batch, shape[1], 1, dtype=dtype), torch.rand(batch, 1, shape[2], dtype=dtype)
        cost[:, 1:, 1:] += 5 * (x * y)[:, 1:, 1:]
        return cost, PAPER
    raise AssertionError(kind)


def row_error(plan: Tensor, a: Tensor) -> float:
    """Max relative row-marginal error over rows with a positive marginal."""
    a = a.expand(plan.shape[0], -1)
    active = a > 0
    return float(((plan.sum(2) - a).abs()[active] / a[active]).max())


def exact_lp(cost: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """Optimal value and plan of ``min <P, C>`` s.t. ``P 1 = a, P^T 1 = b`` for integer marginals.

    Agent ``i`` is replicated ``a_i`` times and item ``j`` ``b_j`` times; the
    expanded square assignment problem has the same optimal value.
    """
    rows = np.repeat(np.arange(len(a)), np.rint(a).astype(int))
    cols = np.repeat(np.arange(len(b)), np.rint(b).astype(int))
    expanded = cost[np.ix_(rows, cols)]
    r, c = linear_sum_assignment(expanded)
    plan = np.zeros_like(cost)
    np.add.at(plan, (rows[r], cols[c]), 1.0)
    return float(expanded[r, c].sum()), plan


def entropy(plan: np.ndarray) -> float:
    """``-sum P log P`` (with ``0 log 0 = 0``)."""
    p = plan[plan > 0]
    return float(-(p * np.log(p)).sum())


# --------------------------------------------------------------------------- marginals


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", ["random", "tied", "offset", "spread", "adversarial"])
@pytest.mark.parametrize(("demand", "k"), DEMANDS, ids=DEMAND_IDS)
def test_plan_meets_marginals(demand: str, k, kind: str, dtype: torch.dtype) -> None:
    a, b = problem_marginals(demand, k, dtype)
    cost, epsilons = costs(kind, 16, dtype)
    result = solve(cost, a, b, epsilons=epsilons, tol=1e-2)
    plan = result.plan
    assert result.converged and plan.shape == cost.shape and plan.dtype == dtype
    assert bool((plan >= 0).all())
    assert row_error(plan, a) < 1e-2
    assert result.marginal_error == pytest.approx(row_error(plan, a), rel=1e-3, abs=1e-6)
    # Columns are exact up to the rounding of potentials of size |C - centre| / eps.
    column_tol = 10 * torch.finfo(dtype).eps * (1 + float(cost.amax() - cost.amin()) / 2 / epsilons[-1])
    torch.testing.assert_close(plan.sum(1), b.expand(16, -1), rtol=column_tol, atol=column_tol)
    # Zero marginals give exactly empty rows and columns.
    assert bool((plan[:, a == 0, :] == 0).all()) and bool((plan[:, :, b == 0] == 0).all())


def test_per_problem_marginals_and_batch_of_one() -> None:
    """``(batch, N)`` marginals (a zero in one problem only): each problem meets its own; a batch of one works."""
    a = torch.tensor([[1.0, 1.0, 4.0], [2.0, 2.0, 2.0], [3.0, 3.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 1.0, 1.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0, 2.0]])
    cost = torch.randn(3, 3, 5, dtype=torch.float64)
    result = solve(cost, a, b.double(), epsilons=PAPER, tol=1e-4, max_iter=100_000)
    plan = result.plan
    assert result.converged and row_error(plan, a) < 1e-4
    torch.testing.assert_close(plan.sum(1), b.double())
    assert bool((plan[2, 2] == 0).all()) and bool((plan[:2, 2] > 0).all())
    single = solve(cost[1:2], a[1], b[1].double(), epsilons=PAPER, tol=1e-4, max_iter=100_000)
    assert single.converged and row_error(single.plan, a[1]) < 1e-4
    # The batch iterates until its worst problem converges: the same plan up to the tolerance.
    torch.testing.assert_close(single.plan, plan[1:2], rtol=0, atol=1e-3)


def test_marginal_error_is_the_plans_when_not_converged() -> None:
    a, b = problem_marginals("unit", 1)
    cost = torch.randn(8, 3, 5, dtype=torch.float64)
    result = solve(cost, a, b, epsilons=[0.01], tol=1e-9, max_iter=3)
    assert not result.converged and result.iterations == 3
    assert result.marginal_error == pytest.approx(row_error(result.plan, a), rel=1e-9)
    torch.testing.assert_close(result.plan.sum(1), b.expand(8, -1))  # columns exact even so


def test_check_every_few_iterations_still_meets_tol() -> None:
    """Checking every few iterations (the accelerator default) only ever stops at a checked, converged iterate."""
    a, b = problem_marginals("unit", 1)
    cost = torch.randn(64, 3, 5, dtype=torch.float64)
    result = solve(cost, a, b, epsilons=PAPER, tol=1e-3, check_every=5)
    assert result.converged and row_error(result.plan, a) < 1e-3


def test_warm_start() -> None:
    """``init``: the converged potentials need no iteration; a nearby cost's converge faster than a cold start."""
    a, b = problem_marginals("exactly_k", 1)  # f is -inf on the zero dummy-agent row
    cost = torch.randn(16, N_AGENTS + 1, N_ITEMS + 1, dtype=torch.float64)
    schedule = geometric_epsilons(1.0, 0.2, 5)
    exact = solve(cost, a, b, epsilons=schedule, tol=1e-10, max_iter=100_000)
    again = solve(cost, a, b, epsilons=[0.2], tol=1e-8, init=exact.f)
    assert exact.converged and again.converged and again.iterations == 0
    torch.testing.assert_close(again.plan, exact.plan, rtol=0, atol=1e-8)

    # At the paper's tolerance the warm start saves most of the work (not at tight ones: the
    # asymptotic rate is the same).
    start = solve(cost, a, b, epsilons=PAPER, tol=1e-3)
    nearby = cost + 0.01 * torch.randn_like(cost)
    cold = solve(nearby, a, b, epsilons=PAPER, tol=1e-2)
    warm = solve(nearby, a, b, epsilons=PAPER[-1:], tol=1e-2, init=start.f)
    assert cold.converged and warm.converged and warm.iterations < cold.iterations / 2
    assert row_error(warm.plan, a) < 1e-2
    reference = solve(nearby, a, b, epsilons=PAPER, tol=1e-5, max_iter=100_000).plan
    torch.testing.assert_close(warm.plan, reference, rtol=0, atol=2e-2)


@pytest.mark.parametrize(
    ("previous", "done", "error", "most", "expected"),
    [
        (None, 0, 0.5, 5, 2),  # first check at an epsilon: measure a rate
        ((0, 0.64), 2, 0.16, 5, 3),  # halving per iteration: 0.16 -> 0.02 in exactly 3
        ((0, 0.8), 2, 0.2, 5, 4),  # halving: 0.2 -> 0.02 needs 3.3, rounded up
        ((0, 0.1), 2, 0.025, 5, 2),  # 1.3 predicted: never two checks in a row
        ((0, 0.1), 1, 0.09, 5, 5),  # slow (21 predicted): the longest interval
        ((0, 0.1), 1, 0.2, 5, 5),  # error grew: no prediction
        ((0, 0.64), 2, 0.16, 1, 1),  # check_every=1 means every iteration
    ],
)
def test_check_interval(previous, done: int, error: float, most: int, expected: int) -> None:
    """The accelerator check schedule (a pure helper), against hand-computed predictions."""
    assert _check_interval(previous, done, error, 0.02, most) == expected


def test_potentials_reproduce_the_plan() -> None:
    """``P = exp((f + g - C) / eps)`` with the returned potentials (cost units, offset costs included)."""
    a, b = problem_marginals("exactly_k", 1)
    cost = 50 + torch.randn(4, 3, 5, dtype=torch.float64)
    result = solve(cost, a, b, epsilons=[1.0, 0.3], tol=1e-8)
    rebuilt = torch.exp((result.f.unsqueeze(2) + result.g.unsqueeze(1) - cost) / 0.3)
    torch.testing.assert_close(rebuilt, result.plan)
    assert result.f.shape == (4, 3) and result.g.shape == (4, 5)
    assert bool(torch.isneginf(result.g[:, -1]).all())  # zero dummy-item marginal


# --------------------------------------------------------------------------- exact optimum


@pytest.mark.parametrize(("demand", "k"), DEMANDS, ids=DEMAND_IDS)
def test_cost_approaches_lp_optimum(demand: str, k) -> None:
    """``0 <= <P_eps, C> - OPT <= eps (H(P_eps) - H(P*))``, shrinking with eps, against scipy's exact LP."""
    a, b = problem_marginals(demand, k)
    cost = torch.randn(4, N_AGENTS + 1, N_ITEMS + 1, dtype=torch.float64)
    references = [exact_lp(c, a.numpy(), b.numpy()) for c in cost.numpy()]
    optimum = np.array([value for value, _ in references])
    tol = 1e-5
    # A plan with relative row errors <= tol is within tol * sum(a) of a feasible one: it may move that much mass.
    slack = tol * float(a.sum()) * 2 * float(cost.abs().max())
    gaps = []
    for eps in (1.0, 0.3, 0.1, 0.03):
        result = solve(cost, a, b, epsilons=geometric_epsilons(1.0, eps, 5), tol=tol, max_iter=100_000)
        assert result.converged
        plan = result.plan.numpy()
        gap = (plan * cost.numpy()).sum((1, 2)) - optimum
        bound = np.array([eps * (entropy(p) - entropy(star)) for p, (_, star) in zip(plan, references)])
        assert np.all(gap >= -slack), gap
        assert np.all(gap <= bound + slack), (gap, bound)
        gaps.append(gap)
    # The entropic transport cost is monotone in eps and tends to the optimum.
    assert np.all(np.diff(gaps, axis=0) <= slack)
    assert np.all(gaps[-1] < 0.05 * gaps[0])


def test_plan_approaches_planted_permutation() -> None:
    """A cost whose unique optimum is a planted permutation (margin 1): the plan tends to it."""
    n = 5
    perm = torch.randperm(n)
    cost = torch.rand(3, n, n, dtype=torch.float64)
    cost[:, torch.arange(n), perm] = -1.0
    target = torch.zeros(n, n, dtype=torch.float64)
    target[torch.arange(n), perm] = 1.0
    ones = torch.ones(n, dtype=torch.float64)
    for c in cost.numpy():  # scipy agrees that the planted permutation is optimal
        assert (linear_sum_assignment(c)[1] == perm.numpy()).all()
    errors = []
    for eps in (0.3, 0.1, 0.03):
        plan = sinkhorn(cost, ones, ones, epsilons=geometric_epsilons(1.0, eps, 5), tol=1e-9, max_iter=10_000)
        errors.append(float((plan - target).abs().max()))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-6


# --------------------------------------------------------------------------- POT


@pytest.mark.parametrize(("demand", "k"), [d for d in DEMANDS if d[0] != "exactly_k"])
def test_agrees_with_pot(demand: str, k) -> None:
    """Same single epsilon, tight tolerances: the plan is POT's (log-domain Sinkhorn, one problem at a time)."""
    a, b = problem_marginals(demand, k)
    cost = torch.randn(4, N_AGENTS + 1, N_ITEMS + 1, dtype=torch.float64)
    result = solve(cost, a, b, epsilons=[0.1], tol=1e-12, max_iter=100_000)
    assert result.converged
    for c, p in zip(cost.numpy(), result.plan.numpy()):
        reference = ot.sinkhorn(a.numpy(), b.numpy(), c, 0.1, method="sinkhorn_log", stopThr=1e-14, numItermax=100_000)
        np.testing.assert_allclose(p, reference, rtol=1e-7, atol=1e-10)


def test_agrees_with_pot_batched_float32() -> None:
    """float32 against POT's batched solver (``ot.solve_batch``) run in float64."""
    a, b = problem_marginals("unit", 1, torch.float32)
    cost = torch.randn(32, N_AGENTS + 1, N_ITEMS + 1)
    result = solve(cost, a, b, epsilons=[0.2], tol=1e-5, max_iter=100_000)
    reference = ot.solve_batch(
        cost.double(), reg=0.2, a=a.double().expand(32, -1), b=b.double().expand(32, -1),
        method="log_sinkhorn", tol=1e-12, max_iter=100_000,
    ).plan
    assert result.converged
    torch.testing.assert_close(result.plan.double(), reference, rtol=0, atol=3e-5)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("grad", ["implicit", "unroll"])
@pytest.mark.parametrize(("demand", "k"), [("unit", 1), ("exactly_k", 2)], ids=["unit", "exactly_k-zero-marginals"])
def test_gradcheck(grad: str, demand: str, k) -> None:
    a, b = problem_marginals(demand, k)
    cost = torch.randn(2, N_AGENTS + 1, N_ITEMS + 1, dtype=torch.float64, requires_grad=True)

    def plan(c: Tensor) -> Tensor:
        return sinkhorn(c, a, b, epsilons=[1.0, 0.5], tol=1e-13, max_iter=100_000, grad=grad)

    assert torch.autograd.gradcheck(plan, (cost,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_implicit_and_unrolled_gradients_agree_at_convergence() -> None:
    for demand, k in DEMANDS:
        a, b = problem_marginals(demand, k)
        cost = torch.randn(8, N_AGENTS + 1, N_ITEMS + 1, dtype=torch.float64)
        weights = torch.randn_like(cost)
        grads = []
        for grad in ("implicit", "unroll"):
            leaf = cost.clone().requires_grad_(True)
            result = solve(leaf, a, b, epsilons=geometric_epsilons(1.0, 0.2, 4), tol=1e-10, max_iter=100_000, grad=grad)
            assert result.converged
            (result.plan * weights).sum().backward()
            grads.append(leaf.grad)
        scale = float(grads[0].abs().max())
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-6 * scale, msg=f"{demand} k={k}")


@pytest.mark.parametrize("grad", ["implicit", "unroll"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("epsilons", [[1e-3], geometric_epsilons(1.0, 1e-3, 10)], ids=["cold", "schedule"])
def test_no_nan_or_inf_at_extremes(epsilons, dtype: torch.dtype, grad: str) -> None:
    """Costs up to 1e4 in magnitude, epsilon down to 1e-3: finite plans and gradients even unconverged."""
    for demand, k in (("unit", 1), ("exactly_k", 2)):
        a, b = problem_marginals(demand, k, dtype)
        cost = torch.randn(8, N_AGENTS + 1, N_ITEMS + 1, dtype=dtype) * 1e4
        cost[0] = 1e4
        cost[1, 0] = -1e4
        cost.requires_grad_(True)
        result = solve(cost, a, b, epsilons=epsilons, tol=1e-2, max_iter=30, grad=grad)
        (result.plan * torch.randn_like(cost)).sum().backward()
        assert bool(torch.isfinite(result.plan).all()) and bool(torch.isfinite(cost.grad).all())
        assert bool(torch.isfinite(result.f[:, a > 0]).all()) and bool(torch.isfinite(result.g[:, b > 0]).all())
        assert math.isfinite(result.marginal_error)


# --------------------------------------------------------------------------- schedule


def test_paper_schedule() -> None:
    schedule = GeometricEpsilonSchedule(1.0, 0.05, 10)
    values = schedule.values()
    assert len(values) == 10 and values[0] == 1.0 and values[-1] == 0.05  # endpoints exact
    np.testing.assert_allclose(values, np.geomspace(1.0, 0.05, 10), rtol=1e-12)
    assert values == PAPER == geometric_epsilons(1.0, 0.05, 10)
    # A pure function of the step: any order, any instance, same value.
    assert [GeometricEpsilonSchedule(1.0, 0.05, 10)(t) for t in reversed(range(10))] == list(reversed(values))
    assert GeometricEpsilonSchedule(2.0, 0.01, 1).values() == (0.01,)
    with pytest.raises(IndexError):
        schedule(10)


@pytest.mark.parametrize("init,final,steps", [(1.0, 0.0, 10), (-1.0, 0.05, 10), (1.0, 0.05, 0), (1.0, 0.05, 2.5)])
def test_schedule_rejects_bad_settings(init: float, final: float, steps) -> None:
    with pytest.raises(ValueError, match="epsilon must be positive|steps >= 1"):
        GeometricEpsilonSchedule(init, final, steps)


# --------------------------------------------------------------------------- input errors

_A = torch.tensor([1.0, 1.0, 4.0])
_B = torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0])
_COST = torch.zeros(2, 3, 5)


@pytest.mark.parametrize(
    ("cost", "a", "b", "kwargs", "message"),
    [
        (_COST, _A, _B * 2, {}, "marginal totals differ"),
        (_COST, torch.tensor([1.0, -1.0, 6.0]), _B, {}, "non-negative"),
        (_COST, torch.tensor([1.0, math.nan, 4.0]), _B, {}, "finite"),
        (_COST, torch.zeros(3), torch.zeros(5), {}, "positive total"),
        (_COST, _A[:2], _B, {}, r"a must have shape \(3,\) or \(2, 3\)"),
        (_COST, _A, _B.expand(3, -1), {}, r"b must have shape \(5,\) or \(2, 5\)"),
        (_COST[0], _A, _B, {}, r"cost must be a \(batch, N, M\) tensor"),
        (torch.zeros(2, 3, 5, dtype=torch.long), _A, _B, {}, "float32 or float64"),
        (torch.zeros(2, 0, 5), _A, _B, {}, "at least one row"),
        (_COST.clone().fill_(math.nan), _A, _B, {}, "NaN or Inf"),
        (_COST.clone().index_fill_(1, torch.tensor([0]), math.inf), _A, _B, {}, "NaN or Inf"),
        (_COST, _A, _B, {"epsilons": []}, "epsilons is empty"),
        (_COST, _A, _B, {"epsilons": [1.0, 0.0]}, "positive and finite"),
        (_COST, _A, _B, {"epsilons": [-0.1]}, "positive and finite"),
        (_COST, _A, _B, {"epsilons": [math.inf]}, "positive and finite"),
        (_COST, _A, _B, {"tol": 0.0}, "tol must be positive"),
        (_COST, _A, _B, {"max_iter": 0}, "max_iter must be a positive integer"),
        (_COST, _A, _B, {"grad": "backprop"}, "grad must be 'implicit' or 'unroll'"),
        (_COST, _A, _B, {"check_every": 0}, "check_every must be a positive integer"),
        (_COST, _A, _B, {"init": torch.zeros(2, 5)}, r"init must be the row potentials f of shape \(2, 3\)"),
        (_COST, _A, _B, {"init": torch.tensor([[0.0, math.nan, 0.0]] * 2)}, "init must be finite"),
    ],
)
def test_invalid_input_raises(cost: Tensor, a: Tensor, b: Tensor, kwargs: dict, message: str) -> None:
    kwargs = {"epsilons": PAPER, **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        solve(cost, a, b, **kwargs)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- devices and sizes


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("grad", ["implicit", "unroll"])
def test_cuda_matches_cpu(grad: str) -> None:
    """float64, tight tolerance: the CUDA plan and gradient (checked every 5 iterations) are the CPU ones."""
    a, b = problem_marginals("k_demand", 2)
    cost = torch.randn(32, N_AGENTS + 1, N_ITEMS + 1, dtype=torch.float64)
    weights = torch.randn_like(cost)
    plans, grads = [], []
    for device in ("cpu", "cuda"):
        leaf = cost.to(device).detach().requires_grad_(True)
        result = solve(
            leaf, a.to(device), b.to(device), epsilons=geometric_epsilons(1.0, 0.3, 4), tol=1e-8,
            max_iter=100_000, grad=grad,
        )
        assert result.converged and result.plan.device.type == device
        (result.plan * weights.to(device)).sum().backward()
        plans.append(result.plan.detach().cpu())
        grads.append(leaf.grad.cpu())
    torch.testing.assert_close(plans[1], plans[0], rtol=0, atol=1e-7)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6 * float(grads[0].abs().max()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_paper_settings_without_a_sync_per_iteration() -> None:
    """float32, paper schedule: marginals met, finite gradients, and far fewer host syncs than iterations."""
    a, b = marginals("unit", 5, 10, device="cuda")
    cost = torch.randn(4096, 6, 11, device="cuda", requires_grad=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")  # every synchronizing CUDA call now warns
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = solve(cost, a, b, epsilons=PAPER, tol=1e-2)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    assert result.converged and row_error(result.plan.detach(), a) < 1e-2
    torch.testing.assert_close(result.plan.detach().sum(1), b.expand(4096, -1), rtol=1e-4, atol=1e-4)
    assert 0 < syncs < result.iterations / 2, (syncs, result.iterations)
    (result.plan * torch.randn_like(result.plan)).sum().backward()
    assert bool(torch.isfinite(cost.grad).all())


@pytest.mark.slow
def test_million_problems() -> None:
    a, b = marginals("unit", 1, 2)
    cost = torch.randn(1_000_000, 2, 3)
    result = solve(cost, a, b, epsilons=PAPER, tol=1e-2)
    assert result.converged and row_error(result.plan, a) < 1e-2
    torch.testing.assert_close(result.plan.sum(1), b.expand(1_000_000, -1), rtol=1e-5, atol=1e-5)
