"""The additive-bidder baselines: item-wise Myerson and grand-bundle pricing against closed forms, numerical
integration (itself checked against the auction's definition), brute force, second implementations (vcg_reserve,
per-item Myerson) and the exhaustive regret audit."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from adversary.audit import AuditSettings, audit
from distributions import Exponential, Setting, Uniform, exponential_myerson_revenue
from mechanisms.base import utility
from baselines import GrandBundle, ItemwiseMyerson, VCGReserve, applicable_baselines, fit_baseline
from baselines.grand_bundle import uniform_bundle_optimum, uniform_bundle_revenue
from baselines.itemwise_myerson import myerson_reserves
from mechanisms.demand import Demand
from baselines.optimal import Myerson, myerson_revenue

ADDITIVE = Demand("additive")

# The issue's (30) table of item-wise Myerson revenues, values i.i.d. U[0, 1], as printed.
ISSUE_TABLE = {(2, 2): 0.833, (2, 3): 1.250, (2, 5): 2.083, (3, 10): 5.3125, (5, 10): 6.719}


def _item_revenue(n: int) -> Fraction:
    """One item, ``n`` bidders U[0, 1], second price with reserve 1/2, from the payment's tail (exact fractions).

    The payment is 0 unless the top bid is at least 1/2, and then ``max(1/2, second bid)``; so
    ``E[pay] = int_0^1 P(pay > t) dt = (1/2) P(top >= 1/2) + int_{1/2}^1 P(second > t) dt`` with
    ``P(top >= 1/2) = 1 - 2^-n`` and ``P(second > t) = 1 - t^n - n t^(n-1) (1 - t)``.
    """
    half = Fraction(1, 2)

    def antiderivative(t: Fraction) -> Fraction:  # of 1 - t^n - n t^(n-1) + n t^n
        return t - t ** (n + 1) / (n + 1) - t**n + Fraction(n, n + 1) * t ** (n + 1)

    return half * (1 - half**n) + antiderivative(Fraction(1)) - antiderivative(half)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_item_revenue_from_the_tail_is_myersons_closed_form(n: int) -> None:
    assert _item_revenue(n) == Fraction(n - 1, n + 1) + Fraction(1, 2**n * (n + 1))
    assert float(_item_revenue(n)) == pytest.approx(myerson_revenue(n), rel=1e-15)


@pytest.mark.parametrize("setting", sorted(ISSUE_TABLE), ids=lambda s: f"{s[0]}x{s[1]}")
def test_itemwise_myerson_revenue_matches_the_closed_form_and_the_issue_table(setting: tuple[int, int]) -> None:
    agents, items = setting
    exact = items * float(_item_revenue(agents))
    assert exact == pytest.approx(ISSUE_TABLE[setting], abs=5e-4)  # the table, as rounded
    n = 100_000
    bids = torch.rand(n, agents, items, generator=torch.Generator().manual_seed(items), dtype=torch.float64)
    realized = ItemwiseMyerson(agents, items, [0.5] * items)(bids)[1].sum(-1)
    assert abs(realized.mean().item() - exact) < 4 * realized.std().item() / math.sqrt(n)


def test_fitted_itemwise_myerson_takes_the_closed_form_reserves() -> None:
    fitted = fit_baseline("itemwise_myerson", Setting.uniform(2, 3, ADDITIVE))
    assert fitted.prices == (0.5, 0.5, 0.5)
    assert abs(fitted.revenue - 1.25) < 4 * fitted.revenue_stderr
    assert myerson_reserves(Uniform(1, 2, low=[[0.0, 0.7]], high=[[1.0, 1.2]])) == (0.5, 0.7)  # max(low, high / 2)
    assert myerson_reserves(Uniform(2, 2, high=[1.0, 2.0])) is None  # bidders of different laws
    assert myerson_reserves(Exponential(2, 2)) is None


def test_itemwise_myerson_fits_the_exponential_reserve() -> None:
    """Exp(mean 1) values: the virtual value v - 1 puts Myerson's reserve at 1 (no closed form here: fitted)."""
    fitted = fit_baseline("itemwise_myerson", Setting(2, 2, ADDITIVE, Exponential(2, 2)), samples=30_000)
    assert fitted.prices == pytest.approx((1.0, 1.0), abs=0.15)  # the revenue is flat near the reserve
    assert abs(fitted.revenue - 2 * exponential_myerson_revenue(2)) < 4 * fitted.revenue_stderr


def _bundle_revenue(agents: int, items: int, reserve: float, samples: int = 400_000) -> tuple[float, float]:
    """Revenue of the bundle's second-price auction straight from its definition, by Monte Carlo on the sums
    (sorted, no mechanism code): ``(mean, standard error)``."""
    sums = torch.rand(samples, agents, items, generator=torch.Generator().manual_seed(7), dtype=torch.float64).sum(-1)
    top = sums.sort(dim=-1, descending=True).values
    second = top[:, 1] if agents > 1 else torch.zeros(samples, dtype=torch.float64)
    pay = torch.where(top[:, 0] >= reserve, second.clamp(min=reserve), torch.zeros_like(second))
    return pay.mean().item(), pay.std().item() / math.sqrt(samples)


@pytest.mark.parametrize("agents,items,reserve", [(1, 2, 0.8), (2, 3, 1.2), (3, 4, 2.2), (5, 10, 3.9)])
def test_bundle_quadrature_matches_the_definition(agents: int, items: int, reserve: float) -> None:
    mean, stderr = _bundle_revenue(agents, items, reserve)
    assert abs(uniform_bundle_revenue(agents, items, reserve) - mean) < 4 * stderr


def test_bundle_optimum_one_bidder_two_items_is_closed_form() -> None:
    """p (1 - p^2 / 2) is maximal at p = sqrt(2/3): (2/3) sqrt(2/3) = 0.5443."""
    reserve, revenue = uniform_bundle_optimum(1, 2)
    assert reserve == pytest.approx(math.sqrt(2 / 3), abs=1e-5)
    assert revenue == pytest.approx(2 / 3 * math.sqrt(2 / 3), abs=1e-9)


@pytest.mark.parametrize("agents,items", [(1, 2), (2, 2), (2, 3), (2, 5)])
def test_fitted_grand_bundle_reaches_the_best_reserve(agents: int, items: int) -> None:
    reserve, revenue = uniform_bundle_optimum(agents, items)
    fitted = fit_baseline("grand_bundle", Setting.uniform(agents, items, ADDITIVE), samples=30_000)
    assert fitted.prices[0] == pytest.approx(reserve, abs=0.03 * items)  # the revenue is flat near its peak
    assert abs(fitted.revenue - revenue) < 4 * fitted.revenue_stderr


def test_grand_bundle_revenue_at_a_given_reserve_matches_quadrature() -> None:
    n = 100_000
    bids = torch.rand(n, 3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    realized = GrandBundle(3, 4, [2.2])(bids)[1].sum(-1)
    assert abs(realized.mean().item() - uniform_bundle_revenue(3, 4, 2.2)) < 4 * realized.std().item() / math.sqrt(n)


def _brute_second_price(bids: list[float], reserve: float) -> tuple[int | None, float]:
    """Winner (lowest index among the highest; ``None`` below the reserve) and its payment."""
    top = max(bids)
    if top < reserve:
        return None, 0.0
    winner = bids.index(top)
    others = bids[:winner] + bids[winner + 1:]
    return winner, max([reserve, *others])


@pytest.mark.parametrize("agents,items", [(1, 3), (2, 2), (3, 4)])
def test_itemwise_myerson_and_grand_bundle_match_brute_force(agents: int, items: int) -> None:
    bids = torch.rand(40, agents, items, dtype=torch.float64).round(decimals=1)  # ties happen
    reserves = [0.3 + 0.1 * j for j in range(items)]
    allocation, payment = ItemwiseMyerson(agents, items, reserves)(bids)
    bundle_allocation, bundle_payment = GrandBundle(agents, items, [0.4 * items])(bids)
    for b in range(len(bids)):
        expected_allocation = torch.zeros(agents, items, dtype=torch.float64)
        expected_payment = [0.0] * agents
        for j in range(items):
            winner, pay = _brute_second_price(bids[b, :, j].tolist(), reserves[j])
            if winner is not None:
                expected_allocation[winner, j] = 1.0
                expected_payment[winner] += pay
        assert torch.equal(allocation[b], expected_allocation)
        assert payment[b].tolist() == pytest.approx(expected_payment, abs=1e-12)
        winner, pay = _brute_second_price(bids[b].sum(-1).tolist(), 0.4 * items)
        assert bundle_allocation[b].tolist() == [[float(i == winner)] * items for i in range(agents)]
        assert bundle_payment[b].tolist() == pytest.approx([pay if i == winner else 0.0 for i in range(agents)], abs=1e-12)


def test_itemwise_myerson_with_one_reserve_is_vcg_reserve_and_per_item_myerson() -> None:
    """Second implementations: vcg_reserve for additive demand, and Myerson's single-item auction column by column."""
    bids = torch.rand(500, 3, 4, dtype=torch.float64)
    allocation, payment = ItemwiseMyerson(3, 4, [0.5] * 4)(bids)
    vcg_allocation, vcg_payment = VCGReserve(3, 4, [0.5], "additive")(bids)
    assert torch.equal(allocation, vcg_allocation)
    assert torch.allclose(payment, vcg_payment, atol=1e-12)
    per_item = [Myerson(3, demand="additive")(bids[..., j:j + 1]) for j in range(4)]
    assert torch.equal(allocation, torch.cat([a for a, _ in per_item], dim=-1))
    assert torch.allclose(payment, sum(p for _, p in per_item), atol=1e-12)


CASES = [
    (ItemwiseMyerson, 2, 2, [0.5, 0.3]),
    (ItemwiseMyerson, 1, 3, [0.5, 0.2, 0.7]),
    (GrandBundle, 1, 2, [0.8]),
    (GrandBundle, 2, 2, [0.9]),
    (GrandBundle, 2, 3, [1.2]),
]
IDS = [f"{c[0].__name__}-{c[1]}x{c[2]}" for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_zero_regret_under_the_exhaustive_audit(case: tuple) -> None:
    make, agents, items, prices = case
    mechanism = make(agents, items, prices, ADDITIVE)
    valuations = torch.rand(4, agents, items, dtype=torch.float64)
    report = audit(mechanism, valuations, AuditSettings(points=21 if items <= 2 else 11, refine_rounds=3))
    assert report.regret_sum_over_agents_max <= 1e-9


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_ir_and_feasibility(case: tuple) -> None:
    make, agents, items, prices = case
    valuations = torch.rand(300, agents, items, dtype=torch.float64)
    allocation, payment = make(agents, items, prices, ADDITIVE)(valuations)
    assert not allocation.requires_grad and not payment.requires_grad
    assert (utility(valuations, allocation, payment) >= -1e-12).all()
    assert ((allocation == 0) | (allocation == 1)).all() and (allocation.sum(1) <= 1).all()


def test_they_apply_where_a_bidder_may_take_any_subset() -> None:
    assert {"itemwise_myerson", "grand_bundle"} <= set(applicable_baselines(2, 3, ADDITIVE))
    assert {"itemwise_myerson", "grand_bundle"} <= set(applicable_baselines(2, 3, Demand("k_demand", 3)))
    for demand in (Demand("unit"), Demand("k_demand", 2), Demand("exactly_k", 1)):
        assert not {"itemwise_myerson", "grand_bundle"} & set(applicable_baselines(2, 3, demand))


@pytest.mark.parametrize("make,prices,match", [
    (ItemwiseMyerson, [0.5, 0.5], "any subset"),
    (GrandBundle, [1.0], "all of them or none"),
])
def test_bad_demand_and_prices_raise_one_line(make, prices: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match) as error:
        make(2, 2, prices, "unit")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="finite price"):
        make(2, 2, [0.5, 0.5, 0.5], "additive")
    with pytest.raises(ValueError, match="does not apply"):
        fit_baseline("itemwise_myerson" if make is ItemwiseMyerson else "grand_bundle", Setting.uniform(2, 2, Demand("unit")), samples=100)


def test_evaluate_itemwise_myerson(tmp_path) -> None:
    import json

    import evaluate

    argv = ["--mechanism", "itemwise_myerson", "--demand", "additive", "--agents", "2", "--items", "2", "--samples", "100",
            "--steps", "2", "--restarts", "1", "--out", str(tmp_path), "--no-progress"]
    assert evaluate.main(argv) == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["baseline"]["prices"] == [0.5, 0.5]
    assert report["metrics"]["regret_sum_over_agents_max"] == 0.0
    assert set(report["references"]["baselines"]) == {"posted_price", "vcg_reserve", "itemwise_myerson", "grand_bundle"}
