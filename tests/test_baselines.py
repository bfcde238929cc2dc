"""The truthful baselines: closed-form optima, brute-force outcomes, zero audited regret, IR, feasibility, API."""

from __future__ import annotations

import itertools
import json
import math
from fractions import Fraction

import pytest
import torch

from adversary.audit import AuditSettings, audit
from adversary.regret import measure
from adversary.search import MisreportSearch
from mechanisms.base import utility
from baselines import (
    BASELINE_NAMES,
    PayToChoose,
    PostedPrice,
    VCGReserve,
    applicable_baselines,
    baseline_mechanism,
    best_baseline,
    fit_baseline,
)
from distributions import Setting
from mechanisms.demand import Demand
from baselines.references import references
from baselines.vcg import VCG
from reporting.baselines_table import SETTINGS
from reporting.baselines_table import main as baselines_table_main
from reporting.tables import baseline_rows
from tests.brute_force import best_welfare

# ------------------------------------------------------------------ closed forms

CLOSED_FORM_SAMPLES = 30_000  # the fitted price is within ~0.01 of the optimum; the revenue's stderr ~0.0015


def test_posted_price_one_bidder_two_items_unit_is_pavlov() -> None:
    """Revenue p (1 - p^2) is maximal at p = 1/sqrt(3): 2 / (3 sqrt 3) = 0.3849."""
    fitted = fit_baseline("posted_price", Setting.uniform(1, 2, Demand("unit")), samples=CLOSED_FORM_SAMPLES)
    assert fitted.prices[0] == pytest.approx(1 / math.sqrt(3), abs=0.02)
    assert abs(fitted.revenue - 2 / (3 * math.sqrt(3))) < 4 * fitted.revenue_stderr


def test_pay_to_choose_one_bidder_two_items_exactly_one() -> None:
    """The lottery is worth (v0 + v1)/2; choosing, max - p: it chooses iff |v1 - v0| > 2p, so revenue p (1 - 2p)^2,
    maximal at p = 1/6: 2/27."""
    fitted = fit_baseline("pay_to_choose", Setting.uniform(1, 2, Demand("exactly_k", 1)), samples=CLOSED_FORM_SAMPLES)
    assert fitted.prices[0] == pytest.approx(1 / 6, abs=0.02)
    assert abs(fitted.revenue - 2 / 27) < 4 * fitted.revenue_stderr


def test_vcg_reserve_two_bidders_one_item_is_myerson() -> None:
    fitted = fit_baseline("vcg_reserve", Setting.uniform(2, 1, Demand("unit")), samples=CLOSED_FORM_SAMPLES)
    assert fitted.prices[0] == pytest.approx(0.5, abs=0.02)
    assert abs(fitted.revenue - 5 / 12) < 4 * fitted.revenue_stderr


# ------------------------------------------------------------- brute force


def _brute_posted_price(values: list[list[float]], prices: list[float], capacities: list[int]) -> tuple[list, list]:
    """Each bidder in turn takes its utility-maximizing bundle (every subset within capacity) of the items left."""
    left = set(range(len(values[0])))
    allocation, payment = [], []
    for v, p, k in zip(values, prices, capacities):
        bundles = [s for size in range(min(k, len(left)) + 1) for s in itertools.combinations(sorted(left), size)]
        best = max(bundles, key=lambda s: sum(v[j] - p for j in s))
        allocation.append([1.0 if j in best else 0.0 for j in range(len(v))])
        payment.append(p * len(best))
        left -= set(best)
    return allocation, payment


@pytest.mark.parametrize("demand,k,agents,items", [("unit", 1, 2, 3), ("unit", 1, 3, 4), ("k_demand", [2, 1], 2, 4), ("additive", 1, 2, 3)])
def test_posted_price_matches_brute_force(demand: str, k, agents: int, items: int) -> None:
    prices = torch.rand(agents).tolist()
    mechanism = PostedPrice(agents, items, prices, demand, k)
    bids = torch.rand(20, agents, items, dtype=torch.float64)
    allocation, payment = mechanism(bids)
    for b in range(len(bids)):
        expected_allocation, expected_payment = _brute_posted_price(bids[b].tolist(), prices, mechanism.capacities)
        assert allocation[b].tolist() == expected_allocation
        assert payment[b].tolist() == pytest.approx(expected_payment, abs=1e-12)


def _brute_vcg_reserve(values: list[list[float]], reserve: float, capacities: list[int]) -> tuple[float, list[float]]:
    """Welfare and Clarke payments with the seller as agent ``n`` valuing every item at ``reserve`` (capacity: all items)."""
    n, m = len(values), len(values[0])
    table = [*values, [reserve] * m]
    caps = [*capacities, m]
    welfare, owners = best_welfare(table, list(range(n + 1)), caps, exact=False)
    assert len(owners) == 1  # continuous bids: a unique optimum
    chosen = owners[0]
    own = [sum(table[i][j] for j, o in enumerate(chosen) if o == i) for i in range(n)]
    payments = []
    for i in range(n):
        others = [j for j in range(n + 1) if j != i]
        payments.append(best_welfare(table, others, caps, exact=False)[0] - (welfare - own[i]))
    return welfare, payments


@pytest.mark.parametrize("demand,k,agents,items", [("unit", 1, 2, 3), ("unit", 1, 3, 3), ("k_demand", 2, 2, 4), ("additive", 1, 2, 3)])
def test_vcg_reserve_matches_brute_force_with_an_explicit_seller(demand: str, k, agents: int, items: int) -> None:
    reserve = 0.3
    mechanism = VCGReserve(agents, items, [reserve], demand, k)
    bids = torch.rand(12, agents, items, dtype=torch.float64)
    allocation, payment = mechanism(bids)
    for b in range(len(bids)):
        values = bids[b].tolist()
        welfare, payments = _brute_vcg_reserve(values, reserve, mechanism.capacities)
        sold = allocation[b].sum(0)
        ours = (bids[b] * allocation[b]).sum().item() + reserve * (items - sold.sum().item())
        assert ours == pytest.approx(welfare, abs=1e-12)
        assert payment[b].tolist() == pytest.approx(payments, abs=1e-12)


@pytest.mark.parametrize("demand,k,agents,items", [("unit", 1, 2, 3), ("unit", 1, 2, 15), ("k_demand", [1, 2], 2, 4), ("additive", 1, 3, 2)])
def test_vcg_reserve_enumeration_equals_the_assignment_solver(demand: str, k, agents: int, items: int) -> None:
    mechanism = VCGReserve(agents, items, [0.4], demand, k)
    bids = torch.rand(50, agents, items, dtype=torch.float64)
    allocation, payment = mechanism(bids)
    solver_allocation, solver_payment = VCG(agents, items, demand, k)(bids - 0.4)  # the seller's welfare folded in
    assert torch.equal(allocation, solver_allocation)
    assert torch.allclose(payment, solver_payment + 0.4 * solver_allocation.sum(-1), atol=1e-12)


@pytest.mark.parametrize("demand,k,agents,items", [("unit", 1, 2, 3), ("k_demand", 2, 3, 4), ("additive", 1, 2, 3)])
def test_vcg_reserve_zero_is_vcg(demand: str, k, agents: int, items: int) -> None:
    bids = torch.rand(30, agents, items, dtype=torch.float64)
    allocation, payment = VCGReserve(agents, items, [0.0], demand, k)(bids)
    vcg_allocation, vcg_payment = VCG(agents, items, demand, k)(bids)
    assert torch.equal(allocation, vcg_allocation)
    assert torch.allclose(payment, vcg_payment, atol=1e-12)


def _brute_pay_to_choose(values: list[list[float]], prices: list[float], ks: list[int]) -> tuple[list, list]:
    """The expected allocation and payments, in exact fractions, by recursion over every lottery draw."""
    n, m = len(values), len(values[0])
    allocation = [[Fraction(0)] * m for _ in range(n)]
    payment = [Fraction(0)] * n

    def visit(i: int, left: tuple[int, ...], weight: Fraction) -> None:
        if i == n:
            return
        v, k = values[i], ks[i]
        best = tuple(sorted(sorted(left, key=lambda j: -v[j])[:k]))
        lottery = Fraction(k, len(left)) * sum(Fraction(v[j]) for j in left)
        if sum(Fraction(v[j]) for j in best) - Fraction(prices[i]) > lottery:
            payment[i] += weight * Fraction(prices[i])
            draws = [best]
        else:
            draws = list(itertools.combinations(left, k))
        for draw in draws:
            for j in draw:
                allocation[i][j] += weight / len(draws)
            visit(i + 1, tuple(j for j in left if j not in draw), weight / len(draws))

    visit(0, tuple(range(m)), Fraction(1))
    return allocation, payment


@pytest.mark.parametrize("k,agents,items", [(1, 2, 3), (1, 3, 4), ([2, 1], 2, 4), (1, 2, 2), (2, 1, 3)])
def test_pay_to_choose_matches_exact_enumeration(k, agents: int, items: int) -> None:
    prices = (0.3 * torch.rand(agents)).tolist()
    mechanism = PayToChoose(agents, items, prices, "exactly_k", k)
    bids = torch.rand(15, agents, items, dtype=torch.float64)
    allocation, payment = mechanism(bids)
    for b in range(len(bids)):
        expected_allocation, expected_payment = _brute_pay_to_choose(bids[b].tolist(), prices, mechanism.capacities)
        flat = [float(x) for row in expected_allocation for x in row]
        assert allocation[b].flatten().tolist() == pytest.approx(flat, abs=1e-12)
        assert payment[b].tolist() == pytest.approx([float(x) for x in expected_payment], abs=1e-12)


def test_pay_to_choose_with_no_spare_item_gives_the_last_bidder_the_rest_for_free() -> None:
    bids = torch.tensor([[[0.9, 0.1], [0.2, 0.8]]], dtype=torch.float64)
    allocation, payment = PayToChoose(2, 2, [0.1, 0.0], "exactly_k", 1)(bids)
    assert allocation.tolist() == [[[1.0, 0.0], [0.0, 1.0]]]  # bidder 0 pays 0.1 for item 0; item 1 is all that is left
    assert payment.tolist() == [[0.1, 0.0]]


# ---------------------------------------------- truthfulness, IR, feasibility

CASES = [
    ("posted_price", "unit", 1, 2, 2, [0.4, 0.6]),
    ("posted_price", "k_demand", 2, 2, 3, [0.3, 0.5]),
    ("posted_price", "additive", 1, 2, 2, [0.5, 0.2]),
    ("vcg_reserve", "unit", 1, 2, 2, [0.3]),
    ("vcg_reserve", "k_demand", 2, 2, 3, [0.4]),
    ("vcg_reserve", "additive", 1, 3, 1, [0.5]),
    ("pay_to_choose", "exactly_k", 1, 2, 3, [0.2, 0.1]),
    ("pay_to_choose", "exactly_k", 1, 1, 2, [1 / 6]),
]


def _mechanism(case: tuple) -> torch.nn.Module:
    name, demand, k, agents, items, prices = case
    return baseline_mechanism(name, agents, items, Demand(demand, k), prices)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[3]}x{c[4]}")
def test_zero_regret_under_the_exhaustive_audit(case: tuple) -> None:
    mechanism = _mechanism(case)
    valuations = torch.rand(4, mechanism.n_agents, mechanism.n_items, dtype=torch.float64)
    points = 21 if mechanism.n_items <= 2 else 11
    report = audit(mechanism, valuations, AuditSettings(points=points, refine_rounds=3))
    assert report.regret_sum_over_agents_max <= 1e-9


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[3]}x{c[4]}")
def test_ir_and_feasibility_checked_by_explicit_sums(case: tuple) -> None:
    mechanism = _mechanism(case)
    valuations = torch.rand(200, mechanism.n_agents, mechanism.n_items, dtype=torch.float64)
    allocation, payment = mechanism(valuations)
    assert not allocation.requires_grad and not payment.requires_grad
    assert (utility(valuations, allocation, payment) >= -1e-12).all()  # IR at the truth
    assert ((allocation >= 0) & (allocation <= 1)).all()
    assert (allocation.sum(1) <= 1 + 1e-12).all()  # each item at most once
    bidder_totals = allocation.sum(2)
    capacities = torch.tensor([min(c, mechanism.n_items) for c in mechanism.capacities], dtype=allocation.dtype)
    if mechanism.demand.exact:
        assert torch.allclose(bidder_totals, capacities.expand_as(bidder_totals), atol=1e-12)
    else:
        assert (bidder_totals <= capacities).all()


@pytest.mark.parametrize("case", CASES[::3], ids=lambda c: f"{c[0]}-{c[1]}-{c[3]}x{c[4]}")
def test_the_misreport_engine_runs_unchanged(case: tuple) -> None:
    mechanism = _mechanism(case)
    valuations = torch.rand(16, mechanism.n_agents, mechanism.n_items)
    result = measure(mechanism, valuations, MisreportSearch(steps=5, lr=0.1, restarts=2), batch_size=8)
    assert result.regret_sum_over_agents_max <= 1e-6
    assert result.revenue_mean == pytest.approx(mechanism(valuations)[1].sum(-1).double().mean().item(), rel=1e-6)
    assert result.ir_violation_fraction == 0.0 and result.allocation_violation_max <= 1e-6


# --------------------------------------------------------------------- API


def test_applicable_baselines() -> None:
    assert applicable_baselines(2, 3, Demand("unit")) == ("posted_price", "vcg_reserve")
    assert applicable_baselines(2, 3, Demand("exactly_k", 1)) == ("pay_to_choose",)
    assert set(applicable_baselines(2, 3, Demand("additive"))) <= set(BASELINE_NAMES)


def test_fits_are_cached_and_best_is_the_highest() -> None:
    first = fit_baseline("posted_price", Setting.uniform(2, 2, Demand("unit")), samples=500)
    assert fit_baseline("posted_price", Setting.uniform(2, 2, Demand("unit")), samples=500) is first
    best = best_baseline(Setting.uniform(2, 2, Demand("unit")), samples=500)
    others = [fit_baseline(n, Setting.uniform(2, 2, Demand("unit")), samples=500) for n in applicable_baselines(2, 2, Demand("unit"))]
    assert best.revenue == max(f.revenue for f in others)
    assert len(first.prices) == 2 and all(0 <= p <= 1 for p in first.prices)


def test_per_agent_bounds_shift_the_prices() -> None:
    fitted = fit_baseline("posted_price", Setting.uniform(1, 1, Demand("unit"), low=[2.0], high=[3.0]), samples=4000)
    # one bidder, one item, U[2, 3]: revenue p (3 - p) on [2, 3] is maximal at p = 2 (everyone buys)
    assert fitted.prices[0] == pytest.approx(2.0, abs=0.01)
    assert fitted.revenue == pytest.approx(2.0, abs=0.01)


@pytest.mark.parametrize(
    "args,match",
    [
        (("bogus", 2, 3, Demand("unit")), "unknown baseline"),
        (("pay_to_choose", 2, 3, Demand("unit")), "does not apply"),
        (("posted_price", 2, 3, Demand("exactly_k")), "does not apply"),
        (("vcg_reserve", 2, 3, Demand("exactly_k")), "does not apply"),
    ],
)
def test_bad_input_raises_one_line(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match) as error:
        fit_baseline(args[0], Setting.uniform(*args[1:]), samples=100)
    assert "\n" not in str(error.value)


def test_bad_prices_raise() -> None:
    with pytest.raises(ValueError, match="2 finite price"):
        PostedPrice(2, 3, [0.5], "unit")
    with pytest.raises(ValueError, match="low < high"):
        Setting.uniform(1, 2, Demand("unit"), low=1.0, high=1.0)


# ------------------------------------------------------ where they are shown


def test_references_carry_the_fitted_baselines() -> None:
    found = references(Setting.uniform(1, 2, "unit"), samples=3000)
    assert found.baselines == {n: fit_baseline(n, Setting.uniform(1, 2, Demand("unit")), samples=3000).revenue for n in ("posted_price", "vcg_reserve")}
    assert found.best_baseline_revenue == max(found.baselines.values()) == found.baselines[found.best_baseline]
    assert references(Setting.uniform(2, 3, "exactly_k"), samples=300).best_baseline == "pay_to_choose"


def test_table_rows_say_when_the_mechanism_is_below_the_best_baseline() -> None:
    assert baseline_rows(0.8, ("posted_price", 0.879)) == [
        ("best truthful baseline", "posted_price 0.8790"),
        ("below best truthful baseline", "(posted_price 0.8790) by 0.0790"),
    ]
    assert baseline_rows(0.9, ("posted_price", 0.879)) == [("best truthful baseline", "posted_price 0.8790")]
    assert baseline_rows(0.9, None) == []


def test_evaluate_a_baseline_writes_its_prices(tmp_path) -> None:
    import evaluate

    argv = ["--mechanism", "posted_price", "--demand", "unit", "--agents", "1", "--items", "2", "--samples", "50",
            "--steps", "2", "--restarts", "1", "--out", str(tmp_path), "--no-progress"]
    assert evaluate.main(argv) == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    fitted = fit_baseline("posted_price", Setting.uniform(1, 2, Demand("unit")))
    assert report["baseline"]["prices"] == list(fitted.prices)
    assert report["metrics"]["regret_sum_over_agents_max"] == 0.0
    same = report["references"]["baselines"]["posted_price"]
    assert same["revenue_mean"] == pytest.approx(report["metrics"]["revenue_mean"], rel=1e-6)  # the same profiles
    assert report["references"]["best_truthful_baseline"] in ("posted_price", "vcg_reserve")


def test_baselines_table_lists_every_setting(tmp_path) -> None:
    out = tmp_path / "baselines.md"
    assert baselines_table_main(["--samples", "200", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    rows = [line for line in lines if line.startswith("| ") and "Setting" not in line]
    assert len(rows) == len(SETTINGS) == 12
    for line, (_, agents, items, demand, _) in zip(rows, SETTINGS):
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        applicable = applicable_baselines(agents, items, Demand(demand))
        columns = len(BASELINE_NAMES)
        assert [cell != "-" for cell in cells[2:2 + columns]] == [name in applicable for name in BASELINE_NAMES]
        best = max(applicable, key=lambda n: fit_baseline(n, Setting.uniform(agents, items, Demand(demand)), samples=200).revenue)
        assert cells[2 + columns].startswith(best)


def test_evaluate_rejects_a_baseline_that_does_not_apply(capsys: pytest.CaptureFixture) -> None:
    import evaluate

    assert evaluate.main(["--mechanism", "pay_to_choose", "--demand", "unit", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "pay_to_choose does not apply" in error and "posted_price, vcg_reserve" in error
