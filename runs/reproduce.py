"""Reproduce the paper's Tables 1 and 2: train a list of presets and write a markdown table.

``python -m runs.reproduce [PRESET ...] [--override KEY=VALUE ...] [--out results/reproduction.md]``

Each preset (``conf/experiment/<preset>.yaml``; default: every row of
:data:`reporting.paper.PAPER_ROWS`) is trained and tested by
``python train.py experiment=<preset> hydra.run.dir=<runs dir>/<preset> <overrides>``
in a subprocess (log: ``<runs dir>/<preset>.log``).  Next to the run's
``metrics.json`` a ``reproduction.json`` records the overrides (the budget),
the hardware and the wall time, so ``--collect-only`` can rebuild the table
from runs made elsewhere (e.g. the GPU rows on a GPU machine).  The table
lists revenue and regret (mean (std) on the test profiles), the optimal
(closed form) and VCG (Monte Carlo) revenue, the best truthful baseline
(:mod:`baselines`, on the run's test profiles), training time and
hardware next to the paper's numbers.

For settings with at most 3 items, the tested weights are also audited
(:func:`audit_run`, docs/regret_audit.md): ``audit.json`` next to
``metrics.json`` holds the exhaustive audit's regret on the run's test
profiles (or the first ``--audit-samples``) and the gradient search's on the
same profiles; the table shows it beside the search's.  ``--collect-only``
audits the runs that have no ``audit.json`` yet (``--no-audit``: none).

With ``--strong``, every run without a ``strong.json`` is also attacked by the
strong adversary (:func:`strong_run`, :mod:`adversary.strong`, any number of
items) on its test profiles (or the first ``--strong-samples``); the table
shows its regret in a column of its own.

An existing ``--out`` is refused before any training unless ``--force`` (a table that then lacks some presets'
results goes to ``<out>.partial.md``); a table without any result replaces no file; ``--collect-only`` refuses a
runs folder with nothing to collect; the base files presets build on (``paper``, ``best``, ...) are not presets.
The exit status is 1 when a run failed or a row has no results, 2 on bad input.

Below the table, the rows that the GPU queue (``benchmarks/gpu_queue.yaml``) serves are shown as its
collected jobs left them in ``results/gpu/`` (:mod:`reporting.gpu_results`): revenue, regret, hardware and
date, or "not run yet".
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import OmegaConf

from adversary.audit import MAX_ITEMS, AuditSettings
from adversary.strong import StrongSettings
from utils.checks import check_positive_int
from utils.atomic import check_new, check_writable, write_json, write_text_atomic
from runs.checkpoints import load_checkpoint
from runs.seeds import parse_seeds, row_test, seed_overrides
from adversary.protocol import Protocol, audit_against_search, strong_against_search, test_profiles
from utils.hardware import describe, resolve_device
from runs.config import validate_config
from reporting.gpu_queue_file import load_queue
from reporting.gpu_results import RESULTS as GPU_RESULTS
from reporting.gpu_results import rows_table as gpu_rows_table
from reporting.paper import PAPER_HARDWARE, PAPER_ROWS
from reporting.tables import config_threads, duration, markdown_table, mean_std, number

__all__ = ["ROOT", "audit_run", "collect", "main", "paper_row", "reproduction_table", "strong_run", "train_preset"]

ROOT = Path(__file__).resolve().parents[1]
SIDECAR = "reproduction.json"
AUDIT = "audit.json"
STRONG = "strong.json"
HEADERS = (
    "Setting (preset)", "Revenue", "Paper revenue", "Regret (sum over agents)", "Audited regret (sum over agents)",
    "Audited max", "Paper regret", "Optimal", "VCG", "Best truthful baseline", "Paper opt./VCG", "Train time", "Paper time",
    "Hardware", "Budget", "Strong adversary regret (sum over agents)",
)


def paper_row(preset: str):
    """The paper's row a preset reproduces: ``paper_<row>`` and ``original_<row>`` both map to ``PAPER_ROWS["paper_<row>"]``."""
    for prefix in ("paper_", "original_"):
        if preset.startswith(prefix):
            return PAPER_ROWS.get("paper_" + preset[len(prefix):])
    return None


def base_files() -> set[str]:
    """The experiment files other presets build on (named in their ``defaults``: ``paper``, ``best``, ...): a budget
    without a setting of their own, not presets."""
    named = set()
    for path in (ROOT / "conf" / "experiment").glob("*.yaml"):
        named |= {entry for entry in OmegaConf.load(path).get("defaults", []) if isinstance(entry, str)}
    return named


def _check_presets(presets: Sequence[str]) -> None:
    bases = base_files()
    available = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml") if p.stem not in bases)
    given_bases = [p for p in presets if p in bases]
    if given_bases:
        raise ValueError(f"{', '.join(given_bases)}: a base file other presets build on, not a preset; "
                         f"presets: {', '.join(available)}")
    unknown = [p for p in presets if p not in available]
    if unknown:
        raise ValueError(f"unknown preset(s) {', '.join(unknown)}; available: {', '.join(available)}")
    repeated = sorted({p for p in presets if presets.count(p) > 1})
    if repeated:
        raise ValueError(f"preset(s) {', '.join(repeated)} given more than once (each preset has one run folder)")


def _check_runs(presets: Sequence[str], runs_dir: Path, overrides: Sequence[str]) -> None:
    """Every preset's configuration with ``overrides`` passes train.py's checks (before the first run starts)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException


    for preset in presets:
        try:
            with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
                cfg = compose("config", overrides=[f"experiment={preset}", f"output_dir={runs_dir / preset}", *overrides])
            validate_config(cfg)
        except (ValueError, HydraException) as error:
            raise ValueError(f"{preset} with {' '.join(overrides) or 'no overrides'}: {' '.join(str(error).split())}") from error


def _check_options(args: argparse.Namespace) -> None:
    """Every option, before the first run: presets, overrides, paths, devices, counts."""
    _check_presets(args.presets)
    _check_overrides(args.override)
    check_positive_int(args.jobs, "--jobs")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ValueError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if args.audit_samples is not None:
        check_positive_int(args.audit_samples, "--audit-samples")
    AuditSettings(points=args.audit_points)  # rejects a bad --audit-points
    resolve_device(args.audit_device, "--audit-device")
    check_writable(args.out, "--out")
    check_new([args.out], args.force)
    check_writable(args.runs_dir, "--runs-dir", folder=True)
    if args.collect_only:
        if not any((args.runs_dir / preset / "metrics.json").is_file() for preset in args.presets):
            raise ValueError(f"--collect-only: no run in {args.runs_dir} has results (metrics.json) for "
                             f"{', '.join(args.presets)}: nothing to collect")
    else:
        _check_runs(args.presets, args.runs_dir, args.override)


def write_table(out: Path, table: str, complete: bool, empty: bool) -> Path | None:
    """Write ``table`` to ``out``, unless it lacks results (``complete`` false) and would replace an existing
    ``out`` (``--force``): then to ``<out>.partial.md``.  A table without any result (``empty``) replaces no
    file.  Returns the file written (``None``: none)."""
    target = out if complete or not out.exists() else out.with_suffix(".partial.md")
    if empty and target.exists():
        return None
    write_text_atomic(target, table)
    return target


def _check_overrides(overrides: Sequence[str]) -> None:
    for override in overrides:
        key, sep, _ = override.partition("=")
        if not sep or not key or key.lstrip("+~").startswith(("experiment", "hydra.run.dir")):
            raise ValueError(f"override {override!r} must be KEY=VALUE and may not set experiment or hydra.run.dir")


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
    """Train and test one preset in ``runs_dir/preset``; an earlier reproduction run there is kept, renamed.

    Returns the sidecar written to ``reproduction.json``: preset, overrides,
    command, return code, wall time, hardware, log file.
    """
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
    sidecar = {
        "preset": preset,
        "overrides": list(overrides),
        "command": " ".join(command[1:]),
        "returncode": returncode,
        "wall_time_s": time.perf_counter() - start,
        "started_at": started_at,
        "hardware": _hardware(run_dir),
        "log": str(log),
        "date": datetime.date.today().isoformat(),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / SIDECAR, sidecar)
    return sidecar


def train_presets(
    presets: Sequence[str], runs_dir: Path, overrides: Sequence[str], timeout: float | None, jobs: int = 1
) -> bool:
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


def collect(preset: str, runs_dir: Path) -> dict[str, Any]:
    """``{"preset", "sidecar", "metrics", "audit", "strong"}`` of a reproduction run (``None`` for what is missing)."""
    run_dir = runs_dir / preset
    found: dict[str, Any] = {"preset": preset, "sidecar": None, "metrics": None, "audit": None, "strong": None}
    for key, name in (("sidecar", SIDECAR), ("metrics", "metrics.json"), ("audit", AUDIT), ("strong", STRONG)):
        if (run_dir / name).is_file():
            found[key] = json.loads((run_dir / name).read_text())
    return found


def _tested(run_dir: Path, device: str) -> tuple[Any, dict[str, Any], Path, Protocol, torch.Tensor] | None:
    """The tested weights of a finished run: ``(run, metrics, checkpoint, test protocol, test profiles)``,
    the profiles drawn on ``device`` with the run's seed and size (``None``: no metrics or checkpoint)."""
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        return None
    metrics = json.loads(metrics_file.read_text())
    if "ensemble" in metrics:  # several seeds in one run: audit its exported members with evaluate.py
        return None
    tested = metrics.get("tested_weights", "last")
    checkpoint = Path(tested) if tested not in ("last", "", None) else run_dir / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        return None
    run = load_checkpoint(checkpoint, device)
    config = run.config
    test = config.get("model", {}).get("test_search", {})
    size = int(config.get("data", {}).get("test_size", metrics["test"]["n_samples"]))
    protocol = Protocol(
        size, int(test.get("steps", Protocol.steps)), float(test.get("lr", Protocol.lr)), int(test.get("restarts", Protocol.restarts))
    )
    valuations = test_profiles(run.distribution, size, run.data_seed, device)
    return run, metrics, checkpoint, protocol, valuations


def audit_run(
    run_dir: Path, samples: int | None = None, points: int | None = None, device: str = "cpu", progress: bool = False
) -> dict[str, Any] | None:
    """Audit the tested weights of a finished run; writes and returns ``audit.json`` (``None``: nothing to audit).

    The profiles are the run's test split (its seed and size, drawn on
    ``device``: the very profiles ``train.py`` tested on when that is the
    training device type); with ``samples``, the first ``samples`` of them and
    the gradient search (the run's test protocol) rerun on those.  Settings
    with more than :data:`adversary.audit.MAX_ITEMS` items are not audited.
    """
    tested = _tested(run_dir, device)
    if tested is None:
        return None
    run, metrics, checkpoint, protocol, valuations = tested
    if valuations.shape[2] > MAX_ITEMS:
        return None
    start = time.perf_counter()
    report = audit_against_search(
        run.mechanism, valuations, AuditSettings(points=points), samples, search_metrics=metrics["test"],
        protocol=protocol, low=run.distribution.support.low, high=run.distribution.support.high,
        seed=run.test_seed, progress=progress,
    )
    report.update(checkpoint=str(checkpoint), device=describe(device), wall_time_s=time.perf_counter() - start)
    write_json(run_dir / AUDIT, report)
    return report


def strong_run(
    run_dir: Path, settings: StrongSettings, samples: int | None = None, device: str = "cpu", progress: bool = False
) -> dict[str, Any] | None:
    """The strong adversary on the tested weights of a finished run (as :func:`audit_run`, any number of items);
    writes and returns ``strong.json`` (``None``: no metrics or checkpoint)."""
    tested = _tested(run_dir, device)
    if tested is None:
        return None
    run, metrics, checkpoint, protocol, valuations = tested
    start = time.perf_counter()
    report = strong_against_search(
        run.mechanism, valuations, settings, samples, search_metrics=metrics["test"], protocol=protocol,
        low=run.distribution.support.low, high=run.distribution.support.high, seed=run.test_seed, progress=progress,
    )
    report.update(checkpoint=str(checkpoint), device=describe(device), wall_time_s=time.perf_counter() - start)
    write_json(run_dir / STRONG, report)
    return report


def _row(entry: dict[str, Any]) -> list[str]:
    preset, sidecar, metrics = entry["preset"], entry["sidecar"], entry["metrics"]
    paper = paper_row(preset)
    setting = f"{paper.setting if paper else preset} (`{preset}`)"
    paper_cells = [paper.revenue, paper.regret, f"{paper.reference} ({paper.reference_kind})", paper.train_time] if paper else ["-"] * 4
    if metrics is None:
        status = "not run" if sidecar is None else f"failed (exit {sidecar['returncode']}, log {sidecar['log']})"
        ours = [status, "", "", "", "", "", "", "", "", ""]
    else:
        (test, note), refs, audited = row_test(metrics), metrics["references"], entry.get("audit")
        ours = [
            mean_std(test["revenue_mean"], test["revenue_std"]) + note,
            mean_std(test["regret_sum_over_agents_mean"], test["regret_sum_over_agents_std"]),
            _audited(audited),
            "-" if audited is None else number(audited["regret_sum_over_agents_max"]),
            _strong(entry.get("strong")),
            number(refs.get("reference/optimal_revenue")),
            number(refs.get("reference/vcg_revenue")),
            _best_baseline(refs),
            duration(metrics.get("train_time_s")),
            sidecar["hardware"] if sidecar else "unknown",
        ]
    budget = "" if sidecar is None else (" ".join(sidecar["overrides"]) or "paper's")
    revenue, regret, audited_regret, audited_max, strong, optimal, vcg, best, time_, hardware = ours
    return [setting, revenue, paper_cells[0], regret, audited_regret, audited_max, paper_cells[1], optimal, vcg, best,
            paper_cells[2], time_, paper_cells[3], hardware, budget, strong]


def _best_baseline(refs: dict[str, Any]) -> str:
    """``name revenue`` of the best truthful baseline on the run's test profiles; ``-`` for runs older than the baselines."""
    name = refs.get("reference/best_truthful_baseline")
    return "-" if name is None else f"{name} {number(refs.get('reference/best_truthful_baseline_revenue'))}"


def _audited(audited: dict[str, Any] | None) -> str:
    """``mean (std)`` of the audited regret, with the profile count when a subsample and the search's on it."""
    if audited is None:
        return "-"
    text = mean_std(audited["regret_sum_over_agents_mean"], audited["regret_sum_over_agents_std"])
    search = audited["search_on_audited"]["regret_sum_over_agents_mean"]
    return f"{text} [{audited['n_samples']} profiles, grid {audited['grid_points']}; search {number(search)}]"


def _strong(strong: dict[str, Any] | None) -> str:
    """``mean (std)`` of the strong adversary's regret, with its profiles, starts and steps."""
    if strong is None:
        return "-"
    text = mean_std(strong["regret_sum_over_agents_mean"], strong["regret_sum_over_agents_std"])
    return f"{text} [{strong['n_samples']} profiles, {strong['starts']} starts x {strong['steps']} steps]"


def reproduction_table(entries: Sequence[dict[str, Any]], command: str = "", gpu_results: Path = GPU_RESULTS) -> str:
    """The markdown report: a short legend, one row per :func:`collect` entry, then the GPU queue's runs of these
    rows as collected in ``gpu_results``."""
    legend = [
        "# Reproduction of the paper's Tables 1 and 2",
        "",
        *([f"Generated by `{command}`.", ""] if command else []),
        "Revenue and regret: mean (std) over the test profiles (the paper's protocol unless the budget overrides it: "
        "1000 profiles, 1000 misreport steps at lr 0.1, truthful + 10 random starts), regret summed over the agents. Optimal: closed form where known; "
        f"VCG: 10,000-profile Monte Carlo estimate. Best truthful baseline: the highest-earning of the simple truthful mechanisms "
        "with fitted prices (posted prices, VCG with a reserve, pay to choose; `baselines`) on the run's test profiles. "
        f"Paper times: one {PAPER_HARDWARE}. "
        "Budget: the Hydra overrides of a reduced budget (\"paper's\": the paper's 100 epochs of 2^19 profiles).",
        "Audited regret (docs/regret_audit.md): mean (std) and max, summed over the agents, of the exhaustive audit "
        "(a grid over each bidder's report, 101 points per item for 2 items, 31 for 3, then a local refinement) of the "
        "tested weights on the test profiles, with the gradient search's regret on the same profiles; \"-\": not audited "
        "(more than 3 items, or --no-audit). The gradient search's regret is a lower bound; the audit's is exhaustive up to the grid.",
        "Strong adversary regret (docs/regret_audit.md, `--strong`): mean (std), summed over the agents, of the strong "
        "misreport search (random and structured starts, long Adam runs) on the test profiles; \"-\": not run.",
        "RegretNet exactly-one rows are N/A in the paper (RegretNet cannot represent exactly-one demand for two bidders).",
        "",
    ]
    table = "\n".join(legend) + "\n" + markdown_table(HEADERS, [_row(e) for e in entries]) + "\n"
    return table + _gpu_rows([e["preset"] for e in entries], gpu_results)


def _gpu_rows(presets: Sequence[str], results: Path) -> str:
    """The GPU queue's collected runs of these rows (``results/gpu/``); ``""`` when the queue serves none of them."""
    jobs = load_queue()
    if not any(job.row in presets for job in jobs):
        return ""
    return ("\n## The same rows from the GPU queue\n\n"
            "Seeds 0, 1, 2 as one ensemble at the paper's budget on one GPU (`benchmarks/gpu_queue.yaml`, collected "
            "into `results/gpu/`; `python -m benchmarks.gpu_queue status`). Revenue and regret: mean over the seeds "
            "(sd over the seeds).\n\n" + gpu_rows_table(presets, jobs, results) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: train the presets (unless ``--collect-only``), write and print the table; 1 if a run failed."""
    parser = argparse.ArgumentParser(prog="python -m runs.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("presets", nargs="*", default=list(PAPER_ROWS), help="presets under conf/experiment (default: every table row)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="Hydra override for every run, e.g. trainer.max_steps=200 (a reduced budget); repeatable")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "results" / "runs", help="where the runs go (default results/runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "reproduction.md", help="markdown file (default results/reproduction.md)")
    parser.add_argument("--collect-only", action="store_true", help="do not train: build the table from the runs already in --runs-dir")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at a time (e.g. 2 on one GPU: docs/throughput.md)")
    parser.add_argument("--seeds", default=None, help="e.g. 0,1,2: train these seeds of each row as one ensemble "
                        "(docs/ensembles.md); the table shows the mean over the seeds (sd over the seeds)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per run (default: none)")
    parser.add_argument("--no-audit", action="store_true", help="do not run the regret audit (settings of <= 3 items)")
    parser.add_argument("--audit-samples", type=int, default=None, help="audit the first N test profiles (default: all)")
    parser.add_argument("--audit-points", type=int, default=None, help="audit grid points per item (default 101 for 2 items, 31 for 3)")
    parser.add_argument("--audit-device", default="auto", help="device of the audit and the strong adversary: cpu, cuda or auto (default)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out (a table that lacks some presets' "
                        "results goes to <out>.partial.md instead)")
    parser.add_argument("--strong", action="store_true", help="also run the strong adversary on every run without strong.json")
    parser.add_argument("--strong-samples", type=int, default=None, help="strong adversary on the first N test profiles (default: all)")
    parser.add_argument("--strong-starts", type=int, default=StrongSettings.random_starts,
                        help=f"its uniform random starts (default {StrongSettings.random_starts})")
    parser.add_argument("--strong-steps", type=int, default=StrongSettings.steps, help=f"its Adam steps (default {StrongSettings.steps})")
    args = parser.parse_args(argv)
    threads = config_threads()  # train.py's thread policy (each run applies its own config's threads)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        if args.seeds is not None:  # before the checks: they validate every run's configuration
            args.override = [*seed_overrides(parse_seeds(args.seeds)), *args.override]
        strong = StrongSettings(random_starts=args.strong_starts, steps=args.strong_steps)  # rejects bad values before any run
        if args.strong_samples is not None:
            check_positive_int(args.strong_samples, "--strong-samples")
        _check_options(args)
        audit_device = str(resolve_device(args.audit_device, "--audit-device"))
        failed = False
        if not args.collect_only:
            failed = train_presets(args.presets, args.runs_dir, args.override, args.timeout, args.jobs)
        for index, preset in enumerate(args.presets, 1):
            if not args.no_audit and not (args.runs_dir / preset / AUDIT).is_file():
                report = audit_run(args.runs_dir / preset, args.audit_samples, args.audit_points, audit_device, progress=True)
                if report is not None:
                    print(f"[{index}/{len(args.presets)}] {preset}: audited regret (sum over agents) "
                          f"{report['regret_sum_over_agents_mean']:.4f}, search "
                          f"{report['search_on_audited']['regret_sum_over_agents_mean']:.4f} "
                          f"({report['n_samples']} profiles, {duration(report['wall_time_s'])})", flush=True)
            if args.strong and not (args.runs_dir / preset / STRONG).is_file():
                report = strong_run(args.runs_dir / preset, strong, args.strong_samples, audit_device, progress=True)
                if report is not None:
                    print(f"[{index}/{len(args.presets)}] {preset}: strong adversary regret (sum over agents) "
                          f"{report['regret_sum_over_agents_mean']:.4f}, search "
                          f"{report['search_on_same_profiles']['regret_sum_over_agents_mean']:.4f} "
                          f"({report['n_samples']} profiles, {duration(report['wall_time_s'])})", flush=True)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    command = "python -m runs.reproduce " + " ".join([*args.presets, *(f"--override {o}" for o in args.override)])
    entries = [collect(p, args.runs_dir) for p in args.presets]
    table = reproduction_table(entries, command + (" --collect-only" if args.collect_only else ""))
    missing = [e["preset"] for e in entries if e["metrics"] is None]
    written = write_table(args.out, table, not missing, len(missing) == len(entries))
    print(table)
    if written is None:
        print(f"error: no preset has results in {args.runs_dir}: a table without results replaces no file", file=sys.stderr)
        return 1
    print(f"wrote {written}")
    if missing:
        kept = "" if written == args.out else f"; {args.out} is kept"
        print(f"error: no results for {', '.join(missing)} (the table lists the others){kept}", file=sys.stderr)
    return 1 if failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
