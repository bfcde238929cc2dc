"""Cost of the strong adversary (:func:`adversary.strong.strong_regret`) on an untrained unit-demand Sinkhorn
mechanism: wall time, time per step extrapolated to the default steps, and the regret (docs/regret_audit.md).

    python benchmarks/bench_strong.py --samples 100 --steps 20            # CPU, 1 thread
    python benchmarks/bench_strong.py --device cuda --samples 1000          # the defaults on a GPU
"""

from __future__ import annotations

import argparse
import time

import torch

from adversary.strong import StrongSettings, strong_regret
from mechanisms.sinkhorn_auction import SinkhornMechanism
from utils.hardware import describe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    for flag, default in (("--threads", 1), ("--agents", 2), ("--items", 15), ("--samples", 100),
                          ("--steps", StrongSettings.steps)):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--starts", type=int, default=StrongSettings.random_starts, help="random starts")
    parser.add_argument("--max-profiles", type=int, default=StrongSettings.max_profiles)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    mechanism = SinkhornMechanism(args.agents, args.items, "unit").to(args.device).eval()
    valuations = torch.rand(args.samples, args.agents, args.items, device=args.device)
    settings = StrongSettings(random_starts=args.starts, steps=args.steps, max_profiles=args.max_profiles)
    start = time.perf_counter()
    report = strong_regret(mechanism, valuations, settings, progress=True)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    steps = max(1, args.steps)
    print(f"{describe(args.device)}, {torch.get_num_threads()} thread(s); {args.agents}x{args.items} unit, untrained Sinkhorn")
    print(f"{args.samples} profiles, {report.starts} starts ({report.structured_starts} structured, {report.random_starts} "
          f"random), {args.steps} steps: {elapsed:.1f} s ({elapsed / steps:.3f} s per step; "
          f"{elapsed / steps * StrongSettings.steps / 60:.1f} min for {StrongSettings.steps} steps)")
    print(f"regret, sum over agents: mean {report.regret_sum_over_agents_mean:.5f}, max {report.regret_sum_over_agents_max:.5f}")


if __name__ == "__main__":
    main()
