"""The GPU queue's ``collect``: finished jobs of a run's folder into ``results/gpu/`` (what it keeps and what it
refuses: :mod:`benchmarks.gpu_queue`)."""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Sequence

from benchmarks.gpu_queue_job import LOG, now, say, stamp
from utils.atomic import write_json, write_text_atomic
from reporting.gpu_queue_file import QUEUE, Job
from reporting.gpu_results import FAILED_DIR, RESULTS, readme
from reporting.tables import duration

__all__ = ["collect"]


def _keep_failed(name: str, record: dict[str, Any], log: Path | None, results: Path) -> Path:
    """Keep a refused job's log and record under ``results/failed/<job>/<start>/``."""
    folder = results / FAILED_DIR / name / stamp(record.get("started") or now().isoformat())
    folder.mkdir(parents=True, exist_ok=True)
    if log is not None and log.is_file():
        shutil.copyfile(log, folder / LOG)
    write_json(folder / f"{record['state']}.json", record)
    return folder


def _partial_record(name: str, log: Path) -> dict[str, Any]:
    """The record of a job whose window ended while it ran, from its live log's first line."""
    first = log.read_text(errors="replace").split("\n", 1)[0]
    words = first.split()
    started = words[3] if len(words) > 3 and words[2] == "started" else None
    return {"job": name, "state": "partial", "reason": "the window ended while it ran (its log, no archive)",
            "started": started, "duration_s": None, "environment": {"hardware": " ".join(words[5:]).split(";")[0] or "?"}}


def _refused(line: str) -> bool:
    say(line)
    return True


def _collect_archive(archive: Path, names: set[str], results: Path, force: bool) -> bool:
    """Unpack one job's archive into ``results/<job>/``; ``True`` if it was refused (a line says why)."""
    name = archive.name.removesuffix(".tar.gz")
    if name not in names:
        return _refused(f"{name}: refused, not a job of {QUEUE.name}")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(scratch, filter="data")
            unpacked = Path(scratch) / name
            state_file = next((unpacked / f for f in ("done.json", "failed.json") if (unpacked / f).is_file()))
            record = json.loads(state_file.read_text())
            absent = [f for f in record["files"] if not (unpacked / f).is_file()]
        except (tarfile.TarError, OSError, StopIteration, ValueError, KeyError) as error:
            return _refused(f"{name}: refused, its archive is damaged or incomplete ({type(error).__name__})")
        if record.get("smoke"):
            return _refused(f"{name}: refused, a CPU smoke run (--cpu-smoke), not a GPU result")
        if record["state"] != "done" or absent:
            reason = record["reason"] if not absent else f"its archive lacks {absent[0]}"
            kept = _keep_failed(name, {**record, "state": "failed", "reason": reason}, unpacked / LOG, results)
            return _refused(f"{name}: refused ({reason}); its log is kept in {kept}")
        if (results / name).exists() and not force:
            return _refused(f"{name}: refused, {results / name} exists (--force replaces it)")
        if (results / name).exists():
            shutil.rmtree(results / name)
        shutil.copytree(unpacked, results / name)
    say(f"{name}: collected into {results / name} ({duration(record['duration_s'])} on {record['environment']['hardware']})")
    return False


def collect(out: Path, jobs: Sequence[Job], results: Path = RESULTS, force: bool = False) -> int:
    """``collect``: each finished job of ``out`` into ``results/<job>/`` (module docstring); 1 if one was refused."""
    if not out.is_dir():
        raise ValueError(f"{out} is not a folder (the --out of a run)")
    names = {job.name for job in jobs}
    archives = sorted(out.glob("*.tar.gz"))
    logs = [log for log in sorted(out.glob("*.log")) if not (out / f"{log.stem}.tar.gz").exists()]
    if not archives and not logs:
        raise ValueError(f"{out} holds no job of a run (<job>.tar.gz, or <job>.log of one that did not finish)")
    refused = sum(_collect_archive(archive, names, results, force) for archive in archives) + len(logs)
    for log in logs:  # of a job the window ended during, or of no job: refused
        if log.stem not in names:
            say(f"{log.stem}: refused, not a job of {QUEUE.name}")
        else:
            kept = _keep_failed(log.stem, _partial_record(log.stem, log), log, results)
            say(f"{log.stem}: refused, partial (the window ended while it ran); its log is kept in {kept}")
    write_text_atomic(results / "README.md", readme(jobs, results))
    say(f"wrote {results / 'README.md'}")
    return 1 if refused else 0
