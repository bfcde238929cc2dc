"""The GPU queue's environment on the lent machine: hydra-core and omegaconf made importable (from the wheels in
``.whl/`` when missing), and what a job's record says of the machine."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from reporting.gpu_queue_file import ROOT

__all__ = ["WHEELS", "environment", "prepare_environment"]

WHEELS = ROOT / ".whl"  # pip wheel --no-deps -w .whl hydra-core==1.3.2 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3
SITE = Path(tempfile.gettempdir()) / "gpu_queue_site"  # where those wheels are installed when hydra is missing


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
    return {"hardware": describe("cuda" if cuda else "cpu"), "cpu": cpu_name(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "triton": _version("triton"),  # None: the fast step runs its torch kernels
            "lightning": _version("lightning"), "python": platform.python_version(), "hydra": hydra,
            "commit": commit or None}
