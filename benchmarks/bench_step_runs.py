"""The comparisons of ``benchmarks/bench_step.py`` beyond one row per case: ensembles of K members against
one ordinary run (``--ensemble``) and K processes sharing one device (``--concurrent``)."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.bench_step_cases import cases
from benchmarks.bench_step_timing import measure

ENSEMBLE_SETTINGS = ["2x3 unit", "2x15 unit"]  # --ensemble's settings unless --only names others


def ensembles(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Every ``--ensemble`` size against one ordinary run, per setting, mechanism and variant: each row adds
    member-steps per second and the speedup over K single runs one after another."""
    rows = []
    if not args.quiet:
        print(f"{'setting':<12} {'mechanism':<10} {'variant':<6} {'members':>7} {'ms/step':>9} {'member-steps/s':>15} "
              f"{'vs K sequential':>16}", flush=True)  # fmt: skip
    for setting, mechanism, variant in cases(args, device):
        if setting[0] not in (args.only or ENSEMBLE_SETTINGS):
            continue
        single = measure(setting, mechanism, variant, device, args)
        for members in args.ensemble:
            row = single if members == 1 else measure(setting, mechanism, variant, device, args, members)
            row = {**row, "kind": "single" if members == 1 else "ensemble",
                   "member_steps_per_s": members / (row["ms_per_step"] / 1000),
                   "speedup_vs_sequential": members * single["ms_per_step"] / row["ms_per_step"]}
            rows.append(row)
            if not args.quiet:
                print(f"{setting[0]:<12} {mechanism:<10} {variant:<6} {members:>7} {row['ms_per_step']:9.1f} "
                      f"{row['member_steps_per_s']:15.1f} {row['speedup_vs_sequential']:15.2f}x", flush=True)  # fmt: skip
    return rows


def concurrent(args: argparse.Namespace, script: Path) -> list[dict]:
    """Total steps per second of K processes of ``script`` (``bench_step.py``) running the same 2x3 fast step (graph
    on CUDA), all warmed up, then timing steps over the same ``--window`` seconds (docs/throughput.md)."""
    rows = []
    variant = "graph" if args.device == "cuda" else "fast"
    for k in args.concurrent:
        command = [sys.executable, str(script), "--device", args.device, "--only", "2x3 unit", "--variants",
                   variant, "--mechanisms", "sinkhorn", "--warmup", str(args.warmup), "--window", str(args.window),
                   "--search-steps", str(args.search_steps), "--json", "/dev/null", "--quiet"]
        procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(k)]
        for p in procs:  # every process has warmed up
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a concurrent benchmark process failed before timing (exit {p.wait()})")
        begin = time.time() + 1.0
        for p in procs:
            p.stdin.write(f"{begin}\n")
            p.stdin.flush()
        outputs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        steps = [o["steps"] for o in outputs]
        rows.append({"processes": k, "window_s": args.window, "steps_each": steps,
                     "median_ms_per_step_each": statistics.median(o["ms_per_step"] for o in outputs),
                     "total_steps_per_s": sum(steps) / max(o["elapsed_s"] for o in outputs)})
        print(f"{k} concurrent 2x3 runs: {rows[-1]['total_steps_per_s']:.1f} steps/s in total over {args.window} s "
              f"({rows[-1]['median_ms_per_step_each']:.1f} ms per step each)", flush=True)  # fmt: skip
    return rows
