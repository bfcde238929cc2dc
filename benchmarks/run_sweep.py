"""Train a list of runs side by side, audit each one's tested weights, and write one results file per run.

A runs file has one run per line, ``NAME DEVICE OVERRIDES...`` (``DEVICE``: ``cpu`` or ``gpu``; ``#`` starts a
comment), for example::

    best_1x2_unit_seed1        cpu experiment=best_1x2_unit seed=1
    best_2x3_unit_seed0_tau2e4 gpu experiment=best_2x3_unit seed=0 lagrangian.tau_end=0.0002

Each run is ``python train.py OVERRIDES trainer.accelerator=DEVICE`` in ``OUT/NAME``, then ``evaluate.py --audit``
(exhaustive audit, at most 3 items) of its last weights and, when the run kept one, of its regret-budget-best
checkpoint, then ``reporting.precise_revenue`` (revenue beside the baselines on a large sample) and
``reporting.audited_results`` into ``OUT/NAME/result.json`` (``result_best.json``).  At most
``--cpu-jobs`` cpu runs and ``--gpu-jobs`` gpu runs go at once (each cpu run on 1 thread); a run past
``--minutes`` of training is stopped by Lightning's ``max_time`` and tested as it stands.  At the end a table of
every run (revenue, test regret, audited regret) is printed and written to ``OUT/summary.md``::

    python benchmarks/run_sweep.py RUNS_FILE OUT [--cpu-jobs 2] [--gpu-jobs 4] [--minutes 15] [--audit-samples 300]

On a lent GPU machine, runs go through the GPU queue instead (``benchmarks/gpu_queue.yaml``, docs/throughput.md).
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
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]


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
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if len(words) < 2 or words[1] not in ("cpu", "gpu"):
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


def _audit(run: Run, folder: Path, checkpoint: Path, tag: str, args: argparse.Namespace) -> None:
    device = "cuda" if run.device == "gpu" else "cpu"
    evaluation = folder / f"eval_{tag}"
    code = _call([sys.executable, "evaluate.py", str(checkpoint), "--samples", str(args.audit_samples), "--audit",
                  "--device", device, "--threads", "1", "--no-progress", "--out", str(evaluation)],
                 folder / "audit.log", args.audit_minutes * 60)
    report = evaluation / "evaluation.json"
    if code != 0 or not report.exists():
        run.rows.append({"weights": tag, "error": f"audit exit {code}"})
        return
    precise = folder / f"precise_{tag}.json"
    _call([sys.executable, "-m", "reporting.precise_revenue", str(checkpoint), "--samples", str(args.precise_samples),
           "--threads", "1", "--out", str(precise)], folder / "audit.log", args.audit_minutes * 60)
    result = folder / ("result.json" if tag == "last" else f"result_{tag}.json")
    _call([sys.executable, "-m", "reporting.audited_results", str(folder / "metrics.json"), str(report), str(result),
           *(["--precise", str(precise)] if precise.exists() else [])], folder / "audit.log", 60)
    evaluated = json.loads(report.read_text())
    test = evaluated.get("metrics", {})
    audit = evaluated.get("audit") or {}
    large = json.loads(precise.read_text()) if precise.exists() else {}
    best = large.get("best_truthful_baseline")
    run.rows.append({"weights": tag, "revenue": test.get("revenue_mean"),
                     "precise": large.get("revenue", {}).get("mean"),
                     "vs_baseline": large["baselines"][best]["difference"]["mean"] if best else None,
                     "test_regret": test.get("regret_mean_over_agents_mean"),
                     "audited_regret": audit.get("regret_mean_over_agents_mean")})


def execute(run: Run, out: Path, args: argparse.Namespace) -> None:
    """Train, then audit, one run (its output in ``out/run.name``)."""
    folder = out / run.name
    if folder.exists():
        run.status = "skipped: folder exists"
        return
    folder.mkdir(parents=True)
    run.status = "training"
    start = time.monotonic()
    minutes = args.minutes
    command = [sys.executable, "train.py", *run.overrides, f"trainer.accelerator={run.device}", "threads=1",
               f"trainer.max_time=00:00:{minutes:02d}:00", "trainer.enable_progress_bar=false",
               "callbacks.progress=null", f"hydra.run.dir={folder}"]
    code = _call(command, folder / "train.log", minutes * 60 + args.test_minutes * 60)
    run.rows.append({"weights": "train", "exit": code, "wall_s": round(time.monotonic() - start)})
    if code != 0 or not (folder / "metrics.json").exists():
        limit = minutes + args.test_minutes
        run.status = (f"timed out: training and test over {limit} min (--test-minutes)" if code == 124
                      else f"train failed ({code})")
        return
    run.status = "auditing"
    _audit(run, folder, folder / "checkpoints" / "last.ckpt", "last", args)
    metrics = json.loads((folder / "metrics.json").read_text())
    best = (metrics.get("best_checkpoint") or "")
    if args.audit_best and best and Path(best).exists():
        _audit(run, folder, Path(best), "best", args)
    run.status = "done"


def summary(runs: Sequence[Run]) -> str:
    """A markdown table of every run's audited rows."""
    lines = ["| run | weights | test revenue | revenue (large sample) | minus best baseline | test regret | audited regret | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    fmt = lambda x: "" if x is None else f"{x:.5f}"  # noqa: E731
    for run in runs:
        for row in run.rows:
            if row["weights"] == "train":
                continue
            lines.append(f"| {run.name} | {row['weights']} | {fmt(row.get('revenue'))} | {fmt(row.get('precise'))} "
                         f"| {fmt(row.get('vs_baseline'))} | {fmt(row.get('test_regret'))} "
                         f"| {fmt(row.get('audited_regret'))} | {row.get('error', '')} |")
        if not any(row["weights"] != "train" for row in run.rows):
            lines.append(f"| {run.name} | | | | | | | {run.status} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the sweep, print and write the summary."""
    parser = argparse.ArgumentParser(prog="python benchmarks/run_sweep.py", description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="the runs file (NAME cpu|gpu OVERRIDES... per line)")
    parser.add_argument("out", type=Path, help="output folder (one subfolder per run; existing ones are skipped)")
    parser.add_argument("--cpu-jobs", type=int, default=2, help="cpu runs at once (default 2)")
    parser.add_argument("--gpu-jobs", type=int, default=4, help="gpu runs at once (default 4)")
    parser.add_argument("--minutes", type=int, default=15, help="training time cap per run (default 15)")
    parser.add_argument("--test-minutes", type=int, default=30,
                        help="time allowed for the test after training (default 30: a 2x3 test of both checkpoints "
                             "on a loaded CPU takes over 10)")
    parser.add_argument("--audit-samples", type=int, default=300, help="profiles of each audit (default 300)")
    parser.add_argument("--audit-minutes", type=int, default=30, help="time cap per audit (default 30: a 2x3 audit of 200 "
                        "profiles of the potential-payment mechanism, with its search, takes 7.5 min on a loaded CPU)")
    parser.add_argument("--no-audit-best", dest="audit_best", action="store_false",
                        help="audit only the last weights, not also the regret-budget-best checkpoint")
    parser.add_argument("--precise-samples", type=int, default=200_000,
                        help="profiles of the revenue measured without search (reporting.precise_revenue, default 200000)")
    args = parser.parse_args(argv)
    for key in ("cpu_jobs", "gpu_jobs", "minutes", "audit_samples", "precise_samples"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1")
    if not 1 <= args.minutes <= 59:
        parser.error("--minutes must be between 1 and 59")
    runs = parse_runs(args.runs.read_text())
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
    table = summary(runs)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
