"""Reliability of the newer features (issue 29), single runs and scripts: one test per failure case of the issue
(ensembles aside), and the properties on cases the issue did not list.

1. No command replaces a file it did not create in the same call unless ``--force`` (:func:`utils.atomic.check_new`).
2. Every setting is checked against its meaning before work (:mod:`runs.setting_checks`, and the components').
3. A resume changes nothing about what was trained unless ``resume_allow_changes=true`` (printed); a shape change
   is always refused (the resume cases of the issue's list are the ensemble's: ``tests/test_bad_inputs.py`` holds
   the single run's, these add the shape and warm-start cases).
4. Every script exits non-zero when a part of its work failed, its summary still listing what succeeded.

Everything runs in process (the scripts' ``main`` is their command line), except one run of ``run_sweep.py`` as a
script, the only check that its error reaches the shell as one line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import evaluate
from benchmarks import persistent_misreports, run_sweep
from mechanisms.lottery_ama import LotteryAMA
from reporting import audited_results, baselines_table, curves, improved_table, sweep_plot
from runs import reproduce
from utils.atomic import check_new
from reporting.tables import baseline_rows
from tests.test_config import ROOT, make_config
from tests.test_training import TINY
from runs.config import validate_config
from lagrangian.target_regret import TargetSchedule
from runs.no_revenue import no_revenue_warning


def _one_line(text: str, *words: str) -> None:
    assert text.startswith("error: ") and text.count("\n") == 1 and all(w in text for w in words), text


def _refused(overrides: list[str]) -> str:
    """The one-line message ``validate_config`` refuses ``overrides`` with."""
    with pytest.raises(ValueError) as error:
        validate_config(make_config(*overrides))
    message = str(error.value)
    assert "\n" not in message, message
    return message


# ------------------------------------------------------------------------ property 2: settings and their meaning
STABLE = [o for o in TINY if not o.startswith(("callbacks.rho", "callbacks.lagrange"))]  # lagrangian=stable has no rho


@pytest.mark.parametrize("overrides, message", [
    # the cases
    (["init=pay_to_choose"], "warm start: init=pay_to_choose does not apply to 1x2 unit demand; use init=posted_price"),
    (["init=posted_price", "demand=exactly_k"], "warm start: init=posted_price does not apply to 1x2 exactly_k demand; "
                                                "use init=pay_to_choose or init=none"),
    # cases the issue did not list
    (["init=posted_price", "callbacks.warm_start=null"], "init=posted_price but callbacks.warm_start, which runs it, is null"),
    (["data.low=-1"], "values must be >= 0"),
    (["data.low=1000", "data.high=1000.01"], "float32 training cannot resolve regret"),
])
def test_a_setting_meaningless_for_the_run_is_refused_before_work(overrides: list[str], message: str) -> None:
    assert message in _refused([*TINY, *overrides])


def test_a_reserve_outside_the_values_is_refused() -> None:
    potential = [o for o in TINY if not o.startswith("mechanism.payment_net")] + ["mechanism=sinkhorn_potential"]
    assert "mechanism.reserve=5 lies outside the values' range [0, 1): every item would start unsold" in _refused(
        [*potential, "mechanism.reserve=5"])
    assert "sold at any bid" in _refused([*potential, "mechanism.reserve=-0.5"])
    validate_config(make_config(*potential, "mechanism.reserve=0.6"))  # inside: fine


def test_a_rising_regret_target_is_refused() -> None:
    message = _refused([*STABLE, "lagrangian=stable", "lagrangian.tau_start=0.0001", "lagrangian.tau_end=0.01"])
    assert message.startswith("callbacks.lagrange: the regret target must not rise: tau_start=0.0001 < tau_end=0.01")
    validate_config(make_config(*STABLE, "lagrangian=stable", "lagrangian.tau_start=0.001", "lagrangian.tau_end=0.001"))
    schedule = TargetSchedule(0.01, 0.001, 10, "linear")  # falling: as before
    assert schedule(0) == 0.01 and schedule(10) == 0.001


def test_a_lottery_menu_of_one_option_is_refused_up_front() -> None:
    assert _refused(["mechanism=lottery_ama", "mechanism.options=1"]).startswith(
        "mechanism: options=1: a menu of one lottery charges every bidder 0")
    # Why: two identical options are one option (same scores up to T log 2 in V and V_-i): every payment is 0;
    # two different options charge.
    bids = torch.rand(256, 2, 2, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    menu = LotteryAMA(2, 2, options=2, cost_scale=1.0)
    with torch.no_grad():
        assert float(menu(bids)[1].sum(-1).mean()) > 1e-3
        menu.option_costs[1] = menu.option_costs[0]
        assert float(menu(bids)[1].abs().max()) < 1e-5


def test_the_no_revenue_warning_names_no_cause_it_cannot_know() -> None:
    never = no_revenue_warning(0.0, 0.0, 1.0, best_validation=0.0)
    assert "earned none in any validation" in never and "not a collapse" in never and "model.lr" not in never
    fell = no_revenue_warning(0.0, 0.0, 1.0, best_validation=0.3)
    assert "training collapsed after a best validation revenue of 0.3000" in fell
    unknown = no_revenue_warning(0.0, 0.0, 1.0)
    assert "training collapsed" not in unknown and "the training curves tell the cause" in unknown
    assert no_revenue_warning(0.2, 0.0, 1.0, best_validation=0.0) is None


# ---------------------------------------------------------------------------------------- evaluate.py
@pytest.mark.parametrize("argv, message", [
    (["--distribution", "triangle", "--items", "3"], "distribution triangle: the triangle distribution is over two items"),
    (["--distribution", "triangle", "--items", "1"], "set items=2, got 1"),
    (["--agents", "0"], "n_agents (bidders) must be an integer >= 1, got 0"),  # not in the issue
])
def test_evaluate_refuses_a_distribution_that_does_not_fit_in_one_line(argv: list[str], message: str, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    assert evaluate.main(["--mechanism", "vcg", *argv, "--out", str(tmp_path), "--no-progress"]) == 2
    _one_line(capsys.readouterr().err, message)


QUICK = ["--samples", "20", "--steps", "2", "--restarts", "0", "--no-progress"]


def test_a_baseline_evaluated_alone_trails_no_baseline_and_an_evaluation_is_never_replaced_silently(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--mechanism", "posted_price", *QUICK, "--out", str(tmp_path)]
    assert evaluate.main(argv) == 0
    out = capsys.readouterr().out
    assert "below best truthful baseline" not in out and "(the evaluated mechanism)" in out, out
    first = (tmp_path / "evaluation.json").read_bytes()
    assert evaluate.main([*argv, "--seed", "1"]) == 2  # property 1: the earlier evaluation stays
    _one_line(capsys.readouterr().err, f"{tmp_path / 'evaluation.json'} exists", "--force")
    assert (tmp_path / "evaluation.json").read_bytes() == first
    assert evaluate.main([*argv, "--seed", "1", "--force"]) == 0
    assert json.loads((tmp_path / "evaluation.json").read_text())["protocol"]["seed"] == 1


def test_a_gap_that_rounds_to_zero_is_not_a_gap() -> None:
    assert baseline_rows(0.40249, ("posted_price", 0.40250)) == [("best truthful baseline", "posted_price 0.4025")]
    assert baseline_rows(0.4, ("posted_price", 0.4025))[1] == ("below best truthful baseline", "(posted_price 0.4025) by 0.0025")


# --------------------------------------------------------------------------- property 1 on the other commands
def test_check_new_refuses_an_existing_file_or_an_input(tmp_path: Path) -> None:
    old = tmp_path / "old.md"
    old.write_text("x")
    check_new([tmp_path / "new.md", Path("/dev/null")], force=False)  # new files and devices are fine
    with pytest.raises(ValueError, match="old.md exists .*give --force"):
        check_new([old], force=False)
    check_new([old], force=True)
    with pytest.raises(ValueError, match="is also an input of this command"):
        check_new([old], force=True, inputs=[tmp_path / "." / "old.md"])


def _sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "sweep.md").write_text("earlier\n")
    return sweep


@pytest.mark.parametrize("name", ["baselines_table", "improved_table", "sweep_plot", "audited_results", "curves"])
def test_no_reporting_command_replaces_an_earlier_file(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    table = tmp_path / "table.md"
    table.write_text("earlier\n")
    metrics = tmp_path / "metrics.json"
    metrics.write_text("{}")
    argv = {"baselines_table": (baselines_table, ["--out", str(table)]),
            "improved_table": (improved_table, [str(tmp_path), "--out", str(table)]),
            "sweep_plot": (sweep_plot, [str(_sweep(tmp_path))]),
            "audited_results": (audited_results, [str(metrics), str(metrics), str(metrics), "--force"]),  # out = input
            "curves": (curves, [str(tmp_path), "--out", str(table)])}
    module, args = argv[name]
    assert module.main(args) == 2
    _one_line(capsys.readouterr().err, "--force" if name != "audited_results" else "is also an input")
    assert table.read_text() == "earlier\n" and metrics.read_text() == "{}"


# --------------------------------------------------------------------------------------- runs.reproduce
@pytest.mark.parametrize("preset", ["paper", "best"])  # paper: the issue's; best: another base file
def test_reproduce_refuses_a_base_file_as_a_preset(preset: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = [preset, "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "r.md"), "--timeout", "1", "--no-audit"]
    assert reproduce.main(argv) == 2  # (--timeout: were it not refused, the run would stop at once)
    _one_line(capsys.readouterr().err, f"{preset}: a base file other presets build on, not a preset")
    assert not (tmp_path / "runs").exists()


def test_reproduce_collects_nothing_from_an_empty_folder_and_replaces_no_table(tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture) -> None:
    out, partial = tmp_path / "reproduction.md", tmp_path / "reproduction.partial.md"
    partial.write_text("real partial results\n")
    argv = ["paper_1x2_unit", "--collect-only", "--runs-dir", str(tmp_path / "empty"), "--out", str(out), "--no-audit"]
    assert reproduce.main(argv) == 2
    _one_line(capsys.readouterr().err, "--collect-only: no run in", "nothing to collect")
    out.write_text("the committed table\n")
    assert reproduce.main(argv) == 2  # an existing table is refused before the collection
    _one_line(capsys.readouterr().err, "reproduction.md exists", "--force")
    assert reproduce.main([*argv, "--force"]) == 2
    assert out.read_text() == "the committed table\n" and partial.read_text() == "real partial results\n"


def test_a_reproduction_without_results_replaces_no_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, partial = tmp_path / "r.md", tmp_path / "r.partial.md"
    out.write_text("the committed table\n")
    partial.write_text("real partial results\n")
    argv = ["paper_1x2_unit", "--runs-dir", str(tmp_path / "runs"), "--out", str(out), "--timeout", "0.5", "--no-audit"]
    assert reproduce.main([*argv, "--force"]) == 1  # the run is cut off: no result at all (property 4: exit 1)
    assert "a table without results replaces no file" in capsys.readouterr().err
    assert out.read_text() == "the committed table\n" and partial.read_text() == "real partial results\n"


def test_reproduce_refuses_to_replace_a_table_before_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "r.md"
    out.write_text("the committed table\n")
    argv = ["paper_1x2_unit", "--runs-dir", str(tmp_path / "runs"), "--out", str(out), "--timeout", "1", "--no-audit"]
    assert reproduce.main(argv) == 2
    _one_line(capsys.readouterr().err, "r.md exists")
    assert not (tmp_path / "runs").exists() and out.read_text() == "the committed table\n"


# --------------------------------------------------------------------------------------- benchmarks/run_sweep.py
@pytest.mark.parametrize("text, message", [
    ("a tpu seed=0\n", "line 1: expected 'NAME cpu|gpu OVERRIDES...', got 'a tpu seed=0'"),
    ("a cpu seed=0\na cpu seed=1\n", "line 2: run name 'a' is repeated"),
    ("# only a comment\n\n", "the runs file names no run"),
    ("a cpu seed=0\nb cpu 'seed=1\n", "line 2: No closing quotation in \"b cpu 'seed=1\""),
    (None, "No such file or directory"),
    ("a cpu agents=0\n", "run a: agents must be an integer >= 1, got 0"),  # not in the issue: checked before any run
])
def test_run_sweep_refuses_a_bad_runs_file_in_one_line(text: str | None, message: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs.txt"
    if text is not None:
        runs.write_text(text)
    assert run_sweep.main([str(runs), str(tmp_path / "out")]) == 2
    _one_line(capsys.readouterr().err, message)
    assert not (tmp_path / "out").exists()


def test_run_sweep_as_a_script_refuses_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_sweep.py"), str(tmp_path / "none.txt"),
                             str(tmp_path / "out")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: runs file {tmp_path / 'none.txt'}: No such file")


def _audited(folder: Path, revenue: float) -> None:
    """The files an audit of ``folder``'s last weights leaves (evaluate.py, reporting.precise_revenue)."""
    (folder / "eval_last").mkdir(parents=True)
    (folder / "eval_last" / "evaluation.json").write_text(json.dumps(
        {"metrics": {"revenue_mean": revenue, "regret_mean_over_agents_mean": 0.001},
         "audit": {"regret_mean_over_agents_mean": 0.002}}))
    (folder / "precise_last.json").write_text(json.dumps(
        {"revenue": {"mean": revenue}, "best_truthful_baseline": "posted_price",
         "baselines": {"posted_price": {"difference": {"mean": 0.01}}}}))


def test_a_sweep_rerun_keeps_every_earlier_row_and_exits_1_on_a_failed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    _audited(out / "done", 0.37)
    earlier = run_sweep.summary([])
    (out / "summary.md").write_text(earlier + "\n| other | last | 0.12345 | | | | | |\n")
    runs = tmp_path / "runs.txt"
    runs.write_text("done cpu seed=0\nbroken cpu seed=1\n")
    monkeypatch.setattr(run_sweep, "_call", lambda command, log, timeout: 1)  # every training fails
    assert run_sweep.main([str(runs), str(out), "--no-check"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: 1 of 2 run(s) failed or were skipped without results: broken (train failed (1))")
    rows = {line.split("|")[1].strip(): line for line in (out / "summary.md").read_text().splitlines()[2:]}
    assert set(rows) == {"done", "broken", "other"}
    assert "| done | last | 0.37000 | 0.37000 | 0.01000 | 0.00100 | 0.00200 |" in rows["done"]  # rebuilt from its files
    assert rows["other"] == "| other | last | 0.12345 | | | | | |"  # a run this file does not name: kept
    assert "train failed (1)" in rows["broken"]
    assert run_sweep.main([str(runs), str(out), "--no-check"]) == 1  # again: broken's folder has no results
    assert set(line.split("|")[1].strip() for line in (out / "summary.md").read_text().splitlines()[2:]) == set(rows)
    assert "train failed (1)" in (out / "summary.md").read_text()  # its earlier row says why


def test_a_sweep_run_whose_precise_revenue_failed_counts_as_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def call(command: list[str], log: Path, timeout: float) -> int:
        if "evaluate.py" in command:  # the audit succeeds ...
            _audited(tmp_path, 0.37)
            (tmp_path / "precise_last.json").unlink()
            return 0
        return 1 if "reporting.precise_revenue" in command else 0  # ... the precise revenue does not

    monkeypatch.setattr(run_sweep, "_call", call)
    run = run_sweep.parse_runs("r cpu seed=0")[0]
    run_sweep._audit(run, tmp_path, tmp_path / "last.ckpt", "last", argparse.Namespace(audit_samples=10, audit_minutes=1,
                                                                                       precise_samples=10, adversary=None))
    run.status = "done"
    assert run.rows == [{"weights": "last", "revenue": 0.37, "precise": None, "vs_baseline": None, "test_regret": 0.001,
                         "audited_regret": 0.002, "error": "precise revenue exit 1"}]
    assert run_sweep.failed(run) and "precise revenue exit 1" in run_sweep.summary([run])


def test_a_sweep_audited_by_an_adversary_passes_it_to_evaluate_and_reports_its_regret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluations = []

    def call(command: list[str], log: Path, timeout: float) -> int:
        if "evaluate.py" in command:
            evaluations.append(command)
            _audited(tmp_path, 0.61)
            report = tmp_path / "eval_last" / "evaluation.json"
            evaluated = json.loads(report.read_text())
            evaluated["strong"] = evaluated.pop("audit")  # what --adversary strong_reduced writes
            report.write_text(json.dumps(evaluated))
        return 0

    monkeypatch.setattr(run_sweep, "_call", call)
    run = run_sweep.parse_runs("r cpu seed=0")[0]
    args = argparse.Namespace(audit_samples=200, audit_minutes=1, precise_samples=10, adversary="strong_reduced",
                              test_steps=25, test_restarts=0)
    run_sweep._audit(run, tmp_path, tmp_path / "last.ckpt", "last", args)
    (command,) = evaluations
    assert "--audit" not in command
    assert command[command.index("--samples"):command.index("--device")] == [
        "--samples", "200", "--steps", "25", "--restarts", "0", "--adversary", "strong_reduced"]
    assert run.rows[0]["audited_regret"] == 0.002  # from the "strong" block


@pytest.mark.parametrize("flags, message", [
    (["--test-steps", "25"], "--test-steps and --test-restarts need --adversary"),
    (["--adversary", "strong_reduced", "--test-restarts", "-1"], "--test-steps and --test-restarts must be >= 0"),
    (["--adversary", "strongest"], "argument --adversary: invalid choice: 'strongest'"),
])
def test_run_sweep_refuses_bad_audit_flags_in_one_line(flags: list[str], message: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs.txt"
    runs.write_text("a cpu seed=0\n")
    with pytest.raises(SystemExit) as stopped:
        run_sweep.main([str(runs), str(tmp_path / "out"), *flags])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------ benchmarks/persistent_misreports.py
def test_persistent_misreports_exits_1_on_a_failed_run_and_keeps_earlier_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                              capsys: pytest.CaptureFixture) -> None:
    log = tmp_path / "unit-truth-25-seed0.log"
    log.write_text("an earlier attempt\n")
    failed = subprocess.CompletedProcess([], 1, stdout="", stderr="error: boom\n")
    monkeypatch.setattr(persistent_misreports.subprocess, "run", lambda *args, **kwargs: failed)
    monkeypatch.setattr(sys, "argv", ["persistent_misreports.py", "--out", str(tmp_path), "--seeds", "0", "--jobs", "1"])
    assert persistent_misreports.main() == 1
    assert capsys.readouterr().err.startswith("error: 6 run(s) failed: unit-truth-25-seed0: rc 1")
    assert log.read_text() == "an earlier attempt\nerror: boom\n"
