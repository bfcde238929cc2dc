"""The GPU queue file, ``benchmarks/gpu_queue.yaml``: an ordered list of jobs, checked as it is read.

A job's fields (:class:`Job`) are described in the file's header; the queue's use in docs/throughput.md.
:func:`load_queue` reads the file and refuses a bad one with a one-line ``ValueError`` naming the job.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_MINUTES", "QUEUE", "Job", "load_queue"]

ROOT = Path(__file__).resolve().parents[1]
QUEUE = ROOT / "benchmarks" / "gpu_queue.yaml"
MAX_MINUTES = 8  # on one H100/H200: a 15-minute window minus the machine's start always finishes one job
REQUIRED = ("name", "minutes", "serves", "command", "writes")
OPTIONAL = ("after", "needs", "row", "cpu_smoke")
PLACEHOLDERS = ("out", "prev")  # {out}: the job's folder; {prev}: the folder of the job named by `after`
RESERVED = ("failed",)  # results/gpu/failed/ keeps the logs of refused jobs
_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")
_PLACEHOLDER = re.compile(r"(?<!\$)\{(\w+)\}")  # {out}, not the shell's ${out}


@dataclass(frozen=True)
class Job:
    """One job of the queue (see the module docstring); ``commands`` and ``cpu_smoke`` run one after another."""

    name: str
    minutes: float
    serves: str
    commands: tuple[str, ...]
    writes: tuple[str, ...]
    after: str | None = None
    needs: tuple[str, ...] = ()
    row: str | None = None
    cpu_smoke: tuple[str, ...] | None = None

    def missing(self, root: Path = ROOT) -> list[str]:
        """The files of ``needs`` not (yet) in the repository at ``root``."""
        return [need for need in self.needs if not (root / need).exists()]

    def resolved(self, out: Path, prev: Path | None, smoke: bool = False) -> list[str]:
        """The shell commands to run (``cpu_smoke`` with ``smoke``), ``{out}`` and ``{prev}`` replaced by these
        folders."""
        if smoke and self.cpu_smoke is None:
            raise ValueError(f"job {self.name} has no cpu_smoke command")
        folders = {"out": out, "prev": prev}
        return [_PLACEHOLDER.sub(lambda m: shlex.quote(str(folders[m.group(1)])), command)
                for command in (self.cpu_smoke if smoke else self.commands)]


def _commands(value: Any, where: str, key: str) -> tuple[str, ...]:
    commands = [value] if isinstance(value, str) else value
    if not isinstance(commands, list) or not commands or not all(isinstance(c, str) and c.strip() for c in commands):
        raise ValueError(f"{where}: {key} must be a shell command or a list of them, got {value!r}")
    return tuple(c.strip() for c in commands)


def _paths(value: Any, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p for p in value):
        raise ValueError(f"{where}: {key} must be a list of paths, got {value!r}")
    bad = [p for p in value if p.startswith("/") or ".." in Path(p).parts]
    if bad:
        raise ValueError(f"{where}: {key} must hold relative paths inside the folder, got {bad[0]!r}")
    return tuple(value)


def _job(entry: Any, index: int, earlier: dict[str, Job]) -> Job:
    name = entry.get("name") if isinstance(entry, dict) else None
    where = f"job {index}" + (f" ({name})" if isinstance(name, str) else "")
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping of {', '.join(REQUIRED)}, got {entry!r}")
    unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; a job has {', '.join(REQUIRED + OPTIONAL)}")
    missing = [key for key in REQUIRED if key not in entry]
    if missing:
        raise ValueError(f"{where}: missing {missing[0]!r}")
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in RESERVED:
        raise ValueError(f"{where}: name must be lower-case letters, digits and _ (not {', '.join(RESERVED)}), "
                         f"got {name!r}")
    if name in earlier:
        raise ValueError(f"{where}: the name {name} is used twice")
    minutes = entry["minutes"]
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 < minutes <= MAX_MINUTES:
        raise ValueError(f"{where}: minutes must be a number in (0, {MAX_MINUTES}], got {minutes!r}: split a longer "
                         "job into jobs that each continue the previous one (after:, resume={prev}/...)")
    if not isinstance(entry["serves"], str) or not entry["serves"].strip():
        raise ValueError(f"{where}: serves must name the issue or table row the job serves")
    after, row = entry.get("after"), entry.get("row")
    if after is not None and after not in earlier:
        raise ValueError(f"{where}: after: {after!r} is not a job earlier in the queue")
    if row is not None and not isinstance(row, str):
        raise ValueError(f"{where}: row must be a preset name, got {row!r}")
    commands = _commands(entry["command"], where, "command")
    smoke = None if entry.get("cpu_smoke") is None else _commands(entry["cpu_smoke"], where, "cpu_smoke")
    for command in commands + (smoke or ()):
        for placeholder in _PLACEHOLDER.findall(command):
            if placeholder not in PLACEHOLDERS or (placeholder == "prev" and after is None):
                raise ValueError(f"{where}: unknown placeholder {{{placeholder}}} in {command!r} "
                                 "({out}: the job's folder; {prev}: the folder of its `after` job)")
    return Job(name=name, minutes=float(minutes), serves=" ".join(entry["serves"].split()), commands=commands,
               writes=_paths(entry["writes"], where, "writes"), after=after,
               needs=_paths(entry["needs"], where, "needs") if "needs" in entry else (), row=row, cpu_smoke=smoke)


def load_queue(path: Path = QUEUE) -> list[Job]:
    """The jobs of the queue file at ``path``, in order; a one-line ``ValueError`` naming the job for a bad file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot read the queue: {' '.join(str(error).split())}") from error
    if not isinstance(data, dict) or set(data) != {"jobs"} or not isinstance(data["jobs"], list) or not data["jobs"]:
        raise ValueError(f"{path}: the queue must be a mapping with one key, jobs: a non-empty list of jobs")
    jobs: dict[str, Job] = {}
    for index, entry in enumerate(data["jobs"], 1):
        try:
            job = _job(entry, index, jobs)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error
        jobs[job.name] = job
    return list(jobs.values())
