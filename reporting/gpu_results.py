"""The GPU queue's collected jobs (``results/gpu/<job>/``) and the tables that show them.

``python -m benchmarks.gpu_queue collect`` copies each finished job into ``results/gpu/<job>/`` with its record
``done.json``; a refused job's log goes to ``results/gpu/failed/<job>/<start>/`` (docs/throughput.md).  This module
reads them back: :func:`jobs_table` (one row per queue job), :func:`rows_table` (one row per table row the queue
serves, appended by ``runs.reproduce`` to its table) and :func:`readme`, ``results/gpu/README.md`` with both.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Sequence

from runs.seeds import row_test
from reporting.gpu_queue_file import QUEUE, Job
from reporting.tables import duration, markdown_table, mean_std, number

__all__ = ["RESULTS", "attempts", "collected", "job_states", "jobs_table", "readme", "rows_table"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "gpu"
DONE, FAILED_DIR = "done.json", "failed"
NOT_RUN = "not run yet"


def collected(results: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """``{job: its done record}`` for every job collected under ``results``."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(results.glob(f"*/{DONE}"))}


def attempts(results: Path = RESULTS) -> dict[str, list[dict[str, Any]]]:
    """``{job: its failed or partial records, oldest first}`` from ``results/failed/<job>/<start>/``."""
    found: dict[str, list[dict[str, Any]]] = {}
    for record in sorted((results / FAILED_DIR).glob("*/*/*.json")):
        found.setdefault(record.parent.parent.name, []).append(json.loads(record.read_text()))
    return found


def _date(record: dict[str, Any]) -> str:
    return str(record.get("started", ""))[:10]


def _state(job: Job, done: dict[str, dict[str, Any]], failed: dict[str, list[dict[str, Any]]], root: Path) -> str:
    if job.name in done:
        return "done"
    missing = job.missing(root)
    notes = [f"waits for {missing[0]}"] if missing else []
    tries = failed.get(job.name, [])
    if tries:
        notes.append(f"{len(tries)} failed attempt(s), last {_date(tries[-1])}: {tries[-1].get('reason', '')}")
    return "; ".join([NOT_RUN, *notes])


def job_states(jobs: Sequence[Job], results: Path = RESULTS, root: Path = ROOT) -> list[dict[str, str]]:
    """Per queue job, in order: name, serves, estimate, state, time taken when it last ran, hardware, date."""
    done, failed = collected(results), attempts(results)
    states = []
    for job in jobs:
        record = done.get(job.name) or (failed.get(job.name) or [None])[-1]
        states.append({
            "job": job.name, "serves": job.serves, "estimate": f"{job.minutes:g} min",
            "state": _state(job, done, failed, root),
            "took": "-" if record is None or record.get("duration_s") is None else duration(record["duration_s"]),
            "hardware": "-" if record is None else record.get("environment", {}).get("hardware", "?"),
            "date": "-" if record is None else _date(record),
        })
    return states


def jobs_table(jobs: Sequence[Job], results: Path = RESULTS, root: Path = ROOT) -> str:
    """:func:`job_states` as a markdown table."""
    rows = [[number_, f"`{s['job']}`", s["serves"], s["estimate"], s["state"], s["took"], s["hardware"], s["date"]]
            for number_, s in enumerate(job_states(jobs, results, root), 1)]
    return markdown_table(("#", "job", "serves", "estimate", "state", "took (last run)", "hardware", "date"), rows)


def _checked(folders: Sequence[Path], block: str) -> str:
    """Mean over the seeds of the ``audit`` or ``strong`` block's regret (sum over agents) in
    ``member_*/evaluation.json``."""
    paths = [path for folder in folders for path in sorted(folder.glob("member_*/evaluation.json"))]
    blocks = (json.loads(path.read_text()).get(block) for path in paths)
    values = [found["regret_sum_over_agents_mean"] for found in blocks if found]
    if not values:
        return "-"
    spread = f" (sd {number(statistics.stdev(values), 4)})" if len(values) > 1 else ""
    return f"{number(statistics.fmean(values), 4)}{spread} [{block}, {len(values)} seed(s)]"


def _row(preset: str, row_jobs: Sequence[Job], done: dict[str, dict[str, Any]], results: Path) -> list[str]:
    names = ", ".join(f"`{job.name}`" for job in row_jobs)
    finished = [job for job in row_jobs if job.name in done]
    if not finished:
        return [f"`{preset}`", names, NOT_RUN, "", "", "", "", "", ""]
    pending = [job.name for job in row_jobs if job.name not in done]
    state = "done" if not pending else f"partly run ({', '.join(pending)} not yet)"
    folders = [results / job.name for job in finished]
    found = [path for path in (f / "run" / "metrics.json" for f in reversed(folders)) if path.is_file()]
    metrics = json.loads(found[0].read_text()) if found else None
    revenue = regret = steps = ""
    if metrics is not None:
        tested, note = row_test(metrics)
        revenue = mean_std(tested["revenue_mean"], tested["revenue_std"]) + note
        regret = mean_std(tested["regret_sum_over_agents_mean"], tested["regret_sum_over_agents_std"], 4)
        steps = f"{metrics['global_step']:,}" if isinstance(metrics.get("global_step"), int) else "?"
    checked = " ".join(c for c in (_checked(folders, "audit"), _checked(folders, "strong")) if c != "-") or "-"
    last = done[finished[-1].name]
    return [f"`{preset}`", names, state, revenue, regret, checked, steps,
            last.get("environment", {}).get("hardware", "?"), _date(last)]


def rows_table(presets: Sequence[str], jobs: Sequence[Job], results: Path = RESULTS) -> str:
    """A markdown table with one row per preset in ``presets`` that a queue job serves (``row:``), in that order."""
    done = collected(results)
    rows = [_row(preset, [job for job in jobs if job.row == preset], done, results)
            for preset in presets if any(job.row == preset for job in jobs)]
    headers = ("row (preset)", "GPU jobs", "state", "test revenue (std)", "test regret, sum over agents (std)",
               "audited / strong regret, mean over seeds", "steps reached", "hardware", "date")
    return markdown_table(headers, rows)


def readme(jobs: Sequence[Job], results: Path = RESULTS, root: Path = ROOT) -> str:
    """The text of ``results/gpu/README.md``: the rows the queue serves, then every job."""
    presets = list(dict.fromkeys(job.row for job in jobs if job.row))
    queue = QUEUE.relative_to(ROOT).as_posix() if QUEUE.is_relative_to(ROOT) else str(QUEUE)
    return (f"# GPU queue results\n\nGenerated by `python -m benchmarks.gpu_queue collect` from `{queue}` and the "
            "records here (`<job>/done.json`: hardware, torch, start and end; failed attempts' logs under `failed/`). "
            "How to run the queue: [docs/throughput.md](../../docs/throughput.md#the-gpu-queue). Test revenue and "
            "regret: the run's own test (the paper's protocol, 1000 profiles), mean over the seeds with the sd over "
            "the seeds; audited and strong regret: `evaluate.py --audit` / `--strong` on 200 test profiles per seed."
            f"\n\n## Table rows\n\n{rows_table(presets, jobs, results)}\n\n"
            f"## Jobs, in queue order\n\n{jobs_table(jobs, results, root)}\n")
