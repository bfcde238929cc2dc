"""Reproduce the paper's Tables 1 and 2: train a list of presets and write a markdown table.

``python -m runs.reproduce [PRESET ...] [--override KEY=VALUE ...] [--out results/reproduction.md]``
(docs/results.md, "Reproducing the paper"; the adversaries: docs/regret_audit.md).  Each preset trains in a
subprocess (:mod:`runs.preset_runs`), then adversaries attack its tested weights; the table
(:mod:`reporting.reproduction_table`) adds the GPU queue's collected rows.  Exit status: 1 when a run failed
or a row has no results, 2 on bad input.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Sequence

import torch
from omegaconf import OmegaConf

from adversary.select import add_adversary_options, selected_adversaries
from reporting.paper import PAPER_ROWS
from reporting.reproduction_table import reproduction_table, write_table
from reporting.tables import config_threads, duration
from runs.config import validate_config
from runs.preset_runs import ROOT, attack_run, collect, train_presets
from runs.seeds import parse_seeds, seed_overrides
from utils.atomic import check_new, check_writable
from utils.checks import check_positive_int
from utils.hardware import resolve_device

__all__ = ["main"]

REPRODUCE_FLAGS = ("audit_samples", "audit_points", "strong_samples", "strong_starts", "strong_steps")
"""The older adversary flags ``runs.reproduce`` takes (:data:`adversary.select.FLAGS`)."""


def _check_presets(presets: Sequence[str]) -> None:
    bases = set()  # the experiment files other presets build on (their defaults: paper, best, ...), not presets
    for path in (ROOT / "conf" / "experiment").glob("*.yaml"):
        bases |= {entry for entry in OmegaConf.load(path).get("defaults", []) if isinstance(entry, str)}
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
    """Every option but the device, before the first run: presets, overrides, paths, counts."""
    _check_presets(args.presets)
    _check_overrides(args.override)
    check_positive_int(args.jobs, "--jobs")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ValueError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    check_writable(args.out, "--out")
    check_new([args.out], args.force)
    check_writable(args.runs_dir, "--runs-dir", folder=True)
    if args.collect_only:
        if not any((args.runs_dir / preset / "metrics.json").is_file() for preset in args.presets):
            raise ValueError(f"--collect-only: no run in {args.runs_dir} has results (metrics.json) for "
                             f"{', '.join(args.presets)}: nothing to collect")
    else:
        _check_runs(args.presets, args.runs_dir, args.override)


def _check_overrides(overrides: Sequence[str]) -> None:
    for override in overrides:
        key, sep, _ = override.partition("=")
        if not sep or not key or key.lstrip("+~").startswith(("experiment", "hydra.run.dir")):
            raise ValueError(f"override {override!r} must be KEY=VALUE and may not set experiment or hydra.run.dir")


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
    parser.add_argument("--force", action="store_true", help="replace an existing --out (a table that lacks some presets' "
                        "results goes to <out>.partial.md instead)")
    attacks = parser.add_argument_group("adversaries on the tested weights of every run without <name>.json (docs/regret_audit.md)")
    attacks.add_argument("--no-audit", action="store_true", help="do not run the regret audit (settings of <= 3 items)")
    attacks.add_argument("--audit-device", default="auto", help="device of the adversaries: cpu, cuda or auto (default)")
    add_adversary_options(attacks, shortcuts=("strong",), flags=REPRODUCE_FLAGS)
    args = parser.parse_args(argv)
    threads = config_threads()  # train.py's thread policy (each run applies its own config's threads)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        if args.seeds is not None:  # before the checks: they validate every run's configuration
            args.override = [*seed_overrides(parse_seeds(args.seeds)), *args.override]
        if args.no_audit and (args.audit_points is not None or args.audit_samples is not None):
            raise ValueError("--audit-points/--audit-samples set the audit that --no-audit leaves out: drop one or the other")
        args.adversary = [*([] if args.no_audit else ["audit"]), *args.adversary]
        adversaries = selected_adversaries(args)  # rejects bad values before any run
        device = str(resolve_device(args.audit_device, "--audit-device"))
        _check_options(args)
        failed = False
        if not args.collect_only:
            failed = train_presets(args.presets, args.runs_dir, args.override, args.timeout, args.jobs)
        for index, preset in enumerate(args.presets, 1):
            for adversary in adversaries:
                if (args.runs_dir / preset / f"{adversary.name}.json").is_file():
                    continue
                report = attack_run(args.runs_dir / preset, adversary, device, progress=True)
                if report is not None:
                    print(f"[{index}/{len(args.presets)}] {preset}: {adversary.label} regret (sum over agents) "
                          f"{report['regret_sum_over_agents_mean']:.4f}, search "
                          f"{report[adversary.comparison_key]['regret_sum_over_agents_mean']:.4f} "
                          f"({report['n_samples']} profiles, {duration(report['wall_time_s'])})", flush=True)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    command = "python -m runs.reproduce " + " ".join([*args.presets, *(f"--override {o}" for o in args.override)])
    extra = [adversary for adversary in adversaries if adversary.name not in ("audit", "strong")]
    entries = [collect(p, args.runs_dir, ("audit", "strong", *(a.name for a in extra))) for p in args.presets]
    table = reproduction_table(entries, command + (" --collect-only" if args.collect_only else ""), extra=extra)
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
