"""Test a trained auction (or a baseline) with the paper's protocol: ``python evaluate.py <checkpoint> [options]``.

Writes ``evaluation.json`` (and, for two-item settings, ``heatmaps.png``; for a
checkpoint with TensorBoard logs, ``curves.png``) into ``--out`` and prints a
summary; an earlier evaluation there is kept unless ``--force``.  See docs/evaluation.md.
Bad input exits with one line on stderr and status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from adversary.audit import MAX_ITEMS, AuditSettings
from adversary.strong import StrongSettings
from baselines import BASELINE_NAMES, FittedBaseline, fit_baseline
from mechanisms.demand import DEMAND_TYPES, Demand
from baselines.references import optimal_mechanism
from mechanisms.sinkhorn_auction import layer_settings
from baselines.vcg import VCG
from utils.atomic import check_new, check_writable, write_json
from runs.checkpoints import load_checkpoint
from adversary.protocol import PAPER_PROTOCOL, Protocol, run_protocol, strong_against_search, test_profiles
from utils.hardware import describe, resolve_device
from reporting.tables import allocation_tolerance, allocation_warning, baseline_rows, config_threads, mean_std, plain_table
from distributions import DISTRIBUTION_NAMES, ValuationDistribution, named_distribution
from utils.checks import check_positive_int

BASELINES = ("vcg", "optimal", *BASELINE_NAMES)
OUTPUTS = ("evaluation.json", "heatmaps.png", "curves.png")  # what an evaluation may write into --out
BASELINE_SETTING = {"demand": "unit", "k": 1, "agents": 1, "items": 2, "distribution": "uniform"}  # the baseline options' defaults


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python evaluate.py",
        description="Test a trained auction or a baseline with the paper's protocol (1000 profiles, "
        "1000 misreport steps at lr 0.1, the truthful start plus 10 random ones).",
    )
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
    protocol.add_argument("--samples", type=int, default=paper.samples, help=f"test profiles (default {paper.samples})")
    protocol.add_argument("--steps", type=int, default=paper.steps, help=f"misreport Adam steps per start (default {paper.steps})")
    protocol.add_argument("--lr", type=float, default=paper.lr, help=f"misreport learning rate (default {paper.lr})")
    protocol.add_argument("--restarts", type=int, default=paper.restarts, help=f"random starts besides the truthful one (default {paper.restarts})")
    protocol.add_argument("--batch-size", type=int, default=paper.batch_size, help=f"profiles per search chunk, one progress tick each (default {paper.batch_size})")
    protocol.add_argument("--seed", type=int, default=None, help="seeds the test profiles and the random starts "
                          "(default: the run's, so the profiles are those train.py tested on; 0 for baselines)")
    protocol.add_argument("--eps-final", type=float, default=None, help="test-time final Sinkhorn epsilon (Sinkhorn mechanisms only)")
    audit = parser.add_argument_group("regret audit (docs/regret_audit.md; at most 3 items)")
    audit.add_argument("--audit", action="store_true", help="also run the exhaustive regret audit: a grid over each bidder's "
                       "report, the others truthful, then a local refinement")
    audit.add_argument("--audit-points", type=int, default=None, help="grid points per reported number (default 101 for "
                       "1-2 items, 31 for 3)")
    audit.add_argument("--audit-samples", type=int, default=None, help="audit the first N test profiles (default: all)")
    audit.add_argument("--audit-max-profiles", type=int, default=65536, help="bid profiles per mechanism call (memory bound, default 65536)")
    strong = parser.add_argument_group("strong adversary (docs/regret_audit.md; any number of items)")
    strong.add_argument("--strong", action="store_true", help="also run the strong misreport search: many random and "
                        "structured starts (shading, top-k only, one item at the max, permuted values), long Adam runs")
    strong.add_argument("--strong-starts", type=int, default=StrongSettings.random_starts,
                        help=f"uniform random starts besides the structured ones (default {StrongSettings.random_starts})")
    strong.add_argument("--strong-steps", type=int, default=StrongSettings.steps,
                        help=f"Adam steps per start (default {StrongSettings.steps})")
    strong.add_argument("--strong-lr", type=float, default=StrongSettings.lr,
                        help=f"learning rate relative to the domain's width (default {StrongSettings.lr})")
    strong.add_argument("--strong-samples", type=int, default=None, help="search the first N test profiles (default: all)")
    strong.add_argument("--strong-max-profiles", type=int, default=StrongSettings.max_profiles,
                        help=f"bid profiles per mechanism call (memory bound, default {StrongSettings.max_profiles})")
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


def _eps_suffix(eps: float | None) -> str:
    return "" if eps is None else f"_eps{eps:g}"


@dataclass
class Target:
    """What to test: the mechanism, its setting and valuation distribution, seeds (profiles, random starts), where to write."""

    mechanism: nn.Module
    agents: int
    items: int
    demand: Demand
    distribution: ValuationDistribution
    data_seed: int
    search_seed: int
    out: Path
    source: str
    run_dir: Path | None = None
    baseline: FittedBaseline | None = None


def _target(args: argparse.Namespace, device: torch.device) -> Target:
    """The mechanism to test and its setting, from a checkpoint or a baseline name."""
    if (args.checkpoint is None) == (args.mechanism is None):
        raise ValueError(f"give either a checkpoint or --mechanism {'|'.join(BASELINES)} (with --demand --agents --items), not both")
    given = [f"--{name}" for name in BASELINE_SETTING if getattr(args, name) is not None]
    if args.checkpoint is not None and given:
        raise ValueError(f"{'/'.join(given)} describe a baseline; a checkpoint carries its own setting: drop them")
    for name, default in BASELINE_SETTING.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.checkpoint is not None:
        run = load_checkpoint(args.checkpoint, device)
        config = run.config
        seeds = (run.data_seed, run.test_seed) if args.seed is None else (args.seed, args.seed)
        return Target(
            mechanism=run.mechanism, agents=int(config["agents"]), items=int(config["items"]),
            demand=Demand(config["demand"]["name"], config["demand"].get("k", 1)), distribution=run.distribution,
            data_seed=seeds[0], search_seed=seeds[1], source=str(run.checkpoint), run_dir=run.run_dir,
            out=args.out or run.run_dir / "evaluation" / f"{run.checkpoint.stem}{_eps_suffix(args.eps_final)}",
        )
    demand = Demand(args.demand, args.k)
    distribution = named_distribution(args.distribution, args.agents, args.items)
    mechanism: nn.Module | None
    fitted = None
    if args.mechanism in BASELINE_NAMES:
        fitted = fit_baseline(args.mechanism, args.agents, args.items, demand, distribution=distribution)
        mechanism = fitted.mechanism
    elif args.mechanism == "vcg":
        mechanism = VCG(args.agents, args.items, demand)
    else:
        mechanism = optimal_mechanism(demand.name, demand.k, args.agents, args.items, distribution=distribution)
        if mechanism is None:
            raise ValueError(f"no optimal mechanism is known for {args.agents} bidder(s), {args.items} item(s), "
                             f"{demand.name} demand, {args.distribution} values (known: uniform 1x2 unit/exactly_k/"
                             "additive and n bidders x 1 item; exponential n x 1; triangle 1x2 additive)")
    seed = 0 if args.seed is None else args.seed
    return Target(
        mechanism=mechanism.to(device), agents=args.agents, items=args.items, demand=demand, distribution=distribution,
        data_seed=seed, search_seed=seed, source=args.mechanism, baseline=fitted,
        out=args.out or Path("outputs") / "evaluate" / (f"{args.mechanism}_{demand.name}_{args.agents}x{args.items}"
                                                  + ("" if args.distribution == "uniform" else f"_{args.distribution}")),
    )


def _stat(source: dict[str, Any], name: str) -> str:
    """``source``'s ``<name>_mean``, ``_std`` and ``_max`` on one line."""
    return f"{source[name + '_mean']:.4f} (std {source[name + '_std']:.4f}, max {source[name + '_max']:.4f})"


def _summary(report: dict[str, Any]) -> str:
    metrics, refs, protocol = report["metrics"], report["references"], report["protocol"]
    optimum = "unknown"
    if refs["optimal_revenue_mean"] is not None:
        optimum = (f"{mean_std(refs['optimal_revenue_mean'], refs['optimal_revenue_std'], 4)}; "
                   f"closed form {refs['optimal_revenue_closed_form']:.4f} ({refs['optimal_mechanism']})")
    eps = report["setting"].get("eps_final")
    rows = [
        ("mechanism", f"{report['setting']['mechanism']} ({report['source']})"),
        ("setting", report["setting"]["description"]),
        ("protocol", f"{protocol['samples']} profiles, {protocol['steps']} steps at lr {protocol['lr']:g}, "
                     f"truthful + {protocol['restarts']} random start(s), seed {protocol['seed']}"
                     + ("" if eps is None else f", Sinkhorn eps_final {eps:g}")),
        ("revenue", mean_std(metrics["revenue_mean"], metrics["revenue_std"], 4)),
        ("regret per agent", ", ".join(f"{r:.4f}" for r in metrics["regret_per_agent"])),
        ("regret, mean over agents", _stat(metrics, "regret_mean_over_agents")),
        ("regret, sum over agents", _stat(metrics, "regret_sum_over_agents")),
        *_audit_rows(report.get("audit")),
        *_strong_rows(report.get("strong")),
        ("IR violations", f"{metrics['ir_violations']} of {metrics['n_samples']} profiles (max {metrics['ir_violation_max']:.2e})"),
        ("allocation violation", allocation_warning(metrics["allocation_violation_max"], report.get("allocation_tolerance"))
         or f"max {metrics['allocation_violation_max']:.2e}"),
        *_baseline_rows(report.get("baseline")),
        ("VCG revenue, same profiles", mean_std(refs["vcg_revenue_mean"], refs["vcg_revenue_std"], 4)),
        ("optimal revenue, same profiles", optimum),
        *_reference_baseline_rows(refs, metrics["revenue_mean"], (report.get("baseline") or {}).get("name")),
        ("time", f"{report['evaluation_time_s']:.1f} s on {report['hardware']}"),
    ]
    return plain_table(rows)


def _baseline_rows(baseline: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The evaluated baseline's fitted prices (none for a checkpoint, VCG or the optimum)."""
    if baseline is None:
        return []
    prices = ", ".join(f"{p:.4f}" for p in baseline["prices"])
    return [("baseline prices", f"{prices} (fitted revenue {baseline['revenue']:.4f} +- {baseline['revenue_stderr']:.4f} "
                                f"on {baseline['samples']} profiles)")]


def _reference_baseline_rows(refs: dict[str, Any], revenue: float, evaluated: str | None) -> list[tuple[str, str]]:
    """Each truthful baseline's revenue on the same profiles, the best one, and by how much the mechanism trails it
    (``evaluated``: the evaluated baseline's name, ``None`` for any other mechanism)."""
    rows = [(f"{name} revenue, same profiles", f"{mean_std(found['revenue_mean'], found['revenue_std'], 4)}; prices "
             + ", ".join(f"{p:.4f}" for p in found["prices"])) for name, found in refs.get("baselines", {}).items()]
    best = refs.get("best_truthful_baseline")
    return rows + baseline_rows(revenue, None if best is None else (best, refs["best_truthful_baseline_revenue_mean"]), evaluated)


def _audit_rows(audit: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Summary rows of the regret audit (none without ``--audit``)."""
    if audit is None:
        return []
    search = audit["search_on_audited"]
    found, searched = audit["regret_sum_over_agents_mean"], search["regret_sum_over_agents_mean"]
    ratio = f"{found / searched:.2f}" if searched > 0 else ("n/a (both 0)" if found == 0 else "inf")
    return [
        ("audited regret, mean over agents", _stat(audit, "regret_mean_over_agents")),
        ("audited regret, sum over agents", _stat(audit, "regret_sum_over_agents")),
        ("search regret, same profiles", f"{_stat(search, 'regret_sum_over_agents')} (sum over agents); "
                                         f"audit / search {ratio}"),
        ("audit", f"{audit['n_samples']} profiles, grid {audit['grid_points']} per number ({audit['grid_size']} reports), "
                  f"{audit['refine_starts']} best refined x {audit['refine_rounds']} rounds, {audit['time_s']:.1f} s"),
    ]


def _strong_rows(strong: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Summary rows of the strong adversary (none without ``--strong``)."""
    if strong is None:
        return []
    searched = strong["search_on_same_profiles"]["regret_sum_over_agents_mean"]
    return [
        ("strong adversary regret, mean over agents", _stat(strong, "regret_mean_over_agents")),
        ("strong adversary regret, sum over agents", f"{_stat(strong, 'regret_sum_over_agents')}; "
                                                     f"search on the same profiles {searched:.4f}"),
        ("strong adversary", f"{strong['n_samples']} profiles, {strong['starts']} starts ({strong['structured_starts']} "
                             f"structured, {strong['random_starts']} random), {strong['steps']} steps at lr "
                             f"{strong['lr']:g} of the domain's width, {strong['time_s']:.1f} s"),
    ]


def _strong_settings(args: argparse.Namespace) -> StrongSettings | None:
    """The strong adversary's settings from ``--strong*`` (``None`` without ``--strong``); bad values raise ``ValueError``."""
    if not args.strong:
        if args.strong_samples is not None:
            raise ValueError("--strong-samples needs --strong")
        return None
    if args.strong_samples is not None:
        check_positive_int(args.strong_samples, "--strong-samples")
    return StrongSettings(random_starts=args.strong_starts, steps=args.strong_steps, lr=args.strong_lr,
                          max_profiles=args.strong_max_profiles)


def _audit_settings(args: argparse.Namespace, items: int) -> AuditSettings | None:
    """The audit's settings from ``--audit*`` (``None`` without ``--audit``); bad values raise ``ValueError``."""
    if not args.audit:
        if args.audit_points is not None or args.audit_samples is not None:
            raise ValueError("--audit-points/--audit-samples need --audit")
        return None
    if items > MAX_ITEMS:
        raise ValueError(f"--audit grids each bidder's report: at most {MAX_ITEMS} items, this setting has {items}")
    if args.audit_samples is not None:
        check_positive_int(args.audit_samples, "--audit-samples")
    return AuditSettings(points=args.audit_points, max_profiles=args.audit_max_profiles)


def write_report(args: argparse.Namespace) -> dict[str, Any]:
    """Test the mechanism described by parsed ``args``; write and return the report (``evaluation.json``, figures)."""
    if args.threads is not None:
        check_positive_int(args.threads, "--threads")
        torch.set_num_threads(args.threads)
    if not math.isfinite(args.others):
        raise ValueError(f"--others must be a finite number, got {args.others}")
    protocol = Protocol(args.samples, args.steps, args.lr, args.restarts, args.batch_size)
    device = resolve_device(args.device)
    target = _target(args, device)
    mechanism = target.mechanism
    lowest, highest = float(target.distribution.support.low.max()), float(target.distribution.support.high.min())
    if not lowest <= args.others <= highest:
        raise ValueError(f"--others must lie in every bidder's value range [{lowest:g}, {highest:g}], got {args.others:g}")
    if args.eps_final is not None:
        if not hasattr(mechanism, "set_sinkhorn"):
            raise ValueError(f"--eps-final applies to Sinkhorn mechanisms only, not {type(mechanism).__name__}")
        mechanism.set_sinkhorn(eps_final=args.eps_final)
    audit_settings = _audit_settings(args, target.items)
    strong_settings = _strong_settings(args)
    check_writable(target.out, "--out", folder=True)  # before the protocol runs
    check_new([Path(target.out) / name for name in OUTPUTS], args.force, inputs=[args.checkpoint] if args.checkpoint else [])
    valuations = test_profiles(target.distribution, protocol.samples, target.data_seed, device)
    support = target.distribution.support
    result = run_protocol(mechanism, valuations, protocol, distribution=target.distribution, seed=target.search_seed,
                          demand=target.demand, progress=not args.no_progress,
                          audit_settings=audit_settings, audit_samples=args.audit_samples)
    if strong_settings is not None:
        result["strong"] = strong_against_search(
            mechanism, valuations, strong_settings, args.strong_samples, search_metrics=result["metrics"], protocol=protocol,
            low=support.low, high=support.high, seed=target.search_seed, demand=target.demand, progress=not args.no_progress,
        )
    demand = target.demand
    settings = layer_settings(mechanism)
    epsilons = None if settings is None else settings.epsilons
    report = {
        "source": target.source,
        "setting": {
            "description": f"{target.agents} bidder(s) x {target.items} item(s), {demand.description}",
            "mechanism": getattr(mechanism, "name", None) or type(mechanism).__name__,
            "agents": target.agents, "items": target.items, "demand": demand.name,
            "k": list(demand.k) if isinstance(demand.k, tuple) else demand.k,
            "distribution": {"name": target.distribution.name, **target.distribution.parameters()},
            "low": support.low.tolist(), "high": support.high.tolist(),
            "eps_final": None if epsilons is None else float(f"{epsilons[-1]:.12g}"),
        },
        **result,
        "protocol": {**result["protocol"], "data_seed": target.data_seed},
        "hardware": describe(device),
        "allocation_tolerance": allocation_tolerance(mechanism),
        "figures": [],
    }
    if target.baseline is not None:
        report["baseline"] = target.baseline.to_dict()
    out = Path(target.out)
    out.mkdir(parents=True, exist_ok=True)
    _figures(report, mechanism, target, args.others, out)
    write_json(out / "evaluation.json", report)
    return {**report, "out": str(out)}


def _figures(report: dict[str, Any], mechanism: nn.Module, target: Target, others: float, out: Path) -> None:
    """Heatmaps (two items) and training curves (a checkpoint with TensorBoard logs), as PNGs in ``out``."""
    if target.items == 2:
        from reporting.heatmaps import heatmap_figure

        heatmap_figure(mechanism, others=others, distribution=target.distribution).savefig(out / "heatmaps.png", dpi=100)
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
        report = write_report(args)
    except ValueError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(_summary(report))
    files = ", ".join(["evaluation.json", *report["figures"]])
    print(f"wrote {files} to {report['out']} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
