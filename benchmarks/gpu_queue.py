"""The GPU queue's runner: each lent GPU window advances ``benchmarks/gpu_queue.yaml``, and what it finishes is kept.

    python -m benchmarks.gpu_queue run --minutes M --out DIR [--work W] [--jobs A,B] [--cpu-smoke]
    python -m benchmarks.gpu_queue collect DIR [--force]
    python -m benchmarks.gpu_queue status

``run`` (on the GPU machine) makes hydra-core and omegaconf importable (from the wheels in ``.whl/`` when they
are missing), then takes, in queue order, the jobs not yet done (``results/gpu/<job>/done.json``, or done in
DIR) whose ``after`` job is done and whose ``needs`` exist, as long as their estimates fit in M minutes, and runs
each in ``W/<job>/`` (its ``{out}``) with a timeout (1.5x its estimate, within the window), printing which job
runs and for how long.  While a job runs its output goes to ``DIR/<job>.log``; when it ends, ``DIR/<job>.tar.gz``
holds its log, its record (``done.json`` or ``failed.json``: hardware, torch, CUDA, Triton, start, end, exit
status) and what it keeps: its ``writes`` files and its TensorBoard scalars (``tensorboard_scalars.tar.gz``).
One file per job, because the lent machine sends few files back.  ``--cpu-smoke`` runs each job's tiny
``cpu_smoke`` command instead, without a GPU; its records say so and ``collect`` refuses them.

``collect`` (here) unpacks each finished job of DIR into ``results/gpu/<job>/`` (never over an existing one
without ``--force``) and rewrites ``results/gpu/README.md``.  A failed job, a CPU smoke run and a partial job
(``DIR/<job>.log`` without its archive: the window ended during it) are refused; the log of a failed or partial
one is kept under ``results/gpu/failed/<job>/<start>/``.  ``status`` lists the jobs: done or not, and how long
each took when it last ran.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # python benchmarks/gpu_queue.py, as well as python -m benchmarks.gpu_queue
    sys.path.insert(0, str(ROOT))

from utils.atomic import write_json, write_text_atomic  # noqa: E402
from reporting.gpu_queue_file import QUEUE, Job, load_queue  # noqa: E402
from reporting.gpu_results import DONE, FAILED_DIR, RESULTS, collected, job_states, readme  # noqa: E402
from reporting.scalar_events import pack_scalars  # noqa: E402
from reporting.tables import duration  # noqa: E402

WHEELS = ROOT / ".whl"  # pip wheel --no-deps -w .whl hydra-core==1.3.2 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3
SITE = Path(tempfile.gettempdir()) / "gpu_queue_site"  # where those wheels are installed when hydra is missing
TIMEOUT_FACTOR = 1.5  # a job may run 1.5x its estimate (and never past the window)
HEARTBEAT_S = 30.0  # a progress line this often while a job runs
KEEP_BYTES = 8 << 20  # the largest file a job may keep (the lent machine returns files of up to 16 MiB)
SCALARS_BYTES = 2 << 20  # the TensorBoard scalars of one job, packed
LOG_HEAD, LOG_TAIL = 256 << 10, 768 << 10  # a longer log keeps its first and last bytes
SCALARS = "tensorboard_scalars.tar.gz"
LOG = "log.txt"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _stamp(iso: str) -> str:
    """``2026-11-04T12:00:00+00:00`` -> ``20261104T120000Z`` (a folder name)."""
    return iso[:19].replace("-", "").replace(":", "") + "Z"


# ----------------------------------------------------------------------------------------------- selection


def _archived_record(archive: Path) -> dict[str, Any] | None:
    """The record in a job's archive (``None``: no readable record)."""
    name = archive.name.removesuffix(".tar.gz")
    try:
        with tarfile.open(archive) as tar:
            for state in ("done", "failed"):
                try:
                    member = tar.extractfile(f"{name}/{state}.json")
                except KeyError:
                    continue
                if member is not None:
                    return json.loads(member.read())
    except (tarfile.TarError, OSError, ValueError):
        return None
    return None


def done_jobs(out: Path | None, results: Path = RESULTS, smoke: bool = False) -> set[str]:
    """The jobs collected under ``results`` and those done in the run folder ``out`` (by a smoke run: ``smoke``)."""
    done = set(collected(results))
    if out is not None and out.is_dir():
        for archive in out.glob("*.tar.gz"):
            record = _archived_record(archive)
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


# --------------------------------------------------------------------------------------------- environment


def _importable(*modules: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in modules)


def prepare_environment(wheels: Path = WHEELS, site: Path = SITE) -> tuple[dict[str, str], str]:
    """The jobs' environment variables and how hydra-core and omegaconf are found: installed, or installed now
    from ``wheels`` (``pip install --no-deps``) into ``site``, which then joins ``sys.path`` and ``PYTHONPATH``."""
    paths = [str(ROOT)]
    if _importable("hydra", "omegaconf"):
        source = "installed"
    else:
        found = sorted(wheels.glob("*.whl"))
        if not found:
            raise ValueError(f"hydra-core and omegaconf are not installed and {wheels} holds no wheels: make them with "
                             "`pip wheel --no-deps -w .whl hydra-core==1.3.2 omegaconf==2.3.0 "
                             "antlr4-python3-runtime==4.9.3` and carry .whl to the GPU machine")
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
                   "--upgrade", "--target", str(site), *map(str, found)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ValueError(f"installing the wheels of {wheels} failed (exit {result.returncode}): {last}")
        sys.path.append(str(site))
        importlib.invalidate_caches()
        paths.append(str(site))
        source = f"from {wheels.name}/ ({', '.join(p.name for p in found)})"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])  # `python` is this one
    return env, source


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(cuda: bool, hydra: str) -> dict[str, Any]:
    """What a record says about the machine: hardware (utils.hardware), CPU, torch, CUDA, Triton, Lightning,
    Python, hydra's source and the repository's commit (where git knows it)."""
    import torch

    from utils.hardware import cpu_name, describe

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:  # no git on the machine
        commit = ""
    return {
        "hardware": describe("cuda" if cuda else "cpu"),
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": _version("triton"),  # None: the fast step's backend=auto runs its torch kernels
        "lightning": _version("lightning"),
        "python": platform.python_version(),
        "hydra": hydra,
        "commit": commit or None,
    }


# ------------------------------------------------------------------------------------------------- running


class Stopped(Exception):
    """The runner got SIGTERM: the job in progress is stopped and recorded as failed, and the window ends."""


def _stop(signum: int, frame: Any) -> None:
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
                _say(f"{label}: {duration(time.monotonic() - started)} elapsed | {_last_line(log_path)}")
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


def _pack(job: Job, folder: Path, names: Sequence[str], archive: Path) -> None:
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        for name in names:
            tar.add(folder / name, arcname=f"{job.name}/{name}")
    partial.replace(archive)


def run_job(job: Job, work: Path, out: Path, prev: Path | None, timeout_s: float, smoke: bool,
            env: dict[str, str], machine: dict[str, Any], label: str) -> dict[str, Any]:
    """Run ``job`` in ``work/<job>`` (moving an earlier attempt aside), pack ``out/<job>.tar.gz``; its record."""
    folder = work / job.name
    if folder.exists():
        folder.rename(work / f"{job.name}.earlier-{_stamp(_now().isoformat())}")
    folder.mkdir(parents=True)
    live = out / f"{job.name}.log"
    commands = job.resolved(folder, prev, smoke)
    started_at, started = _now(), time.monotonic()
    code, reason = 1, "the runner stopped before the job began"
    log = live.open("w")
    try:
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
        log.close()
        record = _finish(job, folder, live, commands, code, reason, started_at, timeout_s, smoke, machine)
        scalars = [SCALARS] if (folder / SCALARS).is_file() else []
        _pack(job, folder, [LOG, f"{record['state']}.json", *record["files"], *scalars], out / f"{job.name}.tar.gz")
        live.unlink()
    return record


def _finish(job: Job, folder: Path, live: Path, commands: list[str], code: int, reason: str | None,
            started_at: datetime.datetime, timeout_s: float, smoke: bool, machine: dict[str, Any]) -> dict[str, Any]:
    """Check what the job wrote, keep its log, pack its scalars (a done job), write its record into ``folder``."""
    ended_at = _now()
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
    record = {
        "job": job.name, "state": state, "reason": reason, "returncode": code, "smoke": smoke,
        "commands": commands, "minutes_estimate": job.minutes, "timeout_s": round(timeout_s),
        "started": started_at.isoformat(timespec="seconds"), "ended": ended_at.isoformat(timespec="seconds"),
        "duration_s": round((ended_at - started_at).total_seconds(), 1), "environment": machine,
        "files": files if state == "done" else [], "tensorboard": scalars,
    }
    write_json(folder / f"{state}.json", record)
    return record


def _prev(job: Job, work: Path, out: Path, results: Path) -> Path | None:
    """The folder of ``job.after``: done in this run's work folder, unpacked from its archive in ``out``, or collected."""
    if job.after is None:
        return None
    mine = work / job.after
    if (mine / DONE).is_file():
        return mine
    archive = out / f"{job.after}.tar.gz"
    record = _archived_record(archive) if archive.is_file() else None
    if record is not None and record.get("state") == "done":
        if mine.exists():
            mine.rename(work / f"{job.after}.earlier-{_stamp(_now().isoformat())}")
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        return mine
    if (results / job.after / DONE).is_file():
        return results / job.after
    return None


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
        lacking = [job.name for job in jobs if job.cpu_smoke is None and (only is None or job.name in only)]
        if only is not None and lacking:
            raise ValueError(f"--cpu-smoke: job {lacking[0]} has no cpu_smoke command")
        jobs = [job for job in jobs if job.cpu_smoke is not None]
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_queue_work_")) if work is None else work
    work.mkdir(parents=True, exist_ok=True)
    env, hydra = prepare_environment(wheels)
    machine = environment(cuda, hydra)
    chosen, waiting = select(jobs, done_jobs(out, results, smoke), minutes, only)
    _say(f"{minutes:g}-minute window on {machine['hardware']}: torch {machine['torch']}, CUDA {machine['cuda']}, "
         f"Triton {machine['triton'] or 'missing (the fast step runs its torch kernels)'}, hydra {hydra}; "
         f"work folder {work}{'; CPU smoke run' if smoke else ''}")
    _say(f"selected: {', '.join(f'{j.name} ({j.minutes:g} min)' for j in chosen) or 'nothing'}"
         f" = {sum(j.minutes for j in chosen):g} of {minutes:g} min")
    for job, why in waiting[:6]:
        _say(f"not now: {job.name}: {why}")
    if len(waiting) > 6:
        _say(f"not now: {len(waiting) - 6} more")
    start = time.monotonic()
    failed: list[str] = []
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        for index, job in enumerate(chosen, 1):
            label = f"[{index}/{len(chosen)}] {job.name}"
            left = start + minutes * 60 - time.monotonic()
            prev = _prev(job, work, out, results)
            if job.after and (job.after in failed or prev is None):
                _say(f"{label}: skipped, its after job {job.after} is not done")
                failed.append(job.name)
                continue
            if job.minutes * 60 > left:
                _say(f"{label}: skipped, {duration(left)} left in the window for {job.minutes:g} min")
                continue
            timeout = min(job.minutes * 60 * TIMEOUT_FACTOR, left)
            _say(f"{label}: started (estimate {job.minutes:g} min, timeout {duration(timeout)}), log {out / (job.name + '.log')}")
            record = run_job(job, work, out, prev, timeout, smoke, env, machine, label)
            if record["state"] != "done":
                failed.append(job.name)
            _say(f"{label}: {record['state']} in {duration(record['duration_s'])}"
                 f"{'' if record['reason'] is None else ': ' + record['reason']} -> {out / (job.name + '.tar.gz')}")
    except (Stopped, KeyboardInterrupt):
        _say("stopped: the job in progress is recorded as failed; the window ends")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    _say(f"window over after {duration(time.monotonic() - start)}: {len(chosen) - len(failed)} done, {len(failed)} "
         f"failed or skipped; then, where the results land: python -m benchmarks.gpu_queue collect {out}")
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------------- collect


def _keep_failed(name: str, record: dict[str, Any], log: Path | None, results: Path) -> Path:
    """Keep a refused job's log and record under ``results/failed/<job>/<start>/``."""
    folder = results / FAILED_DIR / name / _stamp(record.get("started") or _now().isoformat())
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


def collect(out: Path, jobs: Sequence[Job], results: Path = RESULTS, force: bool = False) -> int:
    """``collect``: each finished job of ``out`` into ``results/<job>/`` (module docstring); 1 if one was refused."""
    if not out.is_dir():
        raise ValueError(f"{out} is not a folder (the --out of a run)")
    names = {job.name for job in jobs}
    archives = sorted(out.glob("*.tar.gz"))
    logs = [log for log in sorted(out.glob("*.log")) if not (out / f"{log.stem}.tar.gz").exists()]
    if not archives and not logs:
        raise ValueError(f"{out} holds no job of a run (<job>.tar.gz, or <job>.log of one that did not finish)")
    refused = 0
    for archive in archives:
        name = archive.name.removesuffix(".tar.gz")
        if name not in names:
            _say(f"{name}: refused, not a job of {QUEUE.name}")
            refused += 1
            continue
        with tempfile.TemporaryDirectory() as scratch:
            try:
                with tarfile.open(archive) as tar:
                    tar.extractall(scratch, filter="data")
                unpacked = Path(scratch) / name
                state_file = next((unpacked / f for f in ("done.json", "failed.json") if (unpacked / f).is_file()))
                record = json.loads(state_file.read_text())
                absent = [f for f in record["files"] if not (unpacked / f).is_file()]
            except (tarfile.TarError, OSError, StopIteration, ValueError, KeyError) as error:
                _say(f"{name}: refused, its archive is damaged or incomplete ({type(error).__name__})")
                refused += 1
                continue
            if record.get("smoke"):
                _say(f"{name}: refused, a CPU smoke run (--cpu-smoke), not a GPU result")
                refused += 1
            elif record["state"] != "done" or absent:
                reason = record["reason"] if not absent else f"its archive lacks {absent[0]}"
                kept = _keep_failed(name, {**record, "state": "failed", "reason": reason}, unpacked / LOG, results)
                _say(f"{name}: refused ({reason}); its log is kept in {kept}")
                refused += 1
            elif (results / name).exists() and not force:
                _say(f"{name}: refused, {results / name} exists (--force replaces it)")
                refused += 1
            else:
                if (results / name).exists():
                    shutil.rmtree(results / name)
                shutil.copytree(unpacked, results / name)
                _say(f"{name}: collected into {results / name} ({duration(record['duration_s'])} on "
                      f"{record['environment']['hardware']})")
    for log in logs:
        name = log.stem
        if name not in names:
            _say(f"{name}: refused, not a job of {QUEUE.name}")
        else:
            kept = _keep_failed(name, _partial_record(name, log), log, results)
            _say(f"{name}: refused, partial (the window ended while it ran); its log is kept in {kept}")
        refused += 1
    write_text_atomic(results / "README.md", readme(jobs, results))
    _say(f"wrote {results / 'README.md'}")
    return 1 if refused else 0


# -------------------------------------------------------------------------------------------------- status


def status(jobs: Sequence[Job], results: Path = RESULTS) -> str:
    """``status``: one line per job (done or not, last duration, date), then the totals."""
    states = job_states(jobs, results)
    width = max(len(s["job"]) for s in states)
    lines = [f"{'#':>3}  {'job':<{width}}  {'estimate':>8}  {'took':>7}  {'date':<10}  state"]
    for number_, s in enumerate(states, 1):
        lines.append(f"{number_:>3}  {s['job']:<{width}}  {s['estimate']:>8}  {s['took']:>7}  {s['date']:<10}  {s['state']}")
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
