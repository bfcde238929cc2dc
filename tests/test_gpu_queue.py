"""The GPU queue (benchmarks/gpu_queue.py, benchmarks/gpu_queue.yaml) on the CPU: the queue file's checks, the
selection by minutes, the done and failed records, collect's refusals, the scalars packing, the wheels, and a
dry run of the first two jobs with their tiny CPU commands."""

from __future__ import annotations

import io
import json
import shlex
import statistics
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from benchmarks import gpu_queue, gpu_queue_collect, gpu_queue_env
from reporting.gpu_queue_file import MAX_MINUTES, Job, load_queue
from reporting.gpu_results import RESULTS, readme
from reporting.scalar_events import pack_scalars

ROOT = Path(__file__).resolve().parents[1]


def _write_queue(path: Path, jobs: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"jobs": jobs}, sort_keys=False))
    return path


def _job(name: str, minutes: float = 1, command: str | list[str] = "true", writes: list[str] | None = None, **extra) -> dict:
    return {"name": name, "minutes": minutes, "serves": "a test", "command": command,
            "writes": writes or ["out.txt"], **extra}


def _record(archive: Path) -> dict:
    name = archive.name.removesuffix(".tar.gz")
    with tarfile.open(archive) as tar:
        for state in ("done", "failed"):
            if f"{name}/{state}.json" in tar.getnames():
                return json.loads(tar.extractfile(f"{name}/{state}.json").read())
    raise AssertionError(f"no record in {archive}")


# ------------------------------------------------------------------------------------------- the queue file


def test_the_queue_holds_the_issues_jobs_in_its_order() -> None:
    jobs = load_queue()
    names = [job.name for job in jobs]
    assert names[:2] == ["cuda_tests", "ensemble_step_bench"]
    assert all(0 < job.minutes <= MAX_MINUTES for job in jobs)

    def first(prefix: str) -> int:
        return next(i for i, name in enumerate(names) if name.startswith(prefix))

    groups = ["best_2x3_unit", "best_2x3_exactly_one", "paper_1x2_unit_s012", "paper_1x2_exactly_one", "paper_2x3_unit_s012",
              "paper_2x3_exactly_one", "paper_2x15_unit_s012", "paper_2x15_exactly_one", "best_2x15_unit",
              "best_2x15_exactly_one", "paper_1x2_unit_regretnet", "paper_2x3_unit_regretnet", "paper_2x15_unit_regretnet"]
    assert [first(g) for g in groups] == sorted(first(g) for g in groups)
    presets = {p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")}
    for job in jobs:  # a row is a preset, or the preset the job waits for
        assert job.row is None or job.row in presets or f"conf/experiment/{job.row}.yaml" in job.needs, job.name
        if job.after:  # the chunk or check after a job reads that job's folder, and its files are kept
            read = [w.split("{prev}/")[1].split()[0] for c in job.commands for w in c.split() if "{prev}/" in w]
            after = next(j for j in jobs if j.name == job.after)
            assert read and set(read) <= set(after.writes), job.name
    paper = [job for job in jobs if job.row and job.row.startswith("paper_") and job.name.endswith(("_a", "_b"))]
    assert {job.row for job in paper} == {p for p in presets if p.startswith("paper_") and "x" in p}  # every paper row
    assert all("ensemble.vary.seed=[0,1,2]" in job.commands[0] for job in paper)
    assert all("trainer.max_steps=12800" in job.commands[0] for job in paper if job.name.endswith("_b"))
    checks = [job for job in jobs if job.name.endswith(("_audit", "_strong"))]
    for job in checks:  # the audit up to 3 items, the strong adversary above
        items = int(job.row.split("x")[1].split("_")[0])
        assert all(("--audit" in c) == (items <= 3) and ("--strong" in c) == (items > 3) for c in job.commands), job.name


@pytest.mark.parametrize(("jobs", "message"), [
    ([_job("a", colour="red")], "job 1 (a): unknown key 'colour'"),
    ([{"name": "a", "minutes": 1, "serves": "x", "command": "true"}], "job 1 (a): missing 'writes'"),
    ([_job("a", minutes=9)], "job 1 (a): minutes must be a number in (0, 8], got 9"),
    ([_job("a"), _job("a")], "job 2 (a): the name a is used twice"),
    ([_job("a", after="b"), _job("b")], "job 1 (a): after: 'b' is not a job earlier in the queue"),
    ([_job("a", command="cp {prev}/x {out}")], "job 1 (a): unknown placeholder {prev}"),
    ([_job("a", command="echo {outdir}")], "job 1 (a): unknown placeholder {outdir}"),
    ([_job("A b")], "job 1 (A b): name must be lower-case letters"),
    ([_job("a", writes=["../x"])], "job 1 (a): writes must hold relative paths"),
    ([], "a non-empty list of jobs"),
])
def test_a_bad_queue_file_is_refused_in_one_line(jobs: list[dict], message: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    queue = _write_queue(tmp_path / "q.yaml", jobs)
    assert gpu_queue.main(["--queue", str(queue), "status"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# ----------------------------------------------------------------------------------------------- selection


def _jobs(tmp_path: Path) -> list[Job]:
    return load_queue(_write_queue(tmp_path / "q.yaml", [
        _job("a", 3), _job("b", 5), _job("c", 2), _job("d", 4, after="b"), _job("e", 1, needs=["conf/nothing.yaml"])]))


@pytest.mark.parametrize(("done", "minutes", "only", "chosen"), [
    (set(), 7, None, ["a", "c"]),              # b does not fit after a; d waits for b; e for its file
    (set(), 10, None, ["a", "b", "c"]),
    (set(), 14, None, ["a", "b", "c", "d"]),   # d after b, which runs before it in this window
    ({"a", "b"}, 4, None, ["c"]),
    ({"a", "b"}, 6, None, ["c", "d"]),         # b done earlier
    ({"b"}, 20, ["b", "d"], ["b", "d"]),       # named jobs run, done or not
    (set(), 2.5, None, ["c"]),
])
def test_a_window_takes_the_first_jobs_not_done_that_fit(tmp_path: Path, done: set[str], minutes: float,
                                                          only: list[str] | None, chosen: list[str]) -> None:
    selected, waiting = gpu_queue.select(_jobs(tmp_path), done, minutes, only, root=ROOT)
    assert [job.name for job in selected] == chosen
    reasons = {job.name: why for job, why in waiting}
    if only is None:
        assert reasons["e"] == "needs conf/nothing.yaml, not in the repository yet"
        assert set(reasons) | set(chosen) | done == {"a", "b", "c", "d", "e"}


def test_the_first_window_of_the_real_queue_runs_its_first_two_jobs() -> None:
    jobs = load_queue()
    selected, waiting = gpu_queue.select(jobs, set(), 7)
    assert [job.name for job in selected] == ["cuda_tests", "ensemble_step_bench"]
    # every file a real job needs is in the repository: the others wait for time only
    assert not [why for _, why in waiting if why.startswith("needs")], waiting
    selected, _ = gpu_queue.select(jobs, {"cuda_tests", "ensemble_step_bench"}, 9)
    assert [job.name for job in selected][:1] == ["best_2x3_unit_s012"]


# ---------------------------------------------------------------------------------------- records, collect


@pytest.fixture()
def events(tmp_path: Path) -> Path:
    """A TensorBoard event file with two scalar tags (100 points each), an image and text."""
    import torch
    from torch.utils.tensorboard import SummaryWriter

    folder = tmp_path / "events"
    writer = SummaryWriter(str(folder))
    for step in range(100):
        writer.add_scalar("train/revenue", step / 100, step)
        writer.add_scalar("train/regret", 1 / (step + 1), step)
    writer.add_image("heatmap", torch.rand(3, 64, 64), 0)
    writer.add_text("note", "dropped", 0)
    writer.close()
    return next(folder.glob("events.out.tfevents*"))


def _points(path: Path) -> dict[str, list[tuple[int, float]]]:
    found: dict[str, list[tuple[int, float]]] = {}
    for event in EventFileLoader(str(path)).Load():
        for value in event.summary.value:
            found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def test_pack_scalars_keeps_only_the_scalars_and_thins_them_to_the_cap(events: Path, tmp_path: Path) -> None:
    original = _points(events)
    assert "heatmap" in original and any(tag.startswith("note") for tag in original)  # more than scalars
    summary = pack_scalars(events.parent, tmp_path / "s.tar.gz", 10 << 20)
    assert summary["stride"] == 1 and summary["points"] == 200
    with tarfile.open(tmp_path / "s.tar.gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    packed = _points(tmp_path / "unpacked" / events.name)
    assert packed == {tag: original[tag] for tag in ("train/revenue", "train/regret")}
    full = (tmp_path / "s.tar.gz").stat().st_size
    thin = pack_scalars(events.parent, tmp_path / "t.tar.gz", full - 200)
    assert thin["stride"] > 1 and (tmp_path / "t.tar.gz").stat().st_size <= full - 200
    with tarfile.open(tmp_path / "t.tar.gz") as tar:
        tar.extractall(tmp_path / "thin", filter="data")
    thinned = _points(tmp_path / "thin" / events.name)["train/revenue"]
    stride = thin["stride"]
    assert thinned == [p for i, p in enumerate(original["train/revenue"]) if i % stride == 0 or i == 99]
    with pytest.raises(ValueError, match="even at one point per tag"):
        pack_scalars(events.parent, tmp_path / "u.tar.gz", 10)
    assert pack_scalars(tmp_path / "nothing", tmp_path / "v.tar.gz", 1000) is None


@pytest.fixture()
def window(tmp_path: Path, events: Path) -> tuple[list[Job], Path, Path, int, float]:
    """A window of fake jobs run by the runner: done, failed, wrote nothing, timed out, chained, chained to a failure."""
    jobs = load_queue(_write_queue(tmp_path / "q.yaml", [
        _job("ok", command=[f"mkdir -p {{out}}/run/tb && cp {events} {{out}}/run/tb/", "echo 42 > {out}/result.txt"],
             writes=["result.txt"]),
        _job("fails", command="echo boom && exit 3", writes=["x"]),
        _job("lazy", command="echo nothing", writes=["missing.txt"]),
        _job("slow", minutes=0.02, command="sleep 30", writes=["x"]),
        _job("chained", command="cat {prev}/result.txt > {out}/copy.txt", writes=["copy.txt"], after="ok"),
        _job("orphan", command="cp {prev}/x {out}/x", writes=["x"], after="fails"),
    ]))
    out, results = tmp_path / "out", tmp_path / "results"
    start = time.monotonic()
    code = gpu_queue.run(jobs, 10, out, tmp_path / "work", results=results, require_cuda=False)
    return jobs, out, results, code, time.monotonic() - start


def test_each_job_leaves_one_archive_with_its_record(window: tuple) -> None:
    jobs, out, results, code, elapsed = window
    assert code == 1 and elapsed < 20  # the slow job was stopped at its timeout (1.5 x 1.2 s), not after 30 s
    assert sorted(p.name for p in out.iterdir()) == [f"{n}.tar.gz" for n in ("chained", "fails", "lazy", "ok", "slow")]
    ok = _record(out / "ok.tar.gz")
    assert ok["state"] == "done" and ok["returncode"] == 0 and ok["reason"] is None and not ok["smoke"]
    assert ok["files"] == ["result.txt"] and ok["tensorboard"]["points"] == 200
    assert ok["environment"]["hardware"].startswith("CPU") and ok["environment"]["torch"]
    assert ok["started"] <= ok["ended"] and ok["duration_s"] >= 0 and ok["timeout_s"] == 90
    with tarfile.open(out / "ok.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["ok/done.json", "ok/log.txt", "ok/result.txt", "ok/tensorboard_scalars.tar.gz"]
        assert tar.extractfile("ok/result.txt").read() == b"42\n"
    fails, lazy, slow = (_record(out / f"{n}.tar.gz") for n in ("fails", "lazy", "slow"))
    assert fails["state"] == "failed" and fails["returncode"] == 3 and fails["reason"] == "exit 3 of: echo boom && exit 3"
    with tarfile.open(out / "fails.tar.gz") as tar:
        assert b"boom" in tar.extractfile("fails/log.txt").read()
    assert lazy["state"] == "failed" and lazy["reason"] == "wrote no missing.txt" and lazy["returncode"] == 0
    assert slow["state"] == "failed" and slow["returncode"] == 124 and slow["reason"].startswith("timed out")
    with tarfile.open(out / "chained.tar.gz") as tar:  # {prev}: ok's folder, in this window
        assert tar.extractfile("chained/copy.txt").read() == b"42\n"


def test_a_second_window_with_the_same_out_skips_what_is_done_there(window: tuple, capsys: pytest.CaptureFixture) -> None:
    jobs, out, results, _, _ = window
    assert gpu_queue.done_jobs(out, results) == {"ok", "chained"}
    capsys.readouterr()
    gpu_queue.run(jobs, 10, out, out.parent / "work2", only=None, results=results, require_cuda=False)
    printed = capsys.readouterr().out
    assert "selected: fails (1 min), lazy (1 min), slow (0.02 min), orphan (1 min)" in printed


def test_collect_keeps_done_jobs_and_refuses_failed_ones_keeping_their_logs(window: tuple) -> None:
    jobs, out, results, _, _ = window
    assert gpu_queue_collect.collect(out, jobs, results) == 1  # three refused
    assert sorted(p.name for p in results.iterdir()) == ["README.md", "chained", "failed", "ok"]
    assert (results / "ok" / "result.txt").read_text() == "42\n"
    assert json.loads((results / "ok" / "done.json").read_text())["state"] == "done"
    assert (results / "ok" / "tensorboard_scalars.tar.gz").is_file()
    for name, text in (("fails", "boom"), ("lazy", "nothing"), ("slow", "sleep 30")):
        kept = list((results / "failed" / name).glob("*/"))
        assert len(kept) == 1 and text in (kept[0] / "log.txt").read_text()
        assert json.loads((kept[0] / "failed.json").read_text())["state"] == "failed"
    text = (results / "README.md").read_text()
    assert "| 1 | `ok` |" in text and "| done |" in text
    assert "not run yet; 1 failed attempt(s)" in text
    # collected once: never replaced without --force
    (results / "ok" / "result.txt").write_text("edited")
    assert gpu_queue_collect.collect(out, jobs, results) == 1
    assert (results / "ok" / "result.txt").read_text() == "edited"
    assert len(list((results / "failed" / "fails").glob("*/"))) == 1  # the same attempt is kept once
    gpu_queue_collect.collect(out, jobs, results, force=True)
    assert (results / "ok" / "result.txt").read_text() == "42\n"
    lines = gpu_queue.status(jobs, results).splitlines()
    ok = next(line for line in lines if " ok " in line)
    assert ok.rstrip().endswith("done") and " -  " not in ok
    assert lines[-1].startswith("2 of 6 jobs done")


def test_collect_refuses_partial_damaged_smoke_and_unknown_jobs(window: tuple, tmp_path: Path) -> None:
    jobs, out, results, _, _ = window
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "fails.log").write_text("# fails started 2026-01-02T03:04:05+00:00 on NVIDIA H200 (cuda:0); timeout 1m30s\n"
                                       "$ echo boom\nhalf a line")
    (partial / "ok.tar.gz").write_bytes(b"not an archive")
    (partial / "stranger.log").write_text("# stranger started\n")
    smoke = _record(out / "ok.tar.gz") | {"smoke": True}
    buffer = io.BytesIO(json.dumps(smoke).encode())
    with tarfile.open(partial / "chained.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("chained/done.json")
        info.size = len(buffer.getvalue())
        tar.addfile(info, buffer)
    assert gpu_queue_collect.collect(partial, jobs, results) == 1
    assert not (results / "ok").exists() and not (results / "chained").exists()
    kept = results / "failed" / "fails" / "20260102T030405Z"
    assert (kept / "log.txt").read_text().endswith("half a line")
    record = json.loads((kept / "partial.json").read_text())
    assert record["state"] == "partial" and record["environment"]["hardware"] == "NVIDIA H200 (cuda:0)"
    assert not (results / "failed" / "stranger").exists() and not (results / "failed" / "chained").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no job"):
        gpu_queue_collect.collect(tmp_path / "empty", jobs, results)


def test_a_chunk_continues_from_a_collected_job(tmp_path: Path) -> None:
    jobs = load_queue(_write_queue(tmp_path / "q.yaml", [
        _job("a", command="echo 7 > {out}/ckpt", writes=["ckpt"]),
        _job("b", command="cp {prev}/ckpt {out}/ckpt", writes=["ckpt"], after="a")]))
    results = tmp_path / "results"
    assert gpu_queue.run(jobs, 5, tmp_path / "w1", tmp_path / "work1", only=["a"], results=results, require_cuda=False) == 0
    assert gpu_queue_collect.collect(tmp_path / "w1", jobs, results) == 0
    assert gpu_queue.run(jobs, 5, tmp_path / "w2", tmp_path / "work2", results=results, require_cuda=False) == 0
    record = _record(tmp_path / "w2" / "b.tar.gz")
    assert record["commands"] == [f"cp {results / 'a'}/ckpt {tmp_path / 'work2' / 'b'}/ckpt"]
    # and from its archive in the same --out, after the work folder is gone
    assert gpu_queue.run(jobs, 5, tmp_path / "w3", tmp_path / "work3", only=["a"], results=tmp_path / "none",
                         require_cuda=False) == 0
    assert gpu_queue.run(jobs, 5, tmp_path / "w3", tmp_path / "work4", only=["b"], results=tmp_path / "none",
                         require_cuda=False) == 0
    assert (tmp_path / "work4" / "b" / "ckpt").read_text() == "7\n"


def test_run_refuses_a_machine_without_cuda_unless_smoke(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert gpu_queue.main(["run", "--minutes", "5", "--out", str(tmp_path / "o")]) == 2
    assert "no CUDA device" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert gpu_queue.main(["run", "--minutes", "5", "--out", str(tmp_path / "o"), "--jobs", "nope", "--cpu-smoke"]) == 2
    assert "--jobs: nope is not a job of the queue" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ the wheels


def _wheel(folder: Path, name: str) -> Path:
    """A minimal pure-Python wheel of one module ``name`` (what ``pip wheel`` makes of hydra-core, in small)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-0.1-py3-none-any.whl"
    info = f"{name}-0.1.dist-info"
    files = {f"{name}.py": "VALUE = 42\n", f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{f},,\n" for f in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as archive:
        for file, text in files.items():
            archive.writestr(file, text)
    return path


def test_missing_hydra_is_installed_from_the_carried_wheels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_queue_env, "_importable", lambda *modules: False)  # as on the lent machine
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(ValueError, match="holds no wheels: make them with `pip wheel --no-deps -w .whl hydra-core==1.3.2"):
        gpu_queue_env.prepare_environment(tmp_path / "none", tmp_path / "site")
    _wheel(tmp_path / "wheels", "gpu_queue_probe")
    env, source = gpu_queue_env.prepare_environment(tmp_path / "wheels", tmp_path / "site")
    assert source.startswith("from wheels/ (gpu_queue_probe-0.1") and str(tmp_path / "site") in sys.path
    probe = subprocess.run(["python", "-c", "import gpu_queue_probe; print(gpu_queue_probe.VALUE)"], env=env,
                           capture_output=True, text=True, cwd=tmp_path)
    assert probe.stdout.strip() == "42", probe.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken-0.1-py3-none-any.whl").write_text("not a zip")
    with pytest.raises(ValueError, match="installing the wheels of .* failed"):
        gpu_queue_env.prepare_environment(tmp_path / "bad", tmp_path / "site2")


# ------------------------------------------------------------------------- the first two jobs, on the CPU


def test_a_dry_run_of_the_first_two_jobs_with_their_cpu_commands(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, results = tmp_path / "out", tmp_path / "results"
    argv = ["--results", str(results), "run", "--minutes", "7", "--out", str(out), "--work", str(tmp_path / "work"),
            "--cpu-smoke"]
    assert gpu_queue.main(argv) == 0
    printed = capsys.readouterr().out
    assert "selected: cuda_tests (2 min), ensemble_step_bench (5 min) = 7 of 7 min" in printed
    assert "[1/2] cuda_tests: done" in printed and "[2/2] ensemble_step_bench: done" in printed
    tests, bench = _record(out / "cuda_tests.tar.gz"), _record(out / "ensemble_step_bench.tar.gz")
    assert tests["state"] == bench["state"] == "done" and tests["smoke"] and bench["smoke"]
    junit = (tmp_path / "work" / "cuda_tests" / "junit.xml").read_text()
    assert 'tests="2"' in junit and 'failures="0"' in junit and 'errors="0"' in junit
    rows = json.loads((tmp_path / "work" / "ensemble_step_bench" / "ensemble_cuda.json").read_text())["ensemble"]
    assert [row["members"] for row in rows] == [1, 2] and all(row["ms_per_step"] > 0 for row in rows)
    assert gpu_queue_collect.collect(out, load_queue(), results) == 1  # smoke runs are no GPU results
    assert not (results / "cuda_tests").exists() and not (results / "failed").exists()


# --------------------------------------------------------------------------- what the results show


def test_the_committed_results_readme_is_current() -> None:
    assert (RESULTS / "README.md").read_text() == readme(load_queue())


def test_reproduce_shows_a_collected_row_with_its_hardware_and_date(tmp_path: Path) -> None:
    from runs.reproduce import collect, reproduction_table

    results = tmp_path / "gpu"
    record = {"state": "done", "started": "2026-03-04T05:06:07+00:00", "duration_s": 200.0,
              "environment": {"hardware": "NVIDIA H200 (cuda:0)"}}
    members = [{"seed": s, "test": {"n_samples": 1000}} for s in (0, 1, 2)]
    summary = {"revenue_mean_members_mean": 0.85, "revenue_mean_members_sd": 0.01, "revenue_mean_members_worst": 0.84,
               "regret_sum_over_agents_mean_members_mean": 0.0012, "regret_sum_over_agents_mean_members_sd": 0.0003,
               "regret_sum_over_agents_mean_members_worst": 0.0015}
    for name in ("paper_2x3_unit_s012_a", "paper_2x3_unit_s012_b", "paper_2x3_unit_s012_audit"):
        (results / name).mkdir(parents=True)
        (results / name / "done.json").write_text(json.dumps(record))
    (results / "paper_2x3_unit_s012_b" / "run").mkdir()
    metrics = {"ensemble": {"summary": summary}, "members": members, "global_step": 12800}
    (results / "paper_2x3_unit_s012_b" / "run" / "metrics.json").write_text(json.dumps(metrics))
    audited = [0.002, 0.003, 0.0025]
    for k, value in enumerate(audited):
        (results / "paper_2x3_unit_s012_audit" / f"member_{k}").mkdir()
        (results / "paper_2x3_unit_s012_audit" / f"member_{k}" / "evaluation.json").write_text(
            json.dumps({"audit": {"regret_sum_over_agents_mean": value}}))
    entries = [collect(p, tmp_path / "runs") for p in ("paper_2x3_unit", "paper_1x2_unit")]
    table = reproduction_table(entries, gpu_results=results)
    row = next(line for line in table.splitlines() if line.startswith("| `paper_2x3_unit` |"))
    cells = [cell.strip() for cell in row.strip("|").split(" | ")]
    assert cells[2] == "done" and cells[3].startswith("0.850 (0.010) [seeds 0,1,2")
    assert cells[4] == "0.0012 (0.0003)"
    assert cells[5] == f"{statistics.fmean(audited):.4f} (sd {statistics.stdev(audited):.4f}) [audit, 3 seed(s)]"
    assert cells[6:] == ["12,800", "NVIDIA H200 (cuda:0)", "2026-03-04"]
    waiting = next(line for line in table.splitlines() if line.startswith("| `paper_1x2_unit` |"))
    assert "| not run yet |" in waiting


# ---------------------------------------------------------------------- the queue's commands are accepted


def _queue_commands() -> list[tuple[str, list[str]]]:
    found = []
    for job in load_queue():
        if job.missing():
            continue  # its preset is not written yet
        for command in job.commands + (job.cpu_smoke or ()):
            argv = shlex.split(command.replace("{out}", "/tmp/PLACEHOLDER_out").replace("{prev}", "/tmp/PLACEHOLDER_prev"))
            if argv[:3] != ["python", "-m", "pytest"]:
                found.append((job.name, argv))
    return found


@pytest.mark.slow
def test_every_command_of_the_queue_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """train.py's overrides compose and pass its checks (the ensembles built), evaluate.py's and the benchmark's
    arguments parse: as tests/test_docs.py checks the documented commands."""
    from hydra import initialize_config_dir

    from tests.test_docs import dry_run

    commands = _queue_commands()
    assert {argv[1] for _, argv in commands} == {"train.py", "evaluate.py", "benchmarks/bench_step.py"}
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for name, argv in commands:
            with monkeypatch.context() as patch:
                try:
                    dry_run(argv, patch)
                except Exception as error:  # noqa: BLE001 - name the job
                    raise AssertionError(f"{name}: {shlex.join(argv)}: {error}") from error


TINY = ["data.train_size=64", "data.batch_size=32", "data.val_size=32", "data.test_size=16",
        "mechanism.allocation_net.hidden=[16,16]", "mechanism.payment_net.hidden=[16,16]", "model.train_search.steps=2",
        "model.val_search.steps=2", "model.val_search.restarts=1", "model.test_search.steps=3",
        "model.test_search.restarts=1", "trainer.log_every_n_steps=1", "trainer.enable_model_summary=false"]


def _tiny(command: str) -> str:
    """A queue command of a Table row on the CPU at a tiny budget: its chunks at 2 and 4 steps."""
    command = command.replace("trainer.accelerator=gpu", "trainer.accelerator=cpu threads=1 " + " ".join(TINY))
    command = command.replace("trainer.max_steps=6400", "trainer.max_steps=2").replace("trainer.max_steps=12800",
                                                                                        "trainer.max_steps=4")
    command = command.replace("trainer.check_val_every_n_epoch=25", "trainer.check_val_every_n_epoch=1")
    return command.replace("--samples 200 --audit --device cuda", "--samples 8 --steps 3 --restarts 1 --audit "
                           "--audit-points 5 --device cpu --threads 1")


@pytest.mark.slow
def test_a_table_rows_three_jobs_chain_on_the_cpu(tmp_path: Path) -> None:
    """paper_1x2_unit's jobs as queued (3 seeds as one ensemble; the second chunk resumes the first's checkpoint, then
    the audit of each seed), at a tiny CPU budget: run, collect, and the row's results in the table."""
    real = [job for job in load_queue() if job.row == "paper_1x2_unit"]
    assert [job.name for job in real] == ["paper_1x2_unit_s012_a", "paper_1x2_unit_s012_b", "paper_1x2_unit_s012_audit"]
    entries = [{"name": job.name, "minutes": job.minutes, "serves": job.serves, "row": job.row,
                "command": [_tiny(c) for c in job.commands], "writes": list(job.writes),
                **({"after": job.after} if job.after else {})} for job in real]
    jobs = load_queue(_write_queue(tmp_path / "q.yaml", entries))
    results = tmp_path / "results"
    assert gpu_queue.run(jobs, 20, tmp_path / "out", tmp_path / "work", results=results, require_cuda=False) == 0
    assert gpu_queue_collect.collect(tmp_path / "out", jobs, results) == 0
    metrics = json.loads((results / "paper_1x2_unit_s012_b" / "run" / "metrics.json").read_text())
    assert metrics["global_step"] == 4 and [m["seed"] for m in metrics["members"]] == [0, 1, 2]
    first = json.loads((results / "paper_1x2_unit_s012_a" / "run" / "metrics.json").read_text())
    assert first["global_step"] == 2
    done = json.loads((results / "paper_1x2_unit_s012_a" / "done.json").read_text())
    assert done["files"] == ["run/metrics.json", "run/checkpoints/last.ckpt"] and done["tensorboard"]["points"] > 0
    audits = [json.loads((results / "paper_1x2_unit_s012_audit" / f"member_{k}" / "evaluation.json").read_text())["audit"]
              for k in range(3)]
    table = readme(jobs, results)
    row = next(line for line in table.splitlines() if line.startswith("| `paper_1x2_unit` |"))
    assert "| done |" in row and "| 4 |" in row
    mean = statistics.fmean(a["regret_sum_over_agents_mean"] for a in audits)
    assert f"{mean:.4f}" in row or "<0.0001" in row


def test_the_docs_say_no_job_has_run_only_while_none_has() -> None:
    """README and docs say "not run yet" of the queue; once a job is collected they must say what it took."""
    pages = {page: page.read_text() for page in (ROOT / "README.md", ROOT / "docs" / "throughput.md", ROOT / "docs" / "results.md")}
    claims = [page.name for page, text in pages.items() if "No job has run yet" in text or "so far: not run yet" in text]
    assert claims  # the claim is made somewhere, so this test can fail
    assert not list(RESULTS.glob("*/done.json")), f"{', '.join(claims)} still say that no GPU queue job has run"
