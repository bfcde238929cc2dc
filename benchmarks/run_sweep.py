"""Train a list of runs side by side, audit each one's tested weights, and write one results file per run
(docs/stable_lagrangian.md, "Running the seeds": the runs file, what a rerun keeps, the exit status).

A runs file has one run per line, ``NAME DEVICE OVERRIDES...`` (``DEVICE``: ``cpu`` or ``gpu``; ``#`` starts a
comment), e.g. ``best_1x2_unit_seed1 cpu experiment=best_1x2_unit seed=1``.  Each run is ``python train.py
OVERRIDES trainer.accelerator=DEVICE threads=1`` in ``OUT/NAME``, stopped after ``--minutes``, then audited
(``evaluate.py --audit``, or ``--adversary NAME``; ``reporting.precise_revenue``, ``reporting.audited_results``);
``OUT/summary.md`` gets a table of every run.

    python benchmarks/run_sweep.py RUNS_FILE OUT [--cpu-jobs 2] [--gpu-jobs 4] [--minutes 15] [--audit-samples 300]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the project's packages
    sys.path.insert(0, str(ROOT))

from utils.atomic import check_writable, write_text_atomic  # noqa: E402

DEVICES = ("cpu", "gpu")
SUMMARY = "summary.md"


@dataclass
class Run:
    """One line of the runs file."""

    name: str
    device: str
    overrides: list[str]
    status: str = "pending"
    rows: list[dict] = field(default_factory=list)


def parse_runs(text: str) -> list[Run]:
    """The runs of a runs file; ``ValueError`` naming the line for a bad one."""
    runs, names = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as error:  # e.g. an unclosed quote
            raise ValueError(f"line {number}: {error} in {line.strip()!r}") from error
        if not words:
            continue
        if len(words) < 2 or words[1] not in DEVICES:
            raise ValueError(f"line {number}: expected 'NAME cpu|gpu OVERRIDES...', got {line.strip()!r}")
        if words[0] in names or "/" in words[0]:
            raise ValueError(f"line {number}: run name {words[0]!r} is repeated or contains '/'")
        names.add(words[0])
        runs.append(Run(words[0], words[1], words[2:]))
    if not runs:
        raise ValueError("the runs file names no run")
    return runs


def _call(command: list[str], log: Path, timeout: float) -> int:
    with log.open("a") as out:
        out.write("$ " + shlex.join(command) + "\n")
        out.flush()
        try:
            return subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            out.write(f"timed out after {timeout:.0f} s\n")
            return 124


def _row(folder: Path, tag: str) -> dict | None:
    """The summary row of the ``tag`` weights (last, best) of the run in ``folder``, from the files its audit wrote
    (``None``: no evaluation there)."""
    report = folder / f"eval_{tag}" / "evaluation.json"
    if not report.is_file():
        return None
    evaluated = json.loads(report.read_text())
    test, audit = evaluated.get("metrics", {}), evaluated.get("audit") or evaluated.get("strong") or {}
    precise = folder / f"precise_{tag}.json"
    large = json.loads(precise.read_text()) if precise.is_file() else {}
    best = large.get("best_truthful_baseline")
    return {"weights": tag, "revenue": test.get("revenue_mean"), "precise": large.get("revenue", {}).get("mean"),
            "vs_baseline": large["baselines"][best]["difference"]["mean"] if best else None,
            "test_regret": test.get("regret_mean_over_agents_mean"),
            "audited_regret": audit.get("regret_mean_over_agents_mean")}


def _audit_flags(args: argparse.Namespace) -> list[str]:
    """evaluate.py's flags for the audit: the grid audit, or ``--adversary`` after a test search of
    ``--test-steps`` from the truth and ``--test-restarts`` random starts (evaluate.py's defaults where unset)."""
    if args.adversary is None:
        return ["--audit"]
    search = {"--steps": args.test_steps, "--restarts": args.test_restarts}
    return [*(item for flag, value in search.items() if value is not None for item in (flag, str(value))),
            "--adversary", args.adversary]


def _audit(run: Run, folder: Path, checkpoint: Path, tag: str, args: argparse.Namespace) -> None:
    """Audit the ``tag`` weights at ``checkpoint``, measure their precise revenue, write their results file and
    append their summary row (with the errors of the steps that failed) to ``run.rows``."""
    evaluation, precise = folder / f"eval_{tag}", folder / f"precise_{tag}.json"
    call = partial(_call, log=folder / "audit.log", timeout=args.audit_minutes * 60)
    code = call([sys.executable, "evaluate.py", str(checkpoint), "--samples", str(args.audit_samples), *_audit_flags(args),
                 "--device", "cuda" if run.device == "gpu" else "cpu", "--threads", "1", "--no-progress", "--out",
                 str(evaluation)])
    if code != 0 or not (evaluation / "evaluation.json").exists():
        run.rows.append({"weights": tag, "error": f"audit exit {code}"})
        return
    code = call([sys.executable, "-m", "reporting.precise_revenue", str(checkpoint), "--samples",
                 str(args.precise_samples), "--threads", "1", "--out", str(precise)])
    errors = [f"precise revenue exit {code}"] if code != 0 else []
    result = folder / ("result.json" if tag == "last" else f"result_{tag}.json")
    code = call([sys.executable, "-m", "reporting.audited_results", str(folder / "metrics.json"),
                 str(evaluation / "evaluation.json"), str(result),
                 *(["--precise", str(precise)] if precise.exists() else [])], timeout=60)
    errors += [f"audited results exit {code}"] if code != 0 else []
    row = _row(folder, tag)
    run.rows.append({**row, "error": "; ".join(errors)} if errors else row)


def execute(run: Run, out: Path, args: argparse.Namespace) -> None:
    """Train, then audit, one run (its output in ``out/run.name``); a folder of an earlier sweep is not run again:
    its rows come from the files its audit wrote."""
    folder = out / run.name
    if folder.exists():
        run.rows = [row for tag in ("last", "best") if (row := _row(folder, tag)) is not None]
        run.status = "done before" if run.rows else "skipped: its folder exists without results (move it away to rerun)"
        return
    folder.mkdir(parents=True)
    run.status = "training"
    start, limit = time.monotonic(), args.minutes + args.test_minutes
    command = [sys.executable, "train.py", *run.overrides, f"trainer.accelerator={run.device}", "threads=1",
               f"trainer.max_time=00:00:{args.minutes:02d}:00", "trainer.enable_progress_bar=false",
               "callbacks.progress=null", f"hydra.run.dir={folder}"]
    code = _call(command, folder / "train.log", limit * 60)
    run.rows.append({"weights": "train", "exit": code, "wall_s": round(time.monotonic() - start)})
    if code != 0 or not (folder / "metrics.json").exists():
        run.status = (f"timed out: training and test over {limit} min (--test-minutes)" if code == 124
                      else f"train failed ({code})")
        return
    run.status = "auditing"
    _audit(run, folder, folder / "checkpoints" / "last.ckpt", "last", args)
    best = json.loads((folder / "metrics.json").read_text()).get("best_checkpoint") or ""
    if args.audit_best and best and Path(best).exists():
        _audit(run, folder, Path(best), "best", args)
    run.status = "done"


def failed(run: Run) -> bool:
    """Whether any part of the run's work failed (training, an audit, the precise revenue, the results file)."""
    return run.status not in ("done", "done before") or any(row.get("error") for row in run.rows)


HEADER = ["| run | weights | test revenue | revenue (large sample) | minus best baseline | test regret | audited regret | note |",
          "| --- | --- | --- | --- | --- | --- | --- | --- |"]
COLUMNS = ("revenue", "precise", "vs_baseline", "test_regret", "audited_regret")  # of a row, after run and weights


def _name(line: str) -> str:
    """The run name of a summary table row."""
    return line.split("|")[1].strip()


def summary(runs: Sequence[Run], earlier: str = "") -> str:
    """A markdown table of every run's audited rows, merged with the ``earlier`` summary of the same folder: its
    rows of runs not in ``runs``, and of runs skipped without results, are kept."""
    fmt = lambda x: "" if x is None else f"{x:.5f}"  # noqa: E731
    names = {run.name for run in runs if run.rows or run.status == "done before"}
    kept = [line for line in earlier.splitlines() if line.startswith("| ") and line not in HEADER
            and _name(line) not in names]
    lines = [*HEADER, *kept]
    for run in runs:
        if any(_name(line) == run.name for line in kept):
            continue
        audited = [row for row in run.rows if row["weights"] != "train"]
        for row in audited:
            cells = " | ".join(fmt(row.get(key)) for key in COLUMNS)
            lines.append(f"| {run.name} | {row['weights']} | {cells} | {row.get('error', '')} |")
        if not audited:
            lines.append(f"| {run.name} | | | | | | | {run.status} |")
    return "\n".join(lines)


def check_runs(runs: Sequence[Run]) -> None:
    """Every run's configuration passes train.py's checks (this machine's GPUs and cores aside), before any run
    starts; one-line ``ValueError`` naming the run otherwise."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    from utils.checks import one_line
    from runs.members import build_run

    for run in runs:
        overrides = [*run.overrides, f"trainer.accelerator={run.device}", "threads=1", "output_dir=."]
        try:
            with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
                cfg = compose("config", overrides=overrides)
            build_run(cfg, check_machine=False)
        except (ValueError, HydraException) as error:
            raise ValueError(f"run {run.name}: {one_line(error)}") from error


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the sweep, print and write the summary."""
    parser = argparse.ArgumentParser(prog="python benchmarks/run_sweep.py", description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="the runs file (NAME cpu|gpu OVERRIDES... per line)")
    parser.add_argument("out", type=Path, help="output folder (one subfolder per run; existing ones are skipped)")
    parser.add_argument("--cpu-jobs", type=int, default=2, help="cpu runs at once (default 2)")
    parser.add_argument("--gpu-jobs", type=int, default=4, help="gpu runs at once (default 4)")
    parser.add_argument("--minutes", type=int, default=15, help="training time cap per run (default 15)")
    parser.add_argument("--test-minutes", type=int, default=30, help="time allowed for the test after training "
                        "(default 30: a 2x3 test of both checkpoints on a loaded CPU takes over 10)")
    parser.add_argument("--audit-samples", type=int, default=300, help="profiles of each audit (default 300)")
    parser.add_argument("--audit-minutes", type=int, default=30, help="time cap per audit (default 30: a 2x3 audit of 200 "
                        "profiles of the potential-payment mechanism, with its search, takes 7.5 min on a loaded CPU)")
    adversaries = sorted(path.stem for path in (ROOT / "conf" / "adversary").glob("*.yaml"))
    parser.add_argument("--adversary", metavar="NAME", choices=adversaries, help="audit with evaluate.py's adversary NAME (conf/adversary/, "
                        "e.g. strong_reduced: the results file's 'strong' block) instead of the grid audit")
    parser.add_argument("--test-steps", type=int, help="with --adversary: the test search's steps (default: evaluate.py's)")
    parser.add_argument("--test-restarts", type=int,
                        help="with --adversary: the test search's random starts (default: evaluate.py's)")
    parser.add_argument("--no-audit-best", dest="audit_best", action="store_false",
                        help="audit only the last weights, not also the regret-budget-best checkpoint")
    parser.add_argument("--no-check", action="store_true",
                        help="do not check every run's configuration before the first starts (train.py still checks each)")
    parser.add_argument("--precise-samples", type=int, default=200_000,
                        help="profiles of the revenue measured without search (reporting.precise_revenue, default 200000)")
    args = parser.parse_args(argv)
    for key in ("cpu_jobs", "gpu_jobs", "audit_samples", "precise_samples"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1")
    if args.adversary is None and (args.test_steps, args.test_restarts) != (None, None):
        parser.error("--test-steps and --test-restarts need --adversary (the grid audit keeps evaluate.py's test search)")
    if min(value for value in (args.test_steps, args.test_restarts, 0) if value is not None) < 0:
        parser.error("--test-steps and --test-restarts must be >= 0")
    if not 1 <= args.minutes <= 59:
        parser.error("--minutes must be between 1 and 59")
    try:
        runs = parse_runs(args.runs.read_text())
    except (OSError, ValueError) as error:  # (a UnicodeDecodeError is a ValueError)
        print(f"error: runs file {args.runs}: {getattr(error, 'strerror', None) or error}", file=sys.stderr)
        return 2
    try:
        check_writable(args.out, "out", folder=True)
        if not args.no_check:
            check_runs(runs)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    slots = {"cpu": threading.Semaphore(args.cpu_jobs), "gpu": threading.Semaphore(args.gpu_jobs)}

    def worker(run: Run) -> None:
        with slots[run.device]:
            execute(run, args.out, args)
            print(f"[{time.strftime('%H:%M:%S')}] {run.name}: {run.status} {run.rows}", flush=True)

    threads = [threading.Thread(target=worker, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    path = args.out / SUMMARY
    table = summary(runs, path.read_text() if path.is_file() else "")
    write_text_atomic(path, table + "\n")
    print(table)
    bad = [f"{run.name} ({run.status})" for run in runs if failed(run)]
    if bad:
        print(f"error: {len(bad)} of {len(runs)} run(s) failed or were skipped without results: {', '.join(bad)}; "
              f"{path} lists them and every result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
