"""The strong adversary (:mod:`adversary.strong`) against hand-derived regrets, truthful mechanisms and the audit.

``HiddenDiscount``: every agent ``i`` may buy item ``i`` (its own item) at the
high price ``H``, or at the discount price ``d < H`` when it reports exactly
``low`` on every other item; the outcome is piecewise constant in the bids (no
gradient anywhere).  Truthfully (values on the other items are positive) agent
``i`` gets ``max(0, v_ii - H)``; reporting ``high`` on item ``i`` and ``low``
elsewhere gets ``max(0, v_ii - d)``, and nothing does better, so

    regret_i = max(0, v_ii - d) - max(0, v_ii - H).

The paper's protocol never reaches the face "every other item at ``low``":
random starts do not lie on it and gradient ascent cannot move.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

import evaluate
from adversary.audit import audit_misreports
from adversary.regret import measure, regret
from adversary.search import TEST_SEARCH
from adversary.strong import StrongSettings, strong_misreports, strong_regret, structured_starts
from mechanisms.base import Mechanism
from mechanisms.networks import MLP
from baselines.optimal import posted_price
from mechanisms.regretnet import RegretNet
from baselines.vcg import VCG
from runs import reproduce
from adversary.protocol import against_search
from adversary.strong_search import StrongSearch
from distributions import Setting
from reporting.tables import mean_std
from tests.test_config import make_config
from tests.test_evaluate import TINY
from tests.test_misreport import TruthfulToy
from runs.run import run

HIGH_PRICE, DISCOUNT = 0.8, 0.2
NO_STRUCTURE = dict(scales=(), top_k=(), single_items=False, permutations=0, extremes=False)


class HiddenDiscount(Mechanism):
    """Agent ``i`` buys item ``i`` at ``DISCOUNT`` if it bids 0 on every other item, else at ``HIGH_PRICE``."""

    def __init__(self, n_agents: int = 2, n_items: int = 15) -> None:
        super().__init__(n_agents, n_items, "unit")

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        bids = bids.detach()
        n = self.n_agents
        own = torch.eye(n, self.n_items, dtype=torch.bool, device=bids.device)  # agent i's item i
        bid_on_own = bids[:, :, :n].diagonal(dim1=1, dim2=2)  # (B, n)
        only_own = (bids.masked_fill(own, 0) == 0).all(-1)  # (B, n)
        price = torch.full_like(bid_on_own, HIGH_PRICE).masked_fill(only_own, DISCOUNT)
        sold = (bid_on_own >= price).to(bids.dtype)
        return own.to(bids.dtype) * sold.unsqueeze(-1), price * sold


def hidden_discount_regret(valuations: Tensor) -> Tensor:
    """The hand-derived regret ``(batch, agents)`` of :class:`HiddenDiscount`."""
    n = valuations.shape[1]
    v = valuations[:, :, :n].diagonal(dim1=1, dim2=2)
    return (v - DISCOUNT).clamp_min(0) - (v - HIGH_PRICE).clamp_min(0)


def test_the_strong_search_finds_the_hidden_discount_the_papers_protocol_misses() -> None:
    valuations = torch.rand(100, 2, 15, dtype=torch.float64)
    mechanism = HiddenDiscount()
    expected = hidden_discount_regret(valuations)
    assert expected.mean() > 0.2  # not vacuous
    paper = measure(mechanism, valuations, TEST_SEARCH, generator=torch.Generator().manual_seed(0))
    assert paper.regret_sum_over_agents_max == 0.0
    # The structure finds it, not the step count: no step at all, the structured starts alone ...
    found = regret(mechanism, valuations, strong_misreports(mechanism, valuations, StrongSettings(steps=0))).regret
    torch.testing.assert_close(found, expected, atol=1e-12, rtol=0)
    # ... while 100 random starts and 2000 steps (the strong defaults without the structure) do not.
    unstructured = strong_regret(mechanism, valuations, StrongSettings(**NO_STRUCTURE))
    assert unstructured.regret_sum_over_agents_max == 0.0
    report = strong_regret(mechanism, valuations)  # the defaults
    assert report.regret_sum_over_agents_mean == pytest.approx(expected.sum(1).mean().item(), abs=1e-12)
    assert report.regret_mean_over_agents_max == pytest.approx(expected.mean(1).max().item(), abs=1e-12)
    assert report.regret_per_agent == pytest.approx(expected.mean(0).tolist(), abs=1e-12)
    assert report.n_samples == 100 and report.random_starts == 100 and report.steps == 2000
    assert report.starts == 1 + report.structured_starts + 100
    assert report.structured_starts == 5 + 3 + 15 + 1 + 3 + 2


@pytest.mark.parametrize(
    "mechanism,items,settings",
    [
        (VCG(2, 15, "additive"), 15, StrongSettings()),
        (posted_price(), 2, StrongSettings()),
        (TruthfulToy(), 4, StrongSettings(random_starts=20, steps=100, lr=0.05)),  # differentiable: Adam runs
    ],
    ids=["vcg_2x15", "posted_price_1x2", "differentiable_truthful_2x4"],
)
def test_truthful_mechanisms_have_zero_strong_regret(mechanism, items, settings) -> None:
    agents = getattr(mechanism, "n_agents", 2)
    valuations = torch.rand(40, agents, items, dtype=torch.float64)
    report = strong_regret(mechanism, valuations, settings)
    assert report.regret_sum_over_agents_max <= 1e-12


def test_the_strong_search_agrees_with_the_audit_on_a_small_learned_mechanism() -> None:
    """A randomly initialized RegretNet, 2 bidders x 2 items: never above the exhaustive audit (up to its
    grid's resolution), and within 10% of it on average."""
    mechanism = RegretNet(2, 2, "additive", allocation_net=MLP((16,)), payment_net=MLP((16,))).double()
    with torch.no_grad():
        for parameter in mechanism.parameters():
            parameter.normal_(0, 1.5)
    valuations = torch.rand(30, 2, 2, dtype=torch.float64)
    audited = audit_misreports(mechanism, valuations).regret
    settings = StrongSettings(random_starts=10, steps=150, lr=0.02)
    found = regret(mechanism, valuations, strong_misreports(mechanism, valuations, settings)).regret.detach()
    assert audited.mean() > 0.01  # not vacuous
    assert bool((found <= audited + 1e-4).all())
    assert found.mean() >= 0.9 * audited.mean()


def test_chunking_does_not_change_the_result() -> None:
    """Without random draws the result is the same whatever the chunk (one profile per call here)."""
    valuations = torch.rand(6, 2, 4, dtype=torch.float64)
    settings = dict(random_starts=0, permutations=0, steps=20)
    mechanism = RegretNet(2, 4, "additive", allocation_net=MLP((8,)), payment_net=MLP((8,))).double()
    whole = strong_misreports(mechanism, valuations, StrongSettings(**settings))
    one_by_one = strong_misreports(mechanism, valuations, StrongSettings(**settings, max_profiles=1))
    assert torch.equal(whole, one_by_one)


def test_structured_starts_respect_per_agent_bounds() -> None:
    low, high = torch.tensor([[0.0] * 5, [2.0] * 5]), torch.tensor([[1.0] * 5, [6.0] * 5])
    valuations = low + (high - low) * torch.rand(7, 2, 5)
    settings = StrongSettings()
    starts = structured_starts(valuations, low, high, settings, torch.Generator().manual_seed(0))
    assert starts.shape == (settings.structured_count(5), 7, 2, 5)
    assert bool(((starts >= low) & (starts <= high)).all())


@pytest.mark.parametrize(
    "kwargs",
    [dict(random_starts=-1), dict(steps=1.5), dict(lr=0.0), dict(scales=(1.5,)), dict(top_k=(0,)),
     dict(single_items=1), dict(optimizer="lbfgs"), dict(max_profiles=0)],
)
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="StrongSettings"):
        StrongSettings(**kwargs)


def test_bad_input_is_refused_before_work() -> None:
    with pytest.raises(ValueError, match="StrongSettings"):
        strong_misreports(HiddenDiscount(), torch.rand(3, 2, 15), settings={"steps": 3})
    with pytest.raises(ValueError, match="value domain"):
        strong_misreports(HiddenDiscount(), 2 * torch.rand(3, 2, 15) + 1)


def test_strong_against_search_reports_both_on_the_same_profiles() -> None:
    valuations = torch.rand(50, 2, 15, dtype=torch.float64)
    adversary = StrongSearch(samples=20, settings=StrongSettings(steps=0, random_starts=5))
    report = against_search(adversary, HiddenDiscount(), valuations, Setting.of(HiddenDiscount()))
    expected = hidden_discount_regret(valuations[:20]).sum(1)
    assert report["n_samples"] == 20
    assert report["regret_sum_over_agents_mean"] == pytest.approx(expected.mean().item(), abs=1e-12)
    assert report["search_on_same_profiles"]["regret_sum_over_agents_max"] == 0.0


def test_evaluate_runs_the_strong_adversary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--mechanism", "optimal", "--samples", "30", "--steps", "5", "--strong", "--strong-steps", "20",
            "--strong-starts", "10", "--strong-samples", "12", "--out", str(tmp_path), "--no-progress"]
    assert evaluate.main(argv) == 0
    assert "strong adversary regret, sum over agents" in capsys.readouterr().out
    strong = json.loads((tmp_path / "evaluation.json").read_text())["strong"]
    assert strong["n_samples"] == 12 and strong["random_starts"] == 10 and strong["steps"] == 20
    assert strong["regret_sum_over_agents_max"] <= 1e-12  # the optimal 1x2 mechanism is a truthful posted price


@pytest.mark.parametrize(
    "argv, message",
    [(["--strong-samples", "3"], "--strong-samples needs --strong"),
     (["--strong", "--strong-samples", "0"], "--strong-samples must be a positive integer"),
     (["--strong", "--strong-steps", "-1"], "StrongSettings.steps")],
)
def test_evaluate_refuses_bad_strong_options(argv: list[str], message: str, capsys: pytest.CaptureFixture,
                                             tmp_path: Path) -> None:
    assert evaluate.main(["--mechanism", "vcg", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_reproduce_adds_the_strong_adversary_column(tmp_path: Path) -> None:
    """A tiny 1x2 run collected with --strong: strong.json on its test profiles, and the table's last column."""
    runs = tmp_path / "runs"
    run(make_config("experiment=paper_1x2_unit", *TINY, output_dir=runs / "paper_1x2_unit"))
    argv = ["paper_1x2_unit", "--runs-dir", str(runs), "--out", str(tmp_path / "r.md"), "--collect-only", "--no-audit"]
    assert reproduce.main([*argv, "--strong", "--strong-steps", "5", "--strong-starts", "3", "--audit-device", "cpu"]) == 0
    strong = json.loads((runs / "paper_1x2_unit" / "strong.json").read_text())
    test = json.loads((runs / "paper_1x2_unit" / "metrics.json").read_text())["test"]
    assert strong["n_samples"] == test["n_samples"] and strong["steps"] == 5 and strong["random_starts"] == 3
    assert strong["search_on_same_profiles"]["regret_sum_over_agents_mean"] == test["regret_sum_over_agents_mean"]
    cell = f"{mean_std(strong['regret_sum_over_agents_mean'], strong['regret_sum_over_agents_std'])} [{test['n_samples']} profiles"
    table = (tmp_path / "r.md").read_text()
    assert _last_cell(table).startswith(cell)
    assert reproduce.main([*argv, "--force"]) == 0  # without --strong, the strong.json already there is tabulated
    assert _last_cell((tmp_path / "r.md").read_text()).startswith(cell)
    # any adversary by name: its <name>.json, a column of its own after the strong one
    options = ["--adversary", "search", "--adversary-option", "search.steps=2", "--adversary-option", "search.samples=5"]
    assert reproduce.main([*argv, "--force", *options]) == 0
    searched = json.loads((runs / "paper_1x2_unit" / "search.json").read_text())
    assert searched["n_samples"] == 5 and "revenue_mean" in searched  # a Measurement of the first 5 profiles
    table = (tmp_path / "r.md").read_text()
    assert "| Search regret (sum over agents) |" in table and _cells(table)[-2].startswith(cell)
    assert _cells(table)[-1].startswith(f"{mean_std(searched['regret_sum_over_agents_mean'], searched['regret_sum_over_agents_std'])} [5 profiles")


def _cells(markdown: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if "(`paper_1x2_unit`)" in line)
    return [cell.strip() for cell in line.strip().strip("|").split(" | ")]


def _last_cell(markdown: str) -> str:
    return _cells(markdown)[-1]
