"""A run never writes into another run's directory (docs/scaling_out.md, "One run per run directory"):
:func:`check_run_dir` refuses one holding results, :func:`claim_run_dir` holds it with a lock file.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Callable

__all__ = ["LOCK", "check_run_dir", "claim_run_dir", "first_process"]

LOCK = ".run.lock"


def first_process() -> bool:
    """Whether this is the first process of the run (not a DDP, torchrun or SLURM helper task)."""
    return all(int(os.environ.get(name) or 0) == 0 for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def check_run_dir(run_dir: Path | str, resume: str | None) -> None:
    """One-line ``ValueError`` if ``run_dir`` holds results and ``resume`` does not point into it (see module)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not first_process():
        return
    found = ["metrics.json"] if (run_dir / "metrics.json").is_file() else []
    found += sorted(str(p.relative_to(run_dir)) for p in run_dir.glob("checkpoints/*.ckpt"))
    # a requeued SLURM job, which Lightning resumes from the directory's hpc_ckpt_<n>.ckpt
    requeued = int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0 or any(run_dir.glob("hpc_ckpt_*.ckpt"))
    if not found or requeued or (resume and Path(resume).resolve().is_relative_to(run_dir.resolve())):
        return
    shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
    raise ValueError(f"the run directory {run_dir} already holds results ({shown}): pick another hydra.run.dir, "
                     f"or continue that run with resume={run_dir / 'checkpoints' / 'last.ckpt'}")


def _alive(owner: str) -> bool:
    """Whether the lock's ``<host> <pid>`` names a running process (another host's: assumed running)."""
    host, _, pid = owner.partition(" ")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_run_dir(run_dir: Path | str) -> Callable[[], None]:
    """Hold ``run_dir`` for this run (``ValueError`` if another running process holds it); returns the release."""
    lock = Path(run_dir) / LOCK
    if not first_process():
        return lambda: None
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            owner = lock.read_text().strip() if lock.is_file() else ""
            if _alive(owner):
                raise ValueError(f"the run directory {run_dir} is in use by another run (process "
                                 f"{owner or 'unknown'}, lock {lock}): pick another hydra.run.dir") from None
            lock.unlink(missing_ok=True)  # its process is gone: take the directory over
            continue
        with os.fdopen(handle, "w") as stream:
            stream.write(me + "\n")
        break
    else:
        raise ValueError(f"the run directory {run_dir} could not be locked ({lock}): pick another hydra.run.dir")

    def release() -> None:
        if lock.is_file() and lock.read_text().strip() == me:
            lock.unlink()

    return release
