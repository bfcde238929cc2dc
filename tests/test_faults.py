"""Fault injection (issue 19): interrupts, racing runs, divergence, partial tables, strict JSON, settings refused before work.

Three cases run ``train.py`` in a subprocess (a signal, an exit status, a second process); the rest run in-process
with the tiny budget of tests/test_training.py.  Every file a run writes is parsed as strict JSON.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

import evaluate
from reporting import sweep_plot
from runs import reproduce
from utils.atomic import strict_json, write_json
from tests.test_config import ROOT, make_config
from tests.test_training import TINY
from runs.config import validate_config
from training.divergence import PENALTY_LIMIT, TrainingDiverged
from runs.interrupt import Interrupted
from runs.no_revenue import no_revenue_warning
from runs.run import format_table, run
from runs.run_dir import LOCK, check_run_dir, claim_run_dir

VALIDATE = [*TINY, "trainer.check_val_every_n_epoch=1"]


def _reject(constant: str) -> Any:
    raise ValueError(f"not JSON: {constant}")


def strict_load(path: Path) -> Any:
    """``json.loads`` that refuses NaN and Infinity (as strict parsers do)."""
    return json.loads(path.read_text(), parse_constant=_reject)


def assert_strict_json(folder: Path) -> int:
    """Every ``*.json`` under ``folder`` parses strictly; returns how many there were."""
    files = list(folder.rglob("*.json"))
    for path in files:
        strict_load(path)
    return len(files)


def _train(*args: str, cwd: Path, **kwargs: Any) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _ours(stderr: str) -> list[str]:
    """train.py's own lines on stderr (Lightning's start-up notes and warnings go there too)."""
    return [line for line in stderr.splitlines() if line.startswith(("error: ", "interrupted by ", "multirun of "))]


# ------------------------------------------------------------------ interrupts
INTERRUPTED = [*VALIDATE, "trainer.max_epochs=3", "+callbacks.mark._target_=tests.probes.MarkStep", "+callbacks.mark.at_step=5"]


def test_sigterm_mid_training_then_resume_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    mark = tmp_path / "mark"
    process = _train(*INTERRUPTED, f"+callbacks.mark.path={mark}", "+callbacks.mark.sleep=0.5", "logger=null",
                     f"hydra.run.dir={run_dir}", cwd=tmp_path)
    deadline = time.monotonic() + 240
    while not mark.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=240)
    lines = _ours(stderr)
    assert process.returncode == 143, stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("interrupted by SIGTERM at step "), stderr[-3000:]
    assert stderr.rstrip().endswith(lines[0])  # the last line
    assert not (run_dir / "metrics.json").exists() and not (run_dir / LOCK).exists()
    saved = run_dir / "checkpoints" / "last.ckpt"
    assert f"saved {saved}" in lines[0]
    stopped_at = int(lines[0].split("at step ")[1].split(":")[0])
    assert 5 <= stopped_at < 12 and stopped_at % 4 != 0, lines[0]  # mid-training, mid-epoch (4 batches per epoch)
    assert torch.load(saved, map_location="cpu", weights_only=False)["global_step"] == stopped_at

    # the printed command resumes the run (here in-process: its overrides, the same run directory)
    command = shlex.split(lines[0].split("resume with: ")[1])
    assert command[:2] == ["python", "train.py"] and f"resume={saved}" in command and "~logger" in command
    overrides = [o for o in command[2:] if not o.startswith(("hydra.run.dir=", "+callbacks.mark.sleep="))]
    validate_config(make_config(*overrides, output_dir=run_dir))  # the resume is allowed into its own directory
    resumed = run(make_config(*overrides, output_dir=run_dir))
    straight = run(make_config(*INTERRUPTED, f"+callbacks.mark.path={tmp_path / 'mark2'}", "~logger",
                               output_dir=tmp_path / "straight"))
    assert resumed["test"] == straight["test"] and resumed["global_step"] == straight["global_step"] == 12
    assert (resumed["lambda"], resumed["rho"]) == (straight["lambda"], straight["rho"])
    assert assert_strict_json(tmp_path) == 2


class SendSignal(pl.Callback):
    """Send ``signum`` to this process after training batch ``at_step``."""

    def __init__(self, signum: int, at_step: int) -> None:
        self.signum, self.at_step = signum, at_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.at_step:
            os.kill(os.getpid(), self.signum)


@pytest.fixture
def sigint_default() -> Any:
    """Python's own SIGINT handler during the test (pytest may run in a background job, where SIGINT is ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_sigint_stops_at_the_batch_end_with_last_ckpt(tmp_path: Path, sigint_default: None) -> None:
    from runs.config import build_components

    cfg = make_config(*VALIDATE, "trainer.max_epochs=3", output_dir=tmp_path)
    parts = build_components(cfg)
    parts.callbacks.append(SendSignal(signal.SIGINT, 6))
    with pytest.raises(Interrupted) as stop:
        run(cfg, parts)
    assert (stop.value.signum, stop.value.step, stop.value.exit_status) == (signal.SIGINT, 6, 130)
    assert stop.value.checkpoint == tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(stop.value.checkpoint, map_location="cpu", weights_only=False)["global_step"] == 6
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_multirun_summary_names_finished_interrupted_and_unstarted_jobs() -> None:
    import train

    jobs, swept = train.sweep_jobs(["-m", "seed=0,1,2", "data.batch_size=8"])
    assert jobs == [["seed=0", "data.batch_size=8"], ["seed=1", "data.batch_size=8"], ["seed=2", "data.batch_size=8"]]
    line = train.sweep_summary(jobs, swept, [(jobs[0], "finished"), (jobs[1], "interrupted")])
    assert line == "multirun of 3 job(s): finished 1: #0 (seed=0); interrupted 1: #1 (seed=1); never started 1: #2 (seed=2)"


# ------------------------------------------------------------ run directories
def test_two_runs_racing_for_one_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    release = claim_run_dir(run_dir)  # this process holds it, as a first run still training would
    try:
        second = _train(*TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
        _, stderr = second.communicate(timeout=240)
    finally:
        release()
    lines = _ours(stderr)
    assert second.returncode == 2 and len(lines) == 1, stderr[-3000:]
    assert f"the run directory {run_dir} is in use by another run (process" in lines[0]
    assert not (run_dir / "checkpoints").exists() and not (run_dir / LOCK).exists()


def test_a_run_directory_with_results_is_refused_unless_resumed(tmp_path: Path) -> None:
    import train

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(ValueError, match="already holds results \\(checkpoints/last.ckpt\\)"):
        check_run_dir(tmp_path, None)
    check_run_dir(tmp_path, str(tmp_path / "checkpoints" / "last.ckpt"))  # a resume into it
    with pytest.MonkeyPatch.context() as patch:  # a requeued SLURM job: Lightning resumes its hpc checkpoint there
        patch.setenv("SLURM_RESTART_COUNT", "1")
        check_run_dir(tmp_path, None)
        patch.setenv("SLURM_RESTART_COUNT", "0")
        (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(b"x")
        check_run_dir(tmp_path, None)
        (tmp_path / "hpc_ckpt_1.ckpt").unlink()
        patch.setenv("LOCAL_RANK", "1")  # a DDP helper process: the first process checks
        check_run_dir(tmp_path, None)
    line = train._single_run_dir_check([f"hydra.run.dir={tmp_path}", "seed=1"])
    assert line is not None and line.startswith("error: invalid configuration: the run directory")
    assert train._single_run_dir_check([f"hydra.run.dir={tmp_path}", f"resume={tmp_path}/checkpoints/last.ckpt"]) is None
    (tmp_path / LOCK).write_text("nohost-not-a-pid 1\n")  # another host's lock: held
    with pytest.raises(ValueError, match="in use by another run"):
        claim_run_dir(tmp_path)
    import socket

    (tmp_path / LOCK).write_text(f"{socket.gethostname()} 999999999\n")  # a process that is gone: taken over
    claim_run_dir(tmp_path)()
    assert not (tmp_path / LOCK).exists()


def test_default_run_directories_differ_within_a_second() -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        first = compose("config", return_hydra_config=True).hydra.run.dir
        second = compose("config", return_hydra_config=True).hydra.run.dir
    assert first != second and first.startswith("outputs/")


# ------------------------------------------------------------------ divergence
def test_a_non_finite_loss_stops_the_run_naming_the_step(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = _train(*VALIDATE, "trainer.max_epochs=2", "+callbacks.nan._target_=tests.probes.InjectNonFinite",
                     "+callbacks.nan.at_step=5", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    _, stderr = process.communicate(timeout=240)
    lines = _ours(stderr)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert process.returncode == 3 and len(lines) == 1, stderr[-3000:]
    assert lines[0] == f"error: training diverged at step 5: non-finite loss, gradient, lambda; the last good checkpoint is {last}"
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["global_step"] == 4 and all(torch.isfinite(v).all() for v in state["state_dict"].values())
    assert not (run_dir / "metrics.json").exists() and not (run_dir / LOCK).exists()


def test_a_divergence_at_the_end_of_an_epoch_writes_no_checkpoint(tmp_path: Path) -> None:
    cfg = make_config(*VALIDATE, "trainer.max_epochs=2", "+callbacks.nan._target_=tests.probes.InjectNonFinite",
                      "+callbacks.nan.at_step=4", output_dir=tmp_path)  # lambda := NaN after the epoch's last step
    with pytest.raises(TrainingDiverged) as error:
        run(cfg)
    assert (error.value.step, error.value.what, error.value.checkpoint) == (4, "lambda", None)
    assert not list(tmp_path.rglob("*.ckpt"))


def test_the_fast_step_detects_divergence_at_its_next_check_naming_the_first_bad_step(tmp_path: Path) -> None:
    cfg = make_config(*VALIDATE, "trainer.max_epochs=3", "model.fast.enabled=true", "model.train_search.restarts=0",
                      "trainer.log_every_n_steps=3", "+callbacks.nan._target_=tests.probes.InjectNonFinite",
                      "+callbacks.nan.at_step=5", output_dir=tmp_path)
    with pytest.raises(TrainingDiverged) as error:  # checked at steps 0, 3, 6, ... and before every checkpoint
        run(cfg)
    assert (error.value.step, error.value.checkpoint) == (5, tmp_path / "checkpoints" / "last.ckpt")
    state = torch.load(error.value.checkpoint, map_location="cpu", weights_only=False)
    assert state["global_step"] == 4 and torch.isfinite(state["state_dict"]["lagrange_multipliers"]).all()


@pytest.mark.parametrize("overrides, message", [
    (["lagrangian.lambda_init=1e39"], "lambda_init=1e+39 overflows float32 training"),
    (["lagrangian.lambda_init=3e38", "lagrangian.rho_init=3e38"], "lambda_init=3e+38 overflows float32 training"),
    (["lagrangian.rho_increment=1e38"], "the largest rho of the schedule=4e+38 overflows"),
    (["lagrangian.rho_increment=1e18", "lagrangian.max_rho=1e6"], None),  # capped: fine
    (["sinkhorn.tol=inf"], "tol must be positive and below 1"),
    (["sinkhorn.tol=nan"], "tol must be positive and below 1"),
    (["callbacks.budget=null"], "ModelCheckpoint monitors 'val/budgeted_revenue', which nothing logs"),
    (["callbacks.checkpoint.monitor=val/nothing"], "monitors 'val/nothing', which nothing logs"),
])
def test_settings_that_would_fail_after_work_starts_are_refused(overrides: list[str], message: str | None) -> None:
    if message is None:
        validate_config(make_config(*TINY, *overrides))
        return
    with pytest.raises(ValueError) as error:
        validate_config(make_config(*TINY, *overrides))
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)
    assert PENALTY_LIMIT == pytest.approx(1.8446744e19, rel=1e-6)


def test_without_the_budget_score_checkpoints_monitor_revenue(tmp_path: Path) -> None:
    metrics = run(make_config(*VALIDATE, "callbacks.budget=null", "callbacks.checkpoint.monitor=val/revenue",
                              output_dir=tmp_path))
    assert Path(metrics["best_checkpoint"]).is_file() and (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_resume_with_a_smaller_budget_than_the_checkpoint_is_refused(tmp_path: Path) -> None:
    run(make_config(*TINY, "trainer.max_epochs=2", output_dir=tmp_path))
    last = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match=r"the checkpoint has trained 2 epoch\(s\) \(step 8\) but trainer.max_epochs=1"):
        validate_config(make_config(*TINY, "trainer.max_epochs=1", f"resume={last}"))
    with pytest.raises(ValueError, match=r"trained 8 step\(s\) but trainer.max_steps=5"):
        validate_config(make_config(*TINY, "trainer.max_epochs=2", "trainer.max_steps=5", f"resume={last}"))
    validate_config(make_config(*TINY, "trainer.max_epochs=2", f"resume={last}"))  # equal: nothing more to train


def test_a_run_whose_revenue_collapsed_is_flagged(tmp_path: Path) -> None:
    assert "it allocates nothing" in no_revenue_warning(0.0, 0.0, 1.0)
    assert "it gives items away: allocated mass 0.500" in no_revenue_warning(0.001, 0.5, 1.0)
    assert no_revenue_warning(0.2, 0.0, 1.0) is None and no_revenue_warning(0.02, 0.0, 1.0) is None
    metrics = run(make_config(*TINY, "model.lr=10", "trainer.max_epochs=3", output_dir=tmp_path))  # collapses
    assert metrics["test"]["revenue_mean"] < 0.01, metrics["test"]
    assert len(metrics["warnings"]) == 1 and "earns no revenue" in metrics["warnings"][0]
    assert "warning " in format_table(metrics) and "earns no revenue" in format_table(metrics)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    assert "warnings/no_revenue/text_summary" in events.Tags()["tensors"]


# --------------------------------------------------------------- strict JSON
def test_strict_json_replaces_non_finite_numbers_with_null_and_a_reason(tmp_path: Path) -> None:
    data = {"revenue_mean": float("nan"), "lambda": [1.0, float("inf")], "nested": {"x": -math.inf, "ok": 2}}
    assert strict_json(data) == {
        "revenue_mean": None, "revenue_mean_reason": "NaN", "lambda": [1.0, None], "lambda_reason": "[1]: Infinity",
        "nested": {"x": None, "x_reason": "-Infinity", "ok": 2},
    }
    write_json(tmp_path / "m.json", data)
    assert strict_load(tmp_path / "m.json")["lambda"] == [1.0, None]
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary file left


def test_fast_step_on_the_cpu_writes_strict_json(tmp_path: Path) -> None:
    run(make_config(*TINY, "model.fast.enabled=true", "model.train_search.restarts=0", output_dir=tmp_path))
    assert assert_strict_json(tmp_path) == 1


# ------------------------------------------------------------ reproduce, evaluate, sweep_plot
def test_collect_only_on_an_empty_folder_keeps_the_results_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "reproduction.md"
    out.write_text("the committed table\n")
    argv = ["paper_1x2_unit", "--collect-only", "--runs-dir", str(tmp_path / "empty"), "--out", str(out), "--no-audit"]
    assert reproduce.main(argv) == 2  # the table exists: refused before anything (issue 29)
    assert "--force" in capsys.readouterr().err
    assert reproduce.main([*argv, "--force"]) == 2  # and with --force, nothing to collect: nothing written
    assert "nothing to collect" in capsys.readouterr().err
    assert out.read_text() == "the committed table\n" and not (tmp_path / "reproduction.partial.md").exists()


@pytest.mark.parametrize("argv, message", [
    (["paper_1x2_unit", "paper_1x2_unit"], "paper_1x2_unit given more than once"),
    (["paper_1x2_unit", "--audit-device", "tpu"], "unknown device 'tpu'"),
    (["paper_1x2_unit", "--timeout", "0"], "--timeout must be a positive number"),
    (["paper_1x2_unit", "--override", "agents=0"], "paper_1x2_unit with agents=0: agents must be an integer >= 1"),
    (["paper_1x2_unit", "--override", "sinkhorn.tol=inf"], "tol must be positive and below 1"),
])
def test_reproduce_checks_every_option_before_the_first_run(argv: list[str], message: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    assert reproduce.main([*argv, "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "r.md").exists()


def test_reproduce_and_evaluate_refuse_an_output_path_they_cannot_write(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert reproduce.main(["paper_1x2_unit", "--runs-dir", str(tmp_path), "--out", str(blocker / "r.md")]) == 2
    assert "--out" in capsys.readouterr().err
    start = time.perf_counter()
    assert evaluate.main(["--mechanism", "vcg", "--samples", "4000", "--out", str(blocker / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "cannot be written" in err and err.count("\n") == 1, err
    assert time.perf_counter() - start < 20  # refused before the protocol (4000 profiles x 11 searches)


def _fake_job(sweep: Path, number: int, overrides: list[str], config: dict[str, Any], revenue: float | None) -> None:
    job = sweep / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / ".hydra" / "config.yaml").write_text(json.dumps(config))
    if revenue is not None:
        test = {"n_samples": 10, "revenue_mean": revenue, "revenue_std": 0.1, "regret_sum_over_agents_mean": 0.01,
                "regret_sum_over_agents_std": 0.0, "regret_mean_over_agents_mean": 0.01,
                "regret_mean_over_agents_std": 0.0, "regret_sum_over_agents_max": 0.02}
        write_json(job / "metrics.json", {"test": test, "references": {}, "train_time_s": 1.0})


def test_sweep_plot_labels_points_by_the_swept_keys_and_lists_failed_and_missing_jobs(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    task = ["lagrangian.lambda_init=1,5", "lagrangian.rho_init=0.5,2", "seed=3"]
    (sweep / "multirun.yaml").write_text(json.dumps({"hydra": {"overrides": {"task": task}}}))
    grid = [(l, r) for l in ("1", "5") for r in ("0.5", "2")]
    for number, (lam, rho) in enumerate(grid[:3]):  # job 3 never started; job 2 failed
        overrides = [f"lagrangian.lambda_init={lam}", f"lagrangian.rho_init={rho}", "seed=3"]
        config = {"lagrangian": {"lambda_init": float(lam), "rho_init": float(rho)}, "sinkhorn": {"eps_final": 0.05}}
        _fake_job(sweep, number, overrides, config, None if number == 2 else 0.1 * (number + 1))
    points = sweep_plot.read_sweep(sweep, sweep_plot.sweep_axis(sweep))
    assert [p.label for p in points] == ["lagrangian.lambda_init=1 lagrangian.rho_init=0.5",
                                         "lagrangian.lambda_init=1 lagrangian.rho_init=2"]
    assert sweep_plot.incomplete_jobs(sweep) == (["2 (lagrangian.lambda_init=5 lagrangian.rho_init=0.5)"],
                                                 ["#3 (lagrangian.lambda_init=5 lagrangian.rho_init=2)"])
    assert sweep_plot.main([str(sweep)]) == 1  # written, but the sweep is incomplete (issue 29, property 4)
    captured = capsys.readouterr()
    assert "eps_final" not in captured.out and "never started: #3" in captured.err and "failed (no metrics.json): 2" in captured.err
    assert "never started: #3" in (sweep / "sweep.md").read_text()
    assert assert_strict_json(sweep) == 3


@pytest.mark.slow
def test_an_interrupted_multirun_lists_its_jobs_and_exits_non_zero(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    process = _train("-m", "seed=0,1,2", *INTERRUPTED, "+callbacks.mark.path=${hydra:runtime.output_dir}/mark",
                     "+callbacks.mark.sleep=0.5", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    deadline = time.monotonic() + 500
    while not (sweep / "1" / "mark").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr[-3000:]
    assert (sweep / "0" / "metrics.json").is_file() and not (sweep / "1" / "metrics.json").exists()
    assert not (sweep / "2").exists()
    assert _ours(stderr)[-1] == ("multirun of 3 job(s): finished 1: #0 (seed=0); interrupted 1: #1 (seed=1); "
                                  "never started 1: #2 (seed=2)"), stderr[-3000:]


def test_reproduce_keeps_an_earlier_run_of_the_same_preset(tmp_path: Path) -> None:
    from runs import preset_runs

    earlier = tmp_path / "paper_1x2_unit"
    earlier.mkdir()
    (earlier / preset_runs.SIDECAR).write_text("{}")
    (earlier / "metrics.json").write_text('{"test": {"revenue_mean": 0.38}}')
    (tmp_path / "paper_1x2_unit.log").write_text("earlier log")
    sidecar = preset_runs.train_preset("paper_1x2_unit", tmp_path, timeout=0.01)  # the new run is cut off at once
    assert sidecar["returncode"] == -1
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("paper_1x2_unit.previous-")]
    assert len(kept) == 1 and (kept[0] / "metrics.json").read_text() == '{"test": {"revenue_mean": 0.38}}'
    assert (kept[0] / "paper_1x2_unit.log").read_text() == "earlier log"


class SignalDuringTest(pl.Callback):
    """Send ``signum`` to this process at the start of the first test batch (inside its misreport search)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_test_stops_the_run_with_the_trained_checkpoint(
    tmp_path: Path, sigint_default: None, signum: int
) -> None:
    from runs.config import build_components

    cfg = make_config(*VALIDATE, "trainer.max_epochs=1", output_dir=tmp_path)
    parts = build_components(cfg)
    parts.callbacks.append(SignalDuringTest(signum))
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as stop:
        run(cfg, parts)
    steps = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    assert (stop.value.signum, stop.value.step) == (signum, steps) and steps > 0
    assert stop.value.checkpoint == tmp_path / "checkpoints" / "last.ckpt"
    assert not (tmp_path / "metrics.json").exists()
    assert signal.getsignal(signal.SIGTERM) is previous and signal.getsignal(signal.SIGINT) is signal.default_int_handler
