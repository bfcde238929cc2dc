"""What ``evaluate.py`` tests: a trained checkpoint or a baseline, its setting, its seeds and its output folder."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from baselines import BASELINE_NAMES, FittedBaseline, fit_baseline
from baselines.references import optimal_mechanism
from baselines.vcg import VCG
from distributions import Setting, named_distribution
from mechanisms.demand import Demand
from runs.checkpoints import load_checkpoint

__all__ = ["BASELINES", "BASELINE_SETTING", "Target", "evaluation_target"]

BASELINES = ("vcg", "optimal", *BASELINE_NAMES)
BASELINE_SETTING = {"demand": "unit", "k": 1, "agents": 1, "items": 2, "distribution": "uniform"}  # the baseline options' defaults


@dataclass
class Target:
    """What to test: the mechanism, its setting, seeds (profiles, random starts), where to write."""

    mechanism: nn.Module
    setting: Setting
    data_seed: int
    search_seed: int
    out: Path
    source: str
    run_dir: Path | None = None
    baseline: FittedBaseline | None = None


def evaluation_target(args: argparse.Namespace, device: torch.device) -> Target:
    """The mechanism to test and its setting, from ``evaluate.py``'s options: a checkpoint or a baseline name
    (``--mechanism`` with ``--demand --k --agents --items --distribution``, defaults :data:`BASELINE_SETTING`)."""
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
        seeds = (run.data_seed, run.test_seed) if args.seed is None else (args.seed, args.seed)
        suffix = "" if args.eps_final is None else f"_eps{args.eps_final:g}"
        return Target(run.mechanism, run.setting, *seeds, source=str(run.checkpoint), run_dir=run.run_dir,
                      out=args.out or run.run_dir / "evaluation" / f"{run.checkpoint.stem}{suffix}")
    setting = Setting(args.agents, args.items, Demand(args.demand, args.k), named_distribution(args.distribution, args.agents, args.items))
    fitted = fit_baseline(args.mechanism, setting) if args.mechanism in BASELINE_NAMES else None
    if fitted is not None:
        mechanism = fitted.mechanism
    elif args.mechanism == "vcg":
        mechanism = VCG(args.agents, args.items, setting.demand)
    elif (mechanism := optimal_mechanism(setting)) is None:
        raise ValueError(f"no optimal mechanism is known for {args.agents} bidder(s), {args.items} item(s), "
                         f"{setting.demand.name} demand, {args.distribution} values (known: uniform 1x2 unit/exactly_k/"
                         "additive and n bidders x 1 item; exponential n x 1; triangle 1x2 additive)")
    seed = 0 if args.seed is None else args.seed
    name = f"{args.mechanism}_{setting.demand.name}_{args.agents}x{args.items}"
    name += "" if args.distribution == "uniform" else f"_{args.distribution}"
    return Target(mechanism.to(device), setting, seed, seed, source=args.mechanism, baseline=fitted,
                  out=args.out or Path("outputs") / "evaluate" / name)
