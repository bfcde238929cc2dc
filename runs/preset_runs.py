"""The runs of a reproduction: train presets in subprocesses, collect their results, attack their tested weights.

Each preset's run lives in ``<runs dir>/<preset>``: ``metrics.json``, the sidecar :data:`SIDECAR` (written by
:func:`train_preset`) and one ``<adversary>.json`` per adversary that attacked its tested weights (:func:`attack_run`).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import OmegaConf

from adversary.base import Adversary
from adversary.gradient import GradientSearch
from adversary.protocol import PAPER_PROTOCOL, against_search, test_profiles
from reporting.tables import duration
from runs.checkpoints import load_checkpoint
from utils.atomic import write_json
from utils.hardware import describe

__all__ = ["ROOT", "SIDECAR", "attack_run", "collect", "train_preset", "train_presets"]

ROOT = Path(__file__).resolve().parents[1]
SIDECAR = "reproduction.json"


def _hardware(run_dir: Path) -> str:
    """The device the run trained on, from its Hydra config (accelerator, threads) and this machine."""
    config_file = run_dir / ".hydra" / "config.yaml"
    config = OmegaConf.load(config_file) if config_file.is_file() else OmegaConf.create({})
    accelerator = str(OmegaConf.select(config, "trainer.accelerator", default="auto"))
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return describe("cuda")
    threads = OmegaConf.select(config, "threads", default=None)
    return describe("cpu") + ("" if threads is None else f", {threads} torch thread(s)")


def train_preset(preset: str, runs_dir: Path, overrides: Sequence[str] = (), timeout: float | None = None) -> dict[str, Any]:
    """Train and test one preset in ``runs_dir/preset`` (an earlier reproduction run there is kept, renamed);
    returns the sidecar written to :data:`SIDECAR` (overrides, command, return code, wall time, hardware, log)."""
    run_dir = runs_dir / preset
    log = runs_dir / f"{preset}.log"
    kept = runs_dir / f"{preset}.previous-{datetime.datetime.now():%Y%m%d-%H%M%S-%f}"
    if run_dir.exists():
        if not (run_dir / SIDECAR).is_file():
            raise ValueError(f"{run_dir} exists and was not made by this command; move it away or pick another --runs-dir")
        run_dir.rename(kept)
        if log.is_file():
            log.rename(kept / log.name)
        print(f"{preset}: the earlier run is kept in {kept}", file=sys.stderr)
    elif log.is_file():  # an earlier attempt's log without its run folder
        log.rename(kept.with_name(kept.name + ".log"))
    runs_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "train.py", f"experiment={preset}", f"hydra.run.dir={run_dir.resolve()}", *overrides]
    start, started_at = time.perf_counter(), time.time()
    with log.open("w") as stream:
        try:
            returncode = subprocess.run(command, cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            returncode = -1
    sidecar = {"preset": preset, "overrides": list(overrides), "command": " ".join(command[1:]),
               "returncode": returncode, "wall_time_s": time.perf_counter() - start, "started_at": started_at,
               "hardware": _hardware(run_dir), "log": str(log), "date": datetime.date.today().isoformat()}
    write_json(run_dir / SIDECAR, sidecar)  # (run_dir made where the run did not)
    return sidecar


def train_presets(presets: Sequence[str], runs_dir: Path, overrides: Sequence[str], timeout: float | None,
                  jobs: int = 1) -> bool:
    """Train ``presets`` with up to ``jobs`` runs at a time (side by side on one GPU); True if one failed."""
    total = len(presets)

    def one(numbered: tuple[int, str]) -> bool:
        index, preset = numbered
        print(f"[{index}/{total}] {preset}: training ...", flush=True)
        sidecar = train_preset(preset, runs_dir, overrides, timeout)
        outcome = "done" if sidecar["returncode"] == 0 else f"FAILED (exit {sidecar['returncode']}, see {sidecar['log']})"
        print(f"[{index}/{total}] {preset}: {outcome} in {duration(sidecar['wall_time_s'])}", flush=True)
        return sidecar["returncode"] != 0

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each run is its own process
        return any(pool.map(one, enumerate(presets, 1)))


def collect(preset: str, runs_dir: Path, adversaries: Sequence[str] = ("audit", "strong")) -> dict[str, Any]:
    """``{"preset", "sidecar", "metrics", "adversaries": {name: report}}`` of a reproduction run: ``None`` for a missing
    sidecar or metrics, and the reports of those ``adversaries`` (names) that attacked it."""
    run_dir = runs_dir / preset
    found: dict[str, Any] = {"preset": preset, "sidecar": None, "metrics": None}
    for key, name in (("sidecar", SIDECAR), ("metrics", "metrics.json")):
        if (run_dir / name).is_file():
            found[key] = json.loads((run_dir / name).read_text())
    found["adversaries"] = {name: json.loads((run_dir / f"{name}.json").read_text())
                            for name in adversaries if (run_dir / f"{name}.json").is_file()}
    return found


def attack_run(run_dir: Path, adversary: Adversary, device: str = "cpu", progress: bool = False) -> dict[str, Any] | None:
    """``adversary`` on the tested weights of a finished run, beside the run's test search (its protocol and seed)
    rerun on the same profiles: the run's test split drawn on ``device`` (``adversary.samples``: its first ones).
    Writes and returns ``<adversary.name>.json``; ``None``: no metrics or checkpoint, an ensemble run (attack its
    exported members with evaluate.py), or a setting the adversary cannot attack."""
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        return None
    metrics = json.loads(metrics_file.read_text())
    if "ensemble" in metrics:
        return None
    tested = metrics.get("tested_weights", "last")
    checkpoint = Path(tested) if tested not in ("last", "", None) else run_dir / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        return None
    run = load_checkpoint(checkpoint, device)
    setting = run.setting
    try:
        adversary.check(setting)
    except ValueError:
        return None
    test, paper = run.config.get("model", {}).get("test_search", {}), PAPER_PROTOCOL
    protocol = GradientSearch(steps=int(test.get("steps", paper.steps)), lr=float(test.get("lr", paper.lr)),
                              restarts=int(test.get("restarts", paper.restarts)))
    size = int(run.config.get("data", {}).get("test_size", metrics["test"]["n_samples"]))
    valuations = test_profiles(setting.distribution, size, run.data_seed, device)
    start = time.perf_counter()
    report = against_search(adversary, run.mechanism, valuations, setting, search_metrics=metrics["test"],
                            protocol=protocol, seed=run.test_seed, progress=progress)
    report.update(checkpoint=str(checkpoint), device=describe(device), wall_time_s=time.perf_counter() - start)
    write_json(run_dir / f"{adversary.name}.json", report)
    return report
