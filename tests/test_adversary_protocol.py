"""The adversary protocol and the setting object: adversaries chosen by their YAML give the direct calls' regret,
against hand-derived regrets; a new adversary (docs/extending.md) is one module and one YAML; bad input is refused."""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import pytest
import torch

import evaluate
from adversary.audit import AuditSettings, audit
from adversary.base import REGRET_KEYS, Adversary
from adversary.gradient import GradientSearch
from adversary.grid_audit import GridAudit
from adversary.protocol import against_search, run_protocol
from adversary.select import load_adversary, selected_adversaries
from adversary.strong import StrongSettings
from adversary.strong_search import StrongSearch
from baselines import fit_baseline
from distributions import Exponential, Setting, Uniform
from mechanisms.base import Mechanism
from mechanisms.demand import Demand
from tests.test_audit import StrictMenu, strict_menu_regret
from tests.test_config import ROOT

TIMES = ("time_s", "evaluation_time_s")


class FirstPrice(Mechanism):
    """One item, the highest bid wins and pays its bid."""

    def allocate_and_pay(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        winner = torch.nn.functional.one_hot(bids[..., 0].argmax(1), self.n_agents).to(bids)
        return winner.unsqueeze(-1), winner * bids[..., 0]


def first_price_regret(values: torch.Tensor, bids: list[torch.Tensor]) -> torch.Tensor:
    """Two bidders, one item, the other truthful: bidder ``i`` bidding ``b`` wins iff ``b > v_j`` and earns ``v_i - b``;
    the truthful bid earns 0.  Regret ``(samples, 2)``: the best of ``bids`` (each ``(samples, 2)``), or 0."""
    v = values[:, :, 0]
    return torch.stack([(b > v.flip(1)) * (v - b) for b in bids]).amax(0).clamp(min=0)


def _profiles(samples: int, seed: int) -> torch.Tensor:
    """``(samples, 2, 1)`` float64 values U[0, 1] (float64: the bids compared exactly as in the closed form)."""
    return torch.rand(samples, 2, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------------------------ the setting


def test_a_setting_is_built_once_and_compares_by_value() -> None:
    setting = Setting.of(StrictMenu())
    assert setting == Setting(1, 2, Demand("exactly_k", 1), Uniform(1, 2)) == Setting.uniform(1, 2, "exactly_k")
    assert setting.description == f"1 bidder(s) x 2 item(s), {Demand('exactly_k', 1).description}"
    assert setting.sample(5, torch.Generator().manual_seed(0)).shape == (5, 1, 2)
    low, high = setting.domain()
    assert low.shape == high.shape == (1, 2) and low.dtype == torch.float64
    assert fit_baseline("pay_to_choose", setting, samples=200) is fit_baseline("pay_to_choose", Setting.uniform(1, 2, "exactly_k"), samples=200)
    config = {"agents": 3, "items": 1, "demand": {"name": "unit", "k": 1},
              "distribution": {"_target_": "distributions.Exponential", "n_agents": 3, "n_items": 1, "scale": 3.0}}
    assert Setting.from_config(config) == Setting(3, 1, Demand("unit"), Exponential(3, 1, 3.0))


@pytest.mark.parametrize("make, match", [
    (lambda: Setting(2, 3, Demand("unit"), Uniform(1, 3)), "the distribution is over 1 agent"),
    (lambda: Setting(2, 3, "unit", Uniform(2, 3)), "Setting.demand must be a Demand"),
    (lambda: Setting.uniform(2, 3, Demand("exactly_k", 2)), "exactly"),
    (lambda: Setting.uniform(0, 3), "agents"),
])
def test_a_bad_setting_is_refused_in_one_line(make, match: str) -> None:
    with pytest.raises(ValueError, match=match) as error:
        make()
    assert "\n" not in str(error.value)


# ------------------------------------------------------------- adversaries chosen by their YAML


def test_the_yaml_gives_the_direct_call_and_the_hand_derived_regret() -> None:
    """conf/adversary/audit.yaml with overrides is the audit called directly; both find StrictMenu's regret."""
    values = torch.rand(60, 1, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    setting = Setting.of(StrictMenu())
    chosen = load_adversary("audit", ["settings.points=31", "settings.refine_rounds=4", "samples=40"])
    assert chosen == GridAudit(samples=40, settings=AuditSettings(points=31, refine_rounds=4))
    protocol = GradientSearch(steps=5, restarts=1)
    report = run_protocol(StrictMenu(), values, setting, protocol, seed=2, adversaries=[chosen])["audit"]
    direct = audit(StrictMenu(), values[:40], AuditSettings(points=31, refine_rounds=4)).to_dict()
    assert list(report) == [*direct, "search_on_audited"]
    assert {k: report[k] for k in direct if k != "time_s"} == {k: v for k, v in direct.items() if k != "time_s"}
    truth = strict_menu_regret(values[:40])[:, 0]
    assert report["regret_sum_over_agents_mean"] == pytest.approx(truth.mean().item(), abs=1e-9)
    assert report["search_on_audited"]["regret_sum_over_agents_max"] == 0.0  # a jump the gradient cannot see
    searched = protocol.regret(StrictMenu(), values[:40], setting, seed=2).to_dict()
    assert report["search_on_audited"] == {k: searched[k] for k in report["search_on_audited"]}


def test_the_strong_yaml_is_the_strong_adversary() -> None:
    """Without steps and random starts, the strong adversary scores its structured starts: on one item, the truth
    shaded by 0.9 ... 0 (``scales``), the item at the top (single item, extremes) and at the midpoint (extremes)."""
    values = _profiles(50, 1)
    chosen = load_adversary("strong", ["settings.steps=0", "settings.random_starts=0"])
    assert chosen == StrongSearch(settings=StrongSettings(steps=0, random_starts=0))
    found = against_search(chosen, FirstPrice(2, 1), values, Setting.uniform(2, 1), protocol=GradientSearch(steps=3, restarts=0))
    v = values[:, :, 0]
    truth = first_price_regret(values, [f * v for f in StrongSettings.scales] + [torch.ones_like(v), torch.full_like(v, 0.5)])
    assert found["regret_sum_over_agents_mean"] == pytest.approx(truth.sum(1).mean().item(), abs=1e-12)
    assert found["regret_sum_over_agents_max"] == pytest.approx(truth.sum(1).max().item(), abs=1e-12)


@pytest.mark.parametrize("flags, options", [
    (["--audit", "--audit-points", "11", "--audit-samples", "12"],
     ["--adversary", "audit", "--adversary-option", "audit.settings.points=11", "--adversary-option", "audit.samples=12"]),
    (["--strong", "--strong-steps", "3", "--strong-starts", "2"],
     ["--adversary", "strong", "--adversary-option", "strong.settings.steps=3", "--adversary-option", "strong.settings.random_starts=2"]),
])
def test_the_older_flags_and_the_adversary_options_write_the_same_report(flags: list[str], options: list[str],
                                                                        tmp_path: Path) -> None:
    base = ["--mechanism", "optimal", "--demand", "exactly_k", "--samples", "30", "--steps", "2", "--restarts", "1",
            "--no-progress", "--threads", "1"]
    reports = []
    for name, extra in (("flags", flags), ("options", options)):
        assert evaluate.main([*base, *extra, "--out", str(tmp_path / name)]) == 0
        report = json.loads((tmp_path / name / "evaluation.json").read_text())
        reports.append({key: ({k: v for k, v in value.items() if k not in TIMES} if isinstance(value, dict) else value)
                        for key, value in report.items() if key not in TIMES})
    assert reports[0] == reports[1]


# -------------------------------------------------------------- a new adversary: docs/extending.md


def _doc_block(language: str) -> str:
    text = (ROOT / "docs" / "extending.md").read_text()
    section = text.split("## A new adversary", 1)[1].split("\n## ", 1)[0]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def shading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[types.ModuleType, Path]:
    """docs/extending.md's adversary: its Python block as the module its YAML names, the YAML in a file."""
    yaml_file = tmp_path / "shading.yaml"
    yaml_file.write_text(_doc_block("yaml"))
    module = types.ModuleType("adversary.shading")
    monkeypatch.setitem(sys.modules, "adversary.shading", module)  # before: its dataclass looks its module up
    exec(compile(_doc_block("python"), "docs/extending.md", "exec"), module.__dict__)
    return module, yaml_file


def test_the_extending_example_finds_the_first_price_regret(shading) -> None:
    module, yaml_file = shading
    adversary = load_adversary(str(yaml_file), ["factors=[0.8,0.4]"])
    assert isinstance(adversary, module.Shading) and adversary.factors == [0.8, 0.4]
    values = _profiles(200, 3)
    report = against_search(adversary, FirstPrice(2, 1), values, Setting.uniform(2, 1), protocol=GradientSearch(steps=3, restarts=0))
    truth = first_price_regret(values, [0.8 * values[:, :, 0], 0.4 * values[:, :, 0]])
    assert report["n_samples"] == 200 and list(report["search_on_same_profiles"]) == list(REGRET_KEYS)
    assert report["regret_sum_over_agents_mean"] == pytest.approx(truth.sum(1).mean().item(), abs=1e-12)
    assert report["regret_per_agent"] == pytest.approx(truth.mean(0).tolist(), abs=1e-12)


def test_the_extending_example_runs_through_evaluate(shading, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, yaml_file = shading
    argv = ["--mechanism", "vcg", "--agents", "2", "--items", "1", "--samples", "40", "--steps", "2", "--restarts", "1",
            "--adversary", str(yaml_file), "--adversary-option", "shading.samples=25", "--out", str(tmp_path / "eval"),
            "--no-progress", "--threads", "1"]
    assert evaluate.main(argv) == 0
    found = json.loads((tmp_path / "eval" / "evaluation.json").read_text())["shading"]
    assert found["n_samples"] == 25 and found["regret_sum_over_agents_max"] == 0.0  # VCG is truthful
    assert found["search_on_same_profiles"]["regret_sum_over_agents_max"] == 0.0
    assert "shading regret, sum over agents" in capsys.readouterr().out


# ------------------------------------------------------------------------------- bad input


def _namespace(**kwargs) -> argparse.Namespace:
    return argparse.Namespace(**{"adversary": [], "adversary_option": [], **kwargs})


@pytest.mark.parametrize("namespace, match", [
    (_namespace(adversary=["nope"]), "unknown adversary 'nope'"),
    (_namespace(strong_steps=3), "--strong-steps needs --strong"),
    (_namespace(adversary=["audit"], audit_samples=0), "--audit-samples must be a positive integer"),
    (_namespace(adversary=["audit"], adversary_option=["strong.samples=3"]), "for a selected adversary"),
    (_namespace(adversary=["audit"], adversary_option=["audit.settings.points=1"]), "points must be an integer >= 2"),
    (_namespace(adversary=["audit"], adversary_option=["audit.bogus=1"]), "bogus"),
])
def test_bad_adversary_options_are_refused_in_one_line(namespace: argparse.Namespace, match: str) -> None:
    with pytest.raises(ValueError, match=match) as error:
        selected_adversaries(namespace)
    assert "\n" not in str(error.value)


def test_a_yaml_that_names_no_adversary_is_refused(tmp_path: Path) -> None:
    not_one = tmp_path / "not_one.yaml"
    not_one.write_text("_target_: adversary.search.MisreportSearch\n")
    with pytest.raises(ValueError, match="must be an adversary.base.Adversary"):
        load_adversary(str(not_one))
    assert issubclass(GridAudit, Adversary) and issubclass(StrongSearch, Adversary)


def test_the_audit_refuses_four_items_before_any_work() -> None:
    with pytest.raises(ValueError, match="at most 3 items"):
        against_search(GridAudit(), FirstPrice(1, 4), torch.rand(3, 1, 4), Setting.uniform(1, 4))
