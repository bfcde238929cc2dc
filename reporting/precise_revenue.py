"""Revenue to a small standard error: a trained mechanism beside the truthful baselines on one large sample.

Why and how: docs/evaluation.md ("Revenue on a large sample").  ``python -m reporting.precise_revenue <ckpt>
[--samples 200000] [--seed 999] [--out FILE]`` writes ``<run>/evaluation/precise_revenue_<ckpt>.json`` by default.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from distributions import Setting
from baselines import baseline_revenues, best_truthful_baseline
from baselines.references import optimal_mechanism
from utils.atomic import check_new, write_json
from runs.checkpoints import load_checkpoint
from adversary.protocol import test_profiles
from reporting.tables import config_threads

__all__ = ["precise_revenue"]

PRECISE_SAMPLES = 200_000
PRECISE_SEED = 999  # the test split of this data seed: independent of the training data of seeds 0, 1, 2, ...


def _revenue(mechanism: nn.Module, valuations: Tensor, batch_size: int) -> Tensor:
    """Revenue (sum over agents) per profile ``(samples,)`` in float64, computed in chunks."""
    with torch.inference_mode():
        return torch.cat([mechanism(chunk)[1].sum(-1).double().cpu() for chunk in valuations.split(batch_size)])


def _summary(revenue: Tensor) -> dict[str, float]:
    return {"mean": revenue.mean().item(), "stderr": revenue.std().item() / math.sqrt(len(revenue))}


def precise_revenue(mechanism: nn.Module, valuations: Tensor, setting: Setting, *,
                    batch_size: int = 8192) -> dict[str, Any]:
    """Revenue of ``mechanism`` and of each applicable baseline on ``valuations`` ``(samples, agents, items)``,
    drawn from ``setting``'s distribution (the baselines are fitted to it, its optimum is known or not).

    Returns ``{"samples", "revenue": {mean, stderr}, "baselines": {name: {mean, stderr, prices, difference: {mean,
    stderr}}}, "best_truthful_baseline", "optimal": {...} or None}``; ``difference`` is learned - baseline per
    profile (paired), ``best_truthful_baseline`` the baseline with the highest mean on this sample.
    """
    if valuations.dim() != 3 or len(valuations) < 2:
        raise ValueError(f"valuations must be (samples >= 2, agents, items), got {tuple(valuations.shape)}")
    learned = _revenue(mechanism, valuations, batch_size)
    values = valuations.detach().cpu().double()
    baselines = baseline_revenues(values, setting, batch_size=batch_size)
    result: dict[str, Any] = {"samples": len(valuations), "revenue": _summary(learned), "baselines": {
        name: {**_summary(b.revenue), "prices": list(b.fitted.prices), "difference": _summary(learned - b.revenue)}
        for name, b in baselines.items()}}
    best = best_truthful_baseline(baselines)
    result["best_truthful_baseline"], result["optimal"] = best[0] if best else None, None
    optimum = optimal_mechanism(setting)
    if optimum is not None:
        revenue = _revenue(optimum, values, batch_size)
        result["optimal"] = {"name": optimum.name, "closed_form": optimum.expected_revenue, **_summary(revenue),
                             "difference": _summary(learned - revenue)}
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: measure a checkpoint's revenue on a large sample; print and write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m reporting.precise_revenue", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a train.py checkpoint")
    parser.add_argument("--samples", type=int, default=PRECISE_SAMPLES, help=f"profiles (default {PRECISE_SAMPLES})")
    parser.add_argument("--seed", type=int, default=PRECISE_SEED, help=f"the sample's seed (default {PRECISE_SEED})")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default <run>/evaluation/precise_revenue_<ckpt>.json)")
    parser.add_argument("--threads", type=int, default=config_threads(),
                        help="torch CPU threads (default: train.py's, threads in conf/config.yaml)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file (default: refused)")
    args = parser.parse_args(argv)
    if args.samples < 2:
        parser.error("--samples must be >= 2")
    if not args.checkpoint.is_file():
        parser.error(f"no checkpoint at {args.checkpoint}")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    run = load_checkpoint(args.checkpoint)
    out = args.out or run.run_dir / "evaluation" / f"precise_revenue_{run.checkpoint.stem}.json"
    try:
        check_new([out], args.force, inputs=[args.checkpoint])
    except ValueError as error:
        parser.error(str(error))
    valuations = test_profiles(run.setting.distribution, args.samples, args.seed)
    result = {"checkpoint": str(run.checkpoint), "seed": args.seed,
              **precise_revenue(run.mechanism, valuations, run.setting)}
    write_json(out, result)
    r = result["revenue"]
    print(f"revenue {r['mean']:.5f} +- {r['stderr']:.5f} on {args.samples} profiles (seed {args.seed})")
    for name, b in result["baselines"].items():
        d = b["difference"]
        print(f"  {name:14s} {b['mean']:.5f} +- {b['stderr']:.5f}   learned - {name}: {d['mean']:+.5f} +- "
              f"{d['stderr']:.5f}")
    if (o := result["optimal"]) is not None:
        print(f"  optimal        {o['mean']:.5f} (closed form {o['closed_form']:.5f})   learned - optimal: "
              f"{o['difference']['mean']:+.5f} +- {o['difference']['stderr']:.5f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
