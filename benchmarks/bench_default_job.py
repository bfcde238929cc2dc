"""Where the default job's time goes, before and after the speedups of issue 8 (docs/results.md), timed interleaved.

On the default job's mechanism (1x2 unit-demand Sinkhorn, batch 512, 1 thread), with ``torch.tanh`` (before)
and :class:`mechanisms.networks.Tanh` (after): a training step with the search from the truth (25 steps) and
warm-started (10 and 5 steps), and the test protocol's search extrapolated to its 1000 steps.  Variants run in
turn; the table gives medians and ratios to the first row.

    python benchmarks/bench_default_job.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from adversary.regret import regret
from adversary.search import MisreportSearch, find_misreports
from mechanisms.networks import Tanh
from mechanisms.sinkhorn_auction import SinkhornMechanism
from lagrangian.loss import lagrangian_loss


def _mechanism(fast_tanh: bool) -> nn.Module:
    torch.manual_seed(0)
    mechanism = SinkhornMechanism(1, 2, "unit")
    if not fast_tanh:
        for module in list(mechanism.modules()):
            for name, child in module.named_children():
                if isinstance(child, Tanh):
                    setattr(module, name, nn.Tanh())
    return mechanism


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--eval-steps", type=int, default=10, help="test-protocol search steps per timing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    batch = torch.rand(512, 1, 2, generator=generator)
    warm = torch.rand(512, 1, 2, generator=generator)
    test = torch.rand(1000, 1, 2, generator=generator)
    multipliers, rho = torch.full((1,), 5.0), torch.tensor(10.0)

    def train_step(fast: bool, steps: int, init: bool) -> callable:
        mechanism = _mechanism(fast)
        optimizer = torch.optim.Adam(mechanism.parameters(), lr=1e-3)

        def step() -> None:
            misreports = find_misreports(mechanism, batch, MisreportSearch(steps, 0.1), init=warm if init else None)
            terms = regret(mechanism, batch, misreports)
            loss = lagrangian_loss(terms.payment.sum(-1), terms.regret, multipliers, rho)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        return step

    def test_search(fast: bool) -> callable:
        mechanism = _mechanism(fast)
        search = MisreportSearch(args.eval_steps, 0.1, 10)
        return lambda: find_misreports(mechanism, test, search, generator=torch.Generator().manual_seed(0))

    groups = {"training step (ms)": {"torch.tanh, truth, 25 steps (before)": train_step(False, 25, False),
                                     "fast tanh, truth, 25 steps": train_step(True, 25, False),
                                     "fast tanh, warm start, 10 steps": train_step(True, 10, True),
                                     "fast tanh, warm start, 5 steps (after)": train_step(True, 5, True)},
              "test protocol, 1000 steps (s)": {"torch.tanh (before)": test_search(False),
                                                "fast tanh (after)": test_search(True)}}
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    for title, variants in groups.items():
        times: dict[str, list[float]] = {name: [] for name in variants}
        for fn in variants.values():
            fn()  # warm-up
        for _ in range(args.repeats):
            for name, fn in variants.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        scale = 1000.0 if "ms" in title else 1000 / args.eval_steps
        first = statistics.median(next(iter(times.values())))
        print(f"\n| {title} | median | ratio |\n| --- | --- | --- |")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"| {name} | {median * scale:.1f} | {median / first:.2f} |")


if __name__ == "__main__":
    main()
