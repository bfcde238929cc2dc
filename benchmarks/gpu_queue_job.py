"""One job of the GPU queue run in its folder with a timeout, its record written, and what it keeps packed into its
archive ``<job>.tar.gz`` (log, record, ``writes`` files, TensorBoard scalars: :mod:`benchmarks.gpu_queue`)."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import IO, Any

from utils.atomic import write_json
from reporting.gpu_queue_file import ROOT, Job
from reporting.scalar_events import pack_scalars
from reporting.tables import duration

__all__ = ["LOG", "Stopped", "archived_record", "now", "run_job", "say", "stamp", "stop"]

HEARTBEAT_S = 30.0  # a progress line this often while a job runs
KEEP_BYTES = 8 << 20  # the largest file a job may keep (the lent machine returns files of up to 16 MiB)
SCALARS_BYTES = 2 << 20  # the TensorBoard scalars of one job, packed
LOG_HEAD, LOG_TAIL = 256 << 10, 768 << 10  # a longer log keeps its first and last bytes
SCALARS = "tensorboard_scalars.tar.gz"
LOG = "log.txt"


def now() -> datetime.datetime:
    """The time in UTC (records and folder names)."""
    return datetime.datetime.now(datetime.timezone.utc)


def say(text: str) -> None:
    """Print ``text`` as a progress line with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def stamp(iso: str) -> str:
    """``2026-11-04T12:00:00+00:00`` -> ``20261104T120000Z`` (a folder name)."""
    return iso[:19].replace("-", "").replace(":", "") + "Z"


def archived_record(archive: Path) -> dict[str, Any] | None:
    """The record in a job's archive (``None``: no readable record)."""
    name = archive.name.removesuffix(".tar.gz")
    try:
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
            member = next((m for m in (f"{name}/done.json", f"{name}/failed.json") if m in names), None)
            return None if member is None else json.loads(tar.extractfile(member).read())
    except (tarfile.TarError, OSError, ValueError, AttributeError):  # AttributeError: not a regular file
        return None


class Stopped(Exception):
    """The runner got SIGTERM: the job in progress is stopped and recorded as failed, and the window ends."""


def stop(signum: int, frame: Any) -> None:
    """The runner's SIGTERM handler: raise :class:`Stopped`."""
    raise Stopped(signal.Signals(signum).name)


def _last_line(path: Path) -> str:
    with path.open("rb") as stream:
        stream.seek(max(0, path.stat().st_size - 2000))
        lines = [line.strip() for line in stream.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


def _kill(process: subprocess.Popen) -> None:
    """SIGTERM to the job's process group (train.py then saves a checkpoint), SIGKILL after 30 s."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _execute(command: str, log: IO[str], log_path: Path, env: dict[str, str], deadline: float, label: str,
             started: float) -> tuple[int, str | None]:
    """Run one shell command of a job until ``deadline`` (monotonic); ``(exit status, why it failed or None)``."""
    log.write(f"$ {command}\n")
    log.flush()
    process = subprocess.Popen(["bash", "-c", command], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                               preexec_fn=os.setpgrp)  # its own group (killed as one), in the runner's session
    try:
        while True:
            left = deadline - time.monotonic()
            try:
                code = process.wait(max(0.0, min(HEARTBEAT_S, left)))
                return code, None if code == 0 else f"exit {code} of: {command}"
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    _kill(process)
                    return 124, f"timed out after {duration(time.monotonic() - started)}"
                say(f"{label}: {duration(time.monotonic() - started)} elapsed | {_last_line(log_path)}")
    except BaseException:
        _kill(process)
        raise


def _keep_log(live: Path, target: Path) -> None:
    size = live.stat().st_size
    if size <= LOG_HEAD + LOG_TAIL:
        shutil.copyfile(live, target)
        return
    with live.open("rb") as source, target.open("wb") as out:
        out.write(source.read(LOG_HEAD))
        out.write(f"\n[... {size - LOG_HEAD - LOG_TAIL} bytes of the log left out ...]\n".encode())
        source.seek(size - LOG_TAIL)
        out.write(source.read())


def _kept(job: Job, folder: Path) -> tuple[list[str], str | None]:
    """The files of ``job.writes`` in ``folder`` (relative paths), and why the job fails for want of one."""
    files: list[str] = []
    for pattern in job.writes:
        found = sorted(p for p in folder.glob(pattern) if p.is_file())
        if not found:
            return files, f"wrote no {pattern}"
        for path in found:
            if path.stat().st_size > KEEP_BYTES:
                size = path.stat().st_size >> 20
                return files, f"{path.relative_to(folder)} takes {size} MiB, over the {KEEP_BYTES >> 20} MiB a job may keep"
            files.append(path.relative_to(folder).as_posix())
    return files, None


def run_job(job: Job, work: Path, out: Path, prev: Path | None, timeout_s: float, smoke: bool,
            env: dict[str, str], machine: dict[str, Any], label: str) -> dict[str, Any]:
    """Run ``job`` in ``work/<job>`` (moving an earlier attempt aside), pack ``out/<job>.tar.gz``; its record."""
    folder = work / job.name
    if folder.exists():
        folder.rename(work / f"{job.name}.earlier-{stamp(now().isoformat())}")
    folder.mkdir(parents=True)
    live = out / f"{job.name}.log"
    commands = job.resolved(folder, prev, smoke)
    started_at, started = now(), time.monotonic()
    code, reason = 1, "the runner stopped before the job began"
    try:
        with live.open("w") as log:
            log.write(f"# {job.name} started {started_at.isoformat(timespec='seconds')} on {machine['hardware']}"
                      f"{' (CPU smoke run)' if smoke else ''}; timeout {duration(timeout_s)}\n")
            for command in commands:
                code, reason = 1, f"the runner stopped during: {command}"
                code, reason = _execute(command, log, live, env, started + timeout_s, label, started)
                if code != 0:
                    break
    except (Stopped, KeyboardInterrupt) as stop:
        code, reason = 143, f"stopped ({stop or 'interrupted'}) after {duration(time.monotonic() - started)}"
        raise
    finally:
        record = _finish(job, folder, live, commands, code, reason, started_at, timeout_s, smoke, machine)
        scalars = [SCALARS] if (folder / SCALARS).is_file() else []
        partial = out / f"{job.name}.tar.gz.partial"  # renamed once complete
        with tarfile.open(partial, "w:gz") as tar:
            for name in [LOG, f"{record['state']}.json", *record["files"], *scalars]:
                tar.add(folder / name, arcname=f"{job.name}/{name}")
        partial.replace(out / f"{job.name}.tar.gz")
        live.unlink()
    return record


def _finish(job: Job, folder: Path, live: Path, commands: list[str], code: int, reason: str | None,
            started_at: datetime.datetime, timeout_s: float, smoke: bool, machine: dict[str, Any]) -> dict[str, Any]:
    """Check what the job wrote, keep its log, pack its scalars (a done job), write its record into ``folder``."""
    ended_at = now()
    files, missing = _kept(job, folder)
    reason = reason or missing
    state = "done" if reason is None else "failed"
    scalars = None
    if state == "done":
        try:
            scalars = pack_scalars(folder, folder / SCALARS, SCALARS_BYTES)
        except Exception as error:  # a damaged event file must not lose the job's other results
            scalars = {"error": " ".join(str(error).split())[:300]}
            (folder / SCALARS).unlink(missing_ok=True)
    _keep_log(live, folder / LOG)
    record = {"job": job.name, "state": state, "reason": reason, "returncode": code, "smoke": smoke,
              "commands": commands, "minutes_estimate": job.minutes, "timeout_s": round(timeout_s),
              "started": started_at.isoformat(timespec="seconds"), "ended": ended_at.isoformat(timespec="seconds"),
              "duration_s": round((ended_at - started_at).total_seconds(), 1), "environment": machine,
              "files": files if state == "done" else [], "tensorboard": scalars}
    write_json(folder / f"{state}.json", record)
    return record
