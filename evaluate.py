"""Test a trained auction (or a baseline) with the paper's protocol: ``python evaluate.py <checkpoint> [options]``.

Writes ``evaluation.json`` (and ``heatmaps.png``, ``curves.png`` where they apply) into ``--out``, never over an
earlier evaluation unless ``--force``, and prints a summary (docs/evaluation.md).  Bad input: one line, status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from adversary.base import Adversary
from adversary.protocol import PAPER_PROTOCOL, run_protocol, test_profiles
from adversary.gradient import GradientSearch
from adversary.search import TEST_SAMPLES
from adversary.select import FLAGS, add_adversary_options, selected_adversaries
from baselines import BASELINE_NAMES
from distributions import DISTRIBUTION_NAMES
from mechanisms.demand import DEMAND_TYPES
from mechanisms.sinkhorn_auction import layer_settings
from reporting.evaluation_summary import evaluation_summary
from reporting.tables import allocation_tolerance, config_threads
from runs.evaluation_target import BASELINES, Target, evaluation_target
from utils.atomic import check_new, check_writable, write_json
from utils.checks import check_positive_int
from utils.hardware import describe, resolve_device

OUTPUTS = ("evaluation.json", "heatmaps.png", "curves.png")  # what an evaluation may write into --out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python evaluate.py", description="Test a trained auction or a baseline "
                                     "with the paper's protocol (1000 profiles, 1000 misreport steps at lr 0.1, the "
                                     "truthful start plus 10 random ones).")
    parser.add_argument("checkpoint", nargs="?", type=Path, help="a train.py checkpoint, e.g. outputs/<date>/<time>/checkpoints/last.ckpt")
    baseline = parser.add_argument_group("baselines (instead of a checkpoint)")
    baseline.add_argument("--mechanism", choices=BASELINES, help="evaluate VCG, the known optimal mechanism, or a truthful "
                          f"baseline with prices fitted to the values' law ({', '.join(BASELINE_NAMES)})")
    baseline.add_argument("--demand", choices=DEMAND_TYPES, default=None, help="default unit")
    baseline.add_argument("--k", type=int, default=None, help="items per bidder for k_demand/exactly_k (default 1)")
    baseline.add_argument("--agents", type=int, default=None, help="default 1")
    baseline.add_argument("--items", type=int, default=None, help="default 2")
    baseline.add_argument("--distribution", choices=DISTRIBUTION_NAMES, default=None,
                          help="the valuations' law, conf/distribution/<name>.yaml with its defaults (default uniform: U[0, 1])")
    protocol = parser.add_argument_group("protocol (defaults: the paper's)")
    paper = PAPER_PROTOCOL
    protocol.add_argument("--samples", type=int, default=TEST_SAMPLES, help=f"test profiles (default {TEST_SAMPLES})")
    protocol.add_argument("--steps", type=int, default=paper.steps, help=f"misreport Adam steps per start (default {paper.steps})")
    protocol.add_argument("--lr", type=float, default=paper.lr, help=f"misreport learning rate (default {paper.lr})")
    protocol.add_argument("--restarts", type=int, default=paper.restarts, help=f"random starts besides the truthful one (default {paper.restarts})")
    protocol.add_argument("--batch-size", type=int, default=paper.batch_size, help=f"profiles per search chunk, one progress tick each (default {paper.batch_size})")
    protocol.add_argument("--seed", type=int, default=None, help="seeds the test profiles and the random starts "
                          "(default: the run's, so the profiles are those train.py tested on; 0 for baselines)")
    protocol.add_argument("--eps-final", type=float, default=None, help="test-time final Sinkhorn epsilon (Sinkhorn mechanisms only)")
    adversaries = parser.add_argument_group("adversaries beside the protocol's search (docs/evaluation.md, docs/regret_audit.md)")
    add_adversary_options(adversaries, shortcuts=("audit", "strong"), flags=tuple(FLAGS))
    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, default=None, help="output folder (default: <run dir>/evaluation/<checkpoint name>, "
                        "or outputs/evaluate/<mechanism>_<demand>_<agents>x<items> for a baseline)")
    output.add_argument("--force", action="store_true", help="replace an earlier evaluation in --out (default: refused)")
    output.add_argument("--others", type=float, default=0.5, help="the other bidders' bid on every item in the heatmaps (default 0.5)")
    output.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)")
    output.add_argument("--threads", type=int, default=config_threads(),
                        help="torch CPU threads (default: train.py's, threads in conf/config.yaml)")
    output.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def write_report(args: argparse.Namespace) -> tuple[dict[str, Any], list[Adversary]]:
    """Test the mechanism described by parsed ``args``; write the report (``evaluation.json``, figures) and return it
    with the adversaries that ran beside the protocol's search."""
    if args.threads is not None:
        check_positive_int(args.threads, "--threads")
        torch.set_num_threads(args.threads)
    if not math.isfinite(args.others):
        raise ValueError(f"--others must be a finite number, got {args.others}")
    check_positive_int(args.samples, "samples")
    protocol = GradientSearch(steps=args.steps, lr=args.lr, restarts=args.restarts, batch_size=args.batch_size)
    adversaries = selected_adversaries(args)
    device = resolve_device(args.device)
    target = evaluation_target(args, device)
    mechanism, setting = target.mechanism, target.setting
    low, high = setting.distribution.support
    lowest, highest = float(low.max()), float(high.min())
    if not lowest <= args.others <= highest:
        raise ValueError(f"--others must lie in every bidder's value range [{lowest:g}, {highest:g}], got {args.others:g}")
    if args.eps_final is not None:
        if not hasattr(mechanism, "set_sinkhorn"):
            raise ValueError(f"--eps-final applies to Sinkhorn mechanisms only, not {type(mechanism).__name__}")
        mechanism.set_sinkhorn(eps_final=args.eps_final)
    for adversary in adversaries:
        adversary.check(setting)
    check_writable(target.out, "--out", folder=True)  # before the protocol runs
    check_new([target.out / name for name in OUTPUTS], args.force, inputs=[args.checkpoint] if args.checkpoint else [])
    valuations = test_profiles(setting.distribution, args.samples, target.data_seed, device)
    result = run_protocol(mechanism, valuations, setting, protocol, seed=target.search_seed, progress=not args.no_progress,
                          adversaries=adversaries)
    demand, settings = setting.demand, layer_settings(mechanism)
    report = {
        "source": target.source,
        "setting": {
            "description": setting.description,
            "mechanism": getattr(mechanism, "name", None) or type(mechanism).__name__,
            "agents": setting.agents, "items": setting.items, "demand": demand.name,
            "k": list(demand.k) if isinstance(demand.k, tuple) else demand.k,
            "distribution": {"name": setting.distribution.name, **setting.distribution.parameters()},
            "low": low.tolist(), "high": high.tolist(),
            "eps_final": None if settings is None else float(f"{settings.epsilons[-1]:.12g}")},
        **result,
        "protocol": {**result["protocol"], "data_seed": target.data_seed}, "hardware": describe(device),
        "allocation_tolerance": allocation_tolerance(mechanism), "figures": []}
    if target.baseline is not None:
        report["baseline"] = target.baseline.to_dict()
    target.out.mkdir(parents=True, exist_ok=True)
    _figures(report, mechanism, target, args.others)
    write_json(target.out / "evaluation.json", report)
    return {**report, "out": str(target.out)}, adversaries


def _figures(report: dict[str, Any], mechanism: nn.Module, target: Target, others: float) -> None:
    """Heatmaps (two items) and training curves (a checkpoint with TensorBoard logs), as PNGs in ``target.out``."""
    out = target.out
    if target.setting.items == 2:
        from reporting.heatmaps import heatmap_figure

        heatmap_figure(mechanism, others=others, distribution=target.setting.distribution).savefig(out / "heatmaps.png", dpi=100)
        report["figures"].append("heatmaps.png")
    if target.run_dir is not None:
        from reporting.curves import curves_figure, event_directories, read_scalars

        if event_directories(target.run_dir):
            curves_figure(read_scalars(target.run_dir), title=str(target.run_dir)).savefig(out / "curves.png", dpi=100)
            report["figures"].append("curves.png")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0, or 2 on bad input)."""
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    try:
        report, adversaries = write_report(args)
    except ValueError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(evaluation_summary(report, adversaries))
    files = ", ".join(["evaluation.json", *report["figures"]])
    print(f"wrote {files} to {report['out']} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
