"""The GPU queue's runner: each lent GPU window advances ``benchmarks/gpu_queue.yaml``, and what it finishes is kept.

    python -m benchmarks.gpu_queue run --minutes M --out DIR [--work W] [--jobs A,B] [--cpu-smoke]
    python -m benchmarks.gpu_queue collect DIR [--force]
    python -m benchmarks.gpu_queue status

``run`` (on the GPU machine) runs the pending jobs that fit in M minutes, each into ``DIR/<job>.tar.gz``
(:mod:`benchmarks.gpu_queue_job`); ``collect`` (here) unpacks them into ``results/gpu/<job>/``
(:mod:`benchmarks.gpu_queue_collect`); ``status`` lists the jobs.  docs/throughput.md ("The GPU queue").
"""

from __future__ import annotations

import argparse
import signal
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # python benchmarks/gpu_queue.py, as well as python -m benchmarks.gpu_queue
    sys.path.insert(0, str(ROOT))

from benchmarks.gpu_queue_collect import collect  # noqa: E402
from benchmarks.gpu_queue_env import WHEELS, environment, prepare_environment  # noqa: E402
from benchmarks.gpu_queue_job import Stopped, archived_record, now, run_job, say, stamp, stop  # noqa: E402
from reporting.gpu_queue_file import QUEUE, Job, load_queue  # noqa: E402
from reporting.gpu_results import DONE, RESULTS, collected, job_states  # noqa: E402
from reporting.tables import duration  # noqa: E402

__all__ = ["done_jobs", "main", "run", "select", "status"]

TIMEOUT_FACTOR = 1.5  # a job may run 1.5x its estimate (and never past the window)


def done_jobs(out: Path | None, results: Path = RESULTS, smoke: bool = False) -> set[str]:
    """The jobs collected under ``results`` and those done in the run folder ``out`` (by a smoke run: ``smoke``)."""
    done = set(collected(results))
    if out is not None and out.is_dir():
        for archive in out.glob("*.tar.gz"):
            record = archived_record(archive)
            if record is not None and record.get("state") == "done" and bool(record.get("smoke")) == smoke:
                done.add(record["job"])
    return done


def select(jobs: Sequence[Job], done: set[str], minutes: float, only: Sequence[str] | None = None,
           root: Path = ROOT) -> tuple[list[Job], list[tuple[Job, str]]]:
    """The jobs a window of ``minutes`` runs, and why each other pending job waits.

    In queue order: a job not in ``done`` (with ``only``: a job named there, done or not), whose ``needs``
    exist and whose ``after`` job is done or runs before it in this window, while the estimates fit.
    """
    chosen: list[Job] = []
    waiting: list[tuple[Job, str]] = []
    used = 0.0
    for job in jobs:
        if (job.name not in only) if only is not None else (job.name in done):
            continue
        missing = job.missing(root)
        if missing:
            waiting.append((job, f"needs {missing[0]}, not in the repository yet"))
        elif job.after and job.after not in done and job.after not in {j.name for j in chosen}:
            waiting.append((job, f"waits for {job.after}"))
        elif used + job.minutes > minutes:
            waiting.append((job, f"{job.minutes:g} min do not fit in the {minutes - used:g} min left"))
        else:
            chosen.append(job)
            used += job.minutes
    return chosen, waiting


def _prev(job: Job, work: Path, out: Path, results: Path) -> Path | None:
    """The folder of ``job.after``: done in this run's work folder, unpacked from its archive in ``out``, or collected."""
    if job.after is None:
        return None
    mine = work / job.after
    if (mine / DONE).is_file():
        return mine
    archive = out / f"{job.after}.tar.gz"
    if (archived_record(archive) or {}).get("state") == "done":  # (None: no archive, or no readable record)
        if mine.exists():
            mine.rename(work / f"{job.after}.earlier-{stamp(now().isoformat())}")
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        return mine
    return results / job.after if (results / job.after / DONE).is_file() else None


def run(jobs: Sequence[Job], minutes: float, out: Path, work: Path | None = None, only: Sequence[str] | None = None,
        smoke: bool = False, results: Path = RESULTS, wheels: Path = WHEELS, require_cuda: bool = True) -> int:
    """``run``: the window's jobs, one after the other (module docstring); 0 if all are done, 1 if one failed."""
    import torch

    if not (0 < minutes <= 600):
        raise ValueError(f"--minutes must be in (0, 600], got {minutes:g}")
    unknown = [name for name in only or () if name not in {job.name for job in jobs}]
    if unknown:
        raise ValueError(f"--jobs: {unknown[0]} is not a job of the queue")
    cuda = torch.cuda.is_available() and not smoke
    if require_cuda and not smoke and not cuda:
        raise ValueError("no CUDA device: the queue's jobs need a GPU (--cpu-smoke runs their tiny CPU versions)")
    if smoke:
        lacking = [job.name for job in jobs if job.cpu_smoke is None and job.name in (only or ())]
        if lacking:
            raise ValueError(f"--cpu-smoke: job {lacking[0]} has no cpu_smoke command")
        jobs = [job for job in jobs if job.cpu_smoke is not None]
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_queue_work_")) if work is None else work
    work.mkdir(parents=True, exist_ok=True)
    env, hydra = prepare_environment(wheels)
    machine = environment(cuda, hydra)
    chosen, waiting = select(jobs, done_jobs(out, results, smoke), minutes, only)
    say(f"{minutes:g}-minute window on {machine['hardware']}: torch {machine['torch']}, CUDA {machine['cuda']}, "
         f"Triton {machine['triton'] or 'missing (the fast step runs its torch kernels)'}, hydra {hydra}; "
         f"work folder {work}{'; CPU smoke run' if smoke else ''}")
    say(f"selected: {', '.join(f'{j.name} ({j.minutes:g} min)' for j in chosen) or 'nothing'}"
         f" = {sum(j.minutes for j in chosen):g} of {minutes:g} min")
    for job, why in waiting[:6]:
        say(f"not now: {job.name}: {why}")
    if len(waiting) > 6:
        say(f"not now: {len(waiting) - 6} more")
    start = time.monotonic()
    failed: list[str] = []
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        for index, job in enumerate(chosen, 1):
            label = f"[{index}/{len(chosen)}] {job.name}"
            left = start + minutes * 60 - time.monotonic()
            prev = _prev(job, work, out, results)
            if job.after and (job.after in failed or prev is None):
                say(f"{label}: skipped, its after job {job.after} is not done")
                failed.append(job.name)
                continue
            if job.minutes * 60 > left:
                say(f"{label}: skipped, {duration(left)} left in the window for {job.minutes:g} min")
                continue
            timeout = min(job.minutes * 60 * TIMEOUT_FACTOR, left)
            say(f"{label}: started (estimate {job.minutes:g} min, timeout {duration(timeout)}), log {out / (job.name + '.log')}")
            record = run_job(job, work, out, prev, timeout, smoke, env, machine, label)
            if record["state"] != "done":
                failed.append(job.name)
            say(f"{label}: {record['state']} in {duration(record['duration_s'])}"
                 f"{'' if record['reason'] is None else ': ' + record['reason']} -> {out / (job.name + '.tar.gz')}")
    except (Stopped, KeyboardInterrupt):
        say("stopped: the job in progress is recorded as failed; the window ends")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    say(f"window over after {duration(time.monotonic() - start)}: {len(chosen) - len(failed)} done, {len(failed)} "
         f"failed or skipped; then, where the results land: python -m benchmarks.gpu_queue collect {out}")
    return 1 if failed else 0


def status(jobs: Sequence[Job], results: Path = RESULTS) -> str:
    """``status``: one line per job (done or not, last duration, date), then the totals."""
    states = job_states(jobs, results)
    width = max(len(s["job"]) for s in states)
    lines = [f"{'#':>3}  {'job':<{width}}  {'estimate':>8}  {'took':>7}  {'date':<10}  state"]
    lines += [f"{number:>3}  {s['job']:<{width}}  {s['estimate']:>8}  {s['took']:>7}  {s['date']:<10}  {s['state']}"
              for number, s in enumerate(states, 1)]
    pending = [job for job, s in zip(jobs, states) if s["state"] != "done"]
    lines.append(f"{len(jobs) - len(pending)} of {len(jobs)} jobs done; {sum(j.minutes for j in pending):g} min of "
                 f"estimates pending ({QUEUE.relative_to(ROOT) if QUEUE.is_relative_to(ROOT) else QUEUE})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``run``, ``collect`` or ``status`` (module docstring); exit 2 with one line for bad input."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_queue", description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", type=Path, default=QUEUE, help="the queue file (default benchmarks/gpu_queue.yaml)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="collected jobs (default results/gpu)")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the first jobs not yet done that fit in --minutes (on the GPU)")
    run_parser.add_argument("--minutes", type=float, required=True, help="the window: minutes the jobs may take in all")
    run_parser.add_argument("--out", type=Path, required=True, help="one <job>.tar.gz per finished job (e.g. $OUT/queue)")
    run_parser.add_argument("--work", type=Path, default=None,
                            help="the jobs' folders, checkpoints and full logs (default: a new temporary folder)")
    run_parser.add_argument("--jobs", default=None, help="comma-separated job names: only these, done or not, in queue order")
    run_parser.add_argument("--cpu-smoke", action="store_true", help="run each job's tiny cpu_smoke command instead, no GPU")
    collect_parser = commands.add_parser("collect", help="finished jobs of a run's --out into results/gpu/<job>/")
    collect_parser.add_argument("out", type=Path, help="the --out folder of a run")
    collect_parser.add_argument("--force", action="store_true", help="replace a job already in results/gpu")
    commands.add_parser("status", help="every job: done or not, how long it took when it last ran")
    args = parser.parse_args(argv)
    try:
        jobs = load_queue(args.queue)
        if args.command == "run":
            only = None if args.jobs is None else [name.strip() for name in args.jobs.split(",") if name.strip()]
            return run(jobs, args.minutes, args.out, args.work, only, args.cpu_smoke, args.results)
        if args.command == "collect":
            return collect(args.out, jobs, args.results, args.force)
        print(status(jobs, args.results))
        return 0
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
