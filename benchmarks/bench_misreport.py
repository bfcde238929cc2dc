"""Cost of the misreport search, the training and evaluation hot path.

For each mechanism and agents x items setting, times

* a training step's regret work: ``find_misreports`` with the paper's 25 Adam
  steps on a batch, then ``regret`` and a backward pass of ``regret.mean()``;
* evaluation search steps: ``--eval-steps`` steps from the truth and 10 random
  starts on ``--eval-samples`` samples, reported per step and extrapolated to
  the paper's 1000 steps.

Prints a markdown table.

    python benchmarks/bench_misreport.py                    # CPU
    python benchmarks/bench_misreport.py --device cuda --batch 4096 --eval-samples 1000
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Callable

import torch
from torch import nn

from adversary.regret import regret
from adversary.search import MisreportSearch, find_misreports
from mechanisms.regretnet import RegretNet
from mechanisms.sinkhorn_auction import SinkhornMechanism

SETTINGS = ((2, 3), (3, 10))
MECHANISMS: dict[str, Callable[[int, int], nn.Module]] = {
    "sinkhorn": lambda n, m: SinkhornMechanism(n, m, "unit"),
    "regretnet": lambda n, m: RegretNet(n, m, "unit"),
}


def timed(fn: Callable[[], object], device: str) -> float:
    """Wall-clock seconds of one call of ``fn`` (after one warm-up call)."""
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=512, help="training batch (the paper: 4096)")
    parser.add_argument("--eval-samples", type=int, default=100, help="evaluation samples (the paper: 1000)")
    parser.add_argument("--eval-steps", type=int, default=10, help="timed evaluation steps")
    args = parser.parse_args()
    name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    print(f"device: {args.device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"training: batch {args.batch}, 25 steps; evaluation: {args.eval_samples} samples, 11 starts\n")
    print("| mechanism | agents x items | train step regret work (s) | eval search step (ms) | eval, 1000 steps (s) |")
    print("|---|---|---|---|---|")
    for mech_name, make in MECHANISMS.items():
        for n, m in SETTINGS:
            torch.manual_seed(0)
            mechanism = make(n, m).to(args.device)
            train_v = torch.rand(args.batch, n, m, device=args.device)
            eval_v = torch.rand(args.eval_samples, n, m, device=args.device)

            def train_step() -> None:
                misreports = find_misreports(mechanism, train_v, MisreportSearch(steps=25))
                regret(mechanism, train_v, misreports).regret.mean().backward()

            def eval_search() -> None:
                find_misreports(mechanism, eval_v, MisreportSearch(steps=args.eval_steps, restarts=10))

            train_s = timed(train_step, args.device)
            step_s = timed(eval_search, args.device) / (args.eval_steps + 1)
            print(f"| {mech_name} | {n} x {m} | {train_s:.3f} | {1e3 * step_s:.1f} | {1000 * step_s:.0f} |")


if __name__ == "__main__":
    main()
