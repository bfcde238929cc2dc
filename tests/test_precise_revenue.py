"""reporting.precise_revenue (revenue beside the baselines on a large sample), the sweep's runs file, and the
results file's precise block: against closed forms and a direct paired computation."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.run_sweep import parse_runs
from baselines import fit_baseline
from distributions import Setting
from baselines.references import optimal_mechanism
from reporting.audited_results import audited_results
from reporting.precise_revenue import precise_revenue


def test_the_optimum_as_learned_mechanism_matches_closed_form_and_differs_by_nothing() -> None:
    setting = Setting.uniform(1, 2, "unit")
    optimum = optimal_mechanism(setting)
    values = torch.rand(40_000, 1, 2, generator=torch.Generator().manual_seed(3))
    found = precise_revenue(optimum, values, setting)
    revenue = found["revenue"]
    assert abs(revenue["mean"] - 0.3849) < 4 * revenue["stderr"]            # 2 / (3 sqrt 3), Pavlov
    # the same mechanism, profile by profile (float32 bids for the "learned" one, float64 for the references)
    assert abs(found["optimal"]["difference"]["mean"]) < 1e-7 and found["optimal"]["difference"]["stderr"] < 1e-9
    posted = found["baselines"]["posted_price"]
    direct = optimum(values)[1].sum(-1).double() - fit_baseline("posted_price", setting).mechanism(values.double())[1].sum(-1)
    assert posted["difference"]["mean"] == pytest.approx(direct.mean().item(), abs=1e-12)
    assert posted["difference"]["stderr"] == pytest.approx(direct.std().item() / math.sqrt(len(direct)), rel=1e-9)
    assert found["best_truthful_baseline"] in found["baselines"]


def test_precise_revenue_refuses_a_bad_sample() -> None:
    with pytest.raises(ValueError, match="samples >= 2"):
        setting = Setting.uniform(1, 2, "unit")
        precise_revenue(optimal_mechanism(setting), torch.rand(1, 1, 2), setting)


def test_results_file_refuses_a_precise_block_of_another_checkpoint() -> None:
    evaluation = {"audit": {"regret_mean_over_agents_mean": 0.0}, "source": "/runs/a/last.ckpt"}
    merged = audited_results({"test": {}}, evaluation, precise={"checkpoint": "/runs/a/last.ckpt", "revenue": {}})
    assert merged["precise_revenue"]["checkpoint"] == "/runs/a/last.ckpt"
    with pytest.raises(ValueError, match="same checkpoint"):
        audited_results({"test": {}}, evaluation, precise={"checkpoint": "/runs/b/last.ckpt"})


def test_runs_file_parsing() -> None:
    runs = parse_runs("# comment\nu_s0 cpu experiment=best_1x2_unit seed=0  # trailing\n\nu_s1 gpu seed=1\n")
    assert [(r.name, r.device, r.overrides) for r in runs] == [
        ("u_s0", "cpu", ["experiment=best_1x2_unit", "seed=0"]), ("u_s1", "gpu", ["seed=1"])]
    for bad, message in (("u tpu seed=0", "cpu\\|gpu"), ("u cpu\nu gpu", "repeated"), ("# nothing", "no run")):
        with pytest.raises(ValueError, match=message):
            parse_runs(bad)


def test_improved_table_summarizes_the_seeds(tmp_path) -> None:
    import json

    from reporting.improved_table import improved_table

    def result(ours: float, base: float, regret: float) -> dict:
        precise = {"revenue": {"mean": ours}, "best_truthful_baseline": "posted_price",
                   "baselines": {"posted_price": {"mean": base, "difference": {"mean": ours - base}}}}
        return {"test": {"revenue_mean": ours - 0.01}, "audit": {"regret_mean_over_agents_mean": regret},
                "precise_revenue": precise, "train_time_s": 600.0, "train_cpu_s": 300.0, "hardware": "CPU: x"}

    for seed, (ours, regret) in enumerate([(0.382, 0.0006), (0.380, 0.0009), (0.384, 0.0007)]):
        (tmp_path / f"best_1x2_unit_seed{seed}.json").write_text(json.dumps(result(ours, 0.3849, regret)))
    (tmp_path / "notes.json").write_text("{}")  # not a results file: ignored
    table = improved_table(tmp_path).splitlines()
    assert len(table) == 3 and table[2].startswith("| best_1x2_unit | 0, 1, 2 | 0.397 (0.248)")
    cells = [c.strip() for c in table[2].split("|")[1:-1]]
    assert cells[4] == "0.3820 +- 0.0020 (worst 0.3800)"          # mean, sd (ddof 1) and the lowest revenue
    assert cells[5] == "-0.0029 +- 0.0020 (worst -0.0049)"
    assert cells[7] == "0.00073 +- 0.00015 (worst 0.00090)"        # the highest regret is the worst
    assert cells[8] == "wall 10.0 min (max 10.0); CPU 5.0 min (max 5.0)"
    with pytest.raises(ValueError, match="no <preset>_seed<k>.json"):
        improved_table(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else tmp_path)
