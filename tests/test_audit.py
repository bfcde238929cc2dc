"""The exhaustive regret audit against hand-derived regrets.

Two non-truthful mechanisms whose best response is a jump (piecewise constant
in the bids: the gradient search cannot move from the truth), with the
per-profile regret derived by hand:

* ``ThresholdPrice``: one bidder, unit demand; the highest-bid item is sold at
  ``price`` only if that bid is at least ``threshold > price``.  Truthfully the
  bidder gets ``max(0, M - price)`` only when ``M = max_j v_j >= threshold``;
  reporting ``threshold`` (or more) on its best item gets it whenever ``M >= price``:
  regret ``(M - price) 1{price <= M < threshold}``.  For two items U[0, 1]
  (``M`` has density ``2x``) and price 1/2, threshold 3/4 the expectation is
  ``int_{1/2}^{3/4} (x - 1/2) 2x dx = 1/24``.
* ``StrictMenu``: one bidder, exactly one of two items; item 0 is free, item 1
  costs 1/3 but is given only if the reported ``b1 - b0 >= 2/3`` (the optimal
  menu would give it from 1/3).  With ``d = v1 - v0``, regret
  ``(d - 1/3) 1{1/3 <= d < 2/3}``; ``d`` has density ``1 - d`` on [0, 1], so the
  expectation is ``int_0^{1/3} t (2/3 - t) dt = 2/81``.

Truthful mechanisms (VCG, the analytic optima) have no regret at all.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch

from callbacks.audit import AuditWarning, RegretAudit
from adversary.audit import AuditSettings, audit, audit_misreports
from mechanisms.base import Mechanism
from adversary.regret import measure
from adversary.search import MisreportSearch
from baselines.optimal import Myerson, free_and_priced, manelli_vincent, posted_price
from baselines.vcg import VCG
from tests.test_config import make_config


class ThresholdPrice(Mechanism):
    """Unit demand, one bidder: the top-bid item at ``price`` if its bid is >= ``threshold``."""

    def __init__(self, n_items: int = 2, price: float = 0.5, threshold: float = 0.75) -> None:
        super().__init__(1, n_items, "unit")
        self.price, self.threshold = price, threshold

    def allocate_and_pay(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bids = bids.detach()
        top, item = bids[:, 0].max(-1)
        sold = (top >= self.threshold).to(bids.dtype)
        allocation = torch.nn.functional.one_hot(item, self.n_items).to(bids.dtype) * sold.unsqueeze(-1)
        return allocation.unsqueeze(1), (self.price * sold).unsqueeze(1)


class StrictMenu(Mechanism):
    """Exactly one of two items: item 1 at 1/3 if the reported ``b1 - b0 >= 2/3``, else item 0 free."""

    def __init__(self) -> None:
        super().__init__(1, 2, "exactly_k", 1)

    def allocate_and_pay(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bids = bids.detach()
        second = (bids[:, 0, 1] - bids[:, 0, 0] >= 2 / 3).to(bids.dtype)
        allocation = torch.stack([1 - second, second], -1).unsqueeze(1)
        return allocation, (second / 3).unsqueeze(1)


def threshold_regret(values: torch.Tensor, price: float = 0.5, threshold: float = 0.75) -> torch.Tensor:
    top = values[:, 0].max(-1).values
    return ((top - price) * ((top >= price) & (top < threshold))).unsqueeze(1)


def strict_menu_regret(values: torch.Tensor) -> torch.Tensor:
    d = values[:, 0, 1] - values[:, 0, 0]
    return ((d - 1 / 3) * ((d >= 1 / 3) & (d < 2 / 3))).unsqueeze(1)


def uniform(samples: int, agents: int, items: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(samples, agents, items, generator=generator, dtype=torch.float64)


TRAINING_SEARCH = MisreportSearch(steps=25, lr=0.1)  # what training sees: from the truth
CASES = [
    (lambda: ThresholdPrice(2), threshold_regret, 1 / 24),
    (lambda: StrictMenu(), strict_menu_regret, 2 / 81),
]


@pytest.mark.parametrize("factory, closed_form, expected", CASES, ids=["threshold_price", "strict_menu"])
def test_audit_finds_the_hand_derived_regret_that_the_gradient_search_misses(factory, closed_form, expected) -> None:
    mechanism, values = factory(), uniform(400, 1, 2)
    truth = closed_form(values)
    found = audit_misreports(mechanism, values, AuditSettings(points=41, refine_rounds=3))
    # the grid holds an exact best response ((0, 1), (1, 0), ...): the audit is exact per profile
    assert torch.allclose(found.regret, truth, atol=1e-12)
    assert float(truth.mean()) > 0.3 * expected  # the sample does exercise the jump
    # its mean matches the closed-form expectation within Monte Carlo error
    stderr = float(truth.std()) / math.sqrt(len(values))
    assert abs(float(found.regret.mean()) - expected) < 4 * stderr
    # the reported misreports do earn the regret
    allocation, payment = mechanism(found.misreports)
    assert torch.allclose((allocation * values).sum(-1) - payment - found.truthful, truth, atol=1e-12)
    # the gradient search from the truth cannot leave it: it sees no regret at all
    assert measure(mechanism, values, TRAINING_SEARCH).regret_sum_over_agents_max == 0.0
    # even the paper's protocol (10 random starts) finds clearly less than the audit
    paper = measure(mechanism, values, MisreportSearch(steps=50, lr=0.1, restarts=10),
                     generator=torch.Generator().manual_seed(0))
    assert paper.regret_sum_over_agents_mean < 0.97 * float(truth.mean())


def test_audit_covers_three_items_with_its_default_grid() -> None:
    values = uniform(60, 1, 3, seed=1)
    report = audit(ThresholdPrice(3), values)  # 31^3 grid
    assert report.grid_points == 31 and report.grid_size == 31**3
    truth = threshold_regret(values)
    assert report.regret_sum_over_agents_mean == pytest.approx(float(truth.mean()), abs=1e-12)
    assert report.regret_sum_over_agents_max == pytest.approx(float(truth.max()), abs=1e-12)


TRUTHFUL = [
    (lambda: posted_price(), 2),
    (lambda: free_and_priced(), 2),
    (lambda: manelli_vincent(), 2),
    (lambda: Myerson(2), 1),
    (lambda: VCG(2, 2, "unit"), 2),
    (lambda: VCG(2, 2, "exactly_k"), 2),
]


@pytest.mark.parametrize("factory, items", TRUTHFUL, ids=["posted_price", "free_and_priced", "manelli_vincent",
                                                            "myerson2", "vcg_2x2_unit", "vcg_2x2_exactly_one"])
def test_audit_finds_no_regret_in_truthful_mechanisms(factory, items: int) -> None:
    mechanism = factory()
    values = uniform(30 if isinstance(mechanism, VCG) else 300, mechanism.n_agents, items)
    report = audit(mechanism, values, AuditSettings(points=21, refine_rounds=4))
    assert report.regret_sum_over_agents_max < 1e-9
    assert report.n_samples == len(values) and len(report.regret_per_agent) == mechanism.n_agents


def test_audit_of_two_agents_three_items_vcg_finds_no_regret() -> None:
    report = audit(VCG(2, 3, "unit"), uniform(2, 2, 3), AuditSettings(points=9, refine_rounds=2))
    assert report.regret_sum_over_agents_max < 1e-9


def test_audit_honours_per_agent_bounds_and_small_chunks() -> None:
    # values U[0, 2]: threshold 1.5, price 1 (everything scaled by 2); reports must reach 2 to be exact
    values = 2 * uniform(50, 1, 2)
    mechanism = ThresholdPrice(2, price=1.0, threshold=1.5)
    found = audit_misreports(mechanism, values, AuditSettings(points=11, refine_rounds=2, max_profiles=7), high=[2.0])
    assert torch.allclose(found.regret, threshold_regret(values, 1.0, 1.5), atol=1e-12)
    assert float(found.misreports.max()) <= 2.0 and float(found.misreports.min()) >= 0.0


@pytest.mark.parametrize(
    "values, settings, message",
    [
        (torch.rand(4, 2), AuditSettings(), "shape \\(samples, agents, items\\)"),
        (torch.rand(4, 1, 4), AuditSettings(), "at most 3 items"),
        (torch.full((4, 1, 2), float("nan")), AuditSettings(), "NaN"),
        (torch.rand(4, 2, 2), AuditSettings(), "n_agents=1"),
        (torch.randint(0, 2, (4, 1, 2)), AuditSettings(), "floating-point"),
    ],
)
def test_bad_input_is_rejected_in_one_line(values, settings, message) -> None:
    with pytest.raises(ValueError, match=message) as error:
        audit(ThresholdPrice(values.shape[-1] if values.dim() == 3 and values.shape[-1] <= 3 else 2), values, settings)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("field, value", [("points", 1), ("refine_starts", 0), ("refine_rounds", -1), ("max_profiles", 0)])
def test_bad_settings_are_rejected(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        AuditSettings(**{field: value})


def test_bad_bounds_are_rejected() -> None:
    with pytest.raises(ValueError, match="low and high"):
        audit(ThresholdPrice(2), uniform(3, 1, 2), low=1.0, high=0.0)
    with pytest.raises(ValueError, match="one float per agent"):
        audit(ThresholdPrice(2), uniform(3, 1, 2), high=[1.0, 2.0, 3.0])


# ----------------------------------------------------------------- the validation callback
class _Module(pl.LightningModule):
    """What RegretAudit reads from the training module: mechanism, low/high, val_search; log() captured."""

    def __init__(self, mechanism: Mechanism) -> None:
        super().__init__()
        self.mechanism, self.low, self.high = mechanism, 0.0, 1.0
        self.train_search = MisreportSearch(steps=25, lr=0.1)
        self.val_search = MisreportSearch(steps=10, lr=0.1, restarts=2)
        self.logged: dict[str, float] = {}

    def log(self, name: str, value: float, **kwargs) -> None:  # type: ignore[override]
        self.logged[name] = float(value)


def _validate(callback: RegretAudit, module: _Module, batch: torch.Tensor, step: int = 7) -> None:
    trainer = SimpleNamespace(sanity_checking=False, global_step=step)
    callback.on_validation_batch_end(trainer, module, None, batch, 0)
    callback.on_validation_epoch_end(trainer, module)


def test_validation_audit_logs_the_hand_derived_regret_and_warns() -> None:
    values = uniform(200, 1, 2, seed=3)
    callback, module = RegretAudit(samples=100, points=21, refine_rounds=2), _Module(StrictMenu())
    with pytest.warns(AuditWarning, match="more than 2x"):
        _validate(callback, module, values)
    truth = strict_menu_regret(values[:100])
    assert module.logged["audit/regret_sum_over_agents"] == pytest.approx(float(truth.mean()), abs=1e-12)
    assert module.logged["audit/regret_sum_over_agents_max"] == pytest.approx(float(truth.max()), abs=1e-12)
    assert module.logged["audit/search_regret_sum_over_agents"] == 0.0 and "audit/ratio" not in module.logged


def test_validation_audit_is_quiet_on_a_truthful_mechanism_and_skips_other_sizes(recwarn) -> None:
    callback, module = RegretAudit(samples=50, points=21), _Module(posted_price())
    _validate(callback, module, uniform(80, 1, 2))
    assert module.logged["audit/regret_sum_over_agents"] < 1e-9
    assert not [w for w in recwarn if issubclass(w.category, AuditWarning)]
    three = _Module(ThresholdPrice(3))
    _validate(RegretAudit(), three, uniform(10, 1, 3))
    assert three.logged == {}


@pytest.mark.parametrize("field, value", [("samples", 0), ("warn_factor", 0.5), ("points", 1), ("warn_min_regret", -1.0), ("search", "test")])
def test_validation_audit_rejects_bad_settings(field: str, value) -> None:
    with pytest.raises(ValueError, match=field):
        RegretAudit(**{field: value})


# ----------------------------------------------------------------- evaluate.py --audit
def _cli(tmp_path: Path, *argv: str) -> dict:
    import evaluate

    assert evaluate.main([*argv, "--out", str(tmp_path), "--no-progress", "--threads", "1"]) == 0
    return json.loads((tmp_path / "evaluation.json").read_text())


def test_evaluate_reports_the_audit_beside_the_search(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    report = _cli(tmp_path, "--mechanism", "optimal", "--demand", "exactly_k", "--samples", "60", "--steps", "5",
                  "--restarts", "1", "--audit", "--audit-points", "21")
    audit_report = report["audit"]
    assert audit_report["n_samples"] == 60 and audit_report["grid_size"] == 21**2
    for convention in ("mean", "sum"):
        for stat in ("mean", "std", "max"):
            assert audit_report[f"regret_{convention}_over_agents_{stat}"] < 1e-9  # the optimal menu is truthful
            assert f"regret_{convention}_over_agents_{stat}" in audit_report["search_on_audited"]
    printed = capsys.readouterr().out
    assert "audited regret, sum over agents" in printed and "audit / search" in printed


def test_evaluate_audits_a_subsample_of_a_trained_checkpoint(tmp_path: Path) -> None:
    from tests.test_evaluate import TINY
    from runs.run import run

    run(make_config(*TINY, "callbacks.audit.samples=8", output_dir=tmp_path / "run"))
    report = _cli(tmp_path / "eval", str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "--samples", "24", "--steps", "3",
                  "--restarts", "1", "--audit", "--audit-points", "11", "--audit-samples", "10")
    assert report["audit"]["n_samples"] == 10 and report["metrics"]["n_samples"] == 24
    searched = report["audit"]["search_on_audited"]["regret_sum_over_agents_mean"]
    assert report["audit"]["regret_sum_over_agents_mean"] >= 0 and searched >= 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--mechanism", "vcg", "--agents", "2", "--items", "4", "--audit"], "at most 3 items"),
        (["--mechanism", "optimal", "--audit", "--audit-points", "1"], "points must be an integer >= 2"),
        (["--mechanism", "optimal", "--audit-samples", "5"], "needs --audit"),
        (["--mechanism", "optimal", "--audit", "--audit-samples", "0"], "audit-samples must be a positive"),
    ],
)
def test_evaluate_rejects_bad_audit_options_in_one_line(argv, message, tmp_path: Path, capsys) -> None:
    import evaluate

    assert evaluate.main([*argv, "--out", str(tmp_path), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
