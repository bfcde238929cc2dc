"""Throughput of the Sinkhorn layer against POT's batched log-domain Sinkhorn, forward + backward, as a markdown
table (what is timed and how the errors compare: docs/sinkhorn.md, "Benchmark").

    python benchmarks/bench_sinkhorn.py                 # CPU, float32, batch 4096
    python benchmarks/bench_sinkhorn.py --device cuda
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from functools import partial
from typing import Callable

import torch
from torch import Tensor

from mechanisms.demand import marginals
from mechanisms.sinkhorn import geometric_epsilons, row_error, sinkhorn
from utils.hardware import describe

SHAPES = ((1, 2), (2, 3), (2, 15), (5, 10))
FINAL_EPS = 0.05
TARGET_ERROR = 1e-2
POT_TOLS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3)
Solver = Callable[[Tensor, Tensor, Tensor], Tensor]


def make_problem(n_agents: int, n_items: int, batch: int, dtype: torch.dtype, device: str) -> tuple[Tensor, ...]:
    """Cost ``(batch, agents + 1, items + 1)``, marginals ``a``, ``b`` ``(batch, .)`` and loss weights (seed 0)."""
    generator = torch.Generator().manual_seed(0)
    cost = torch.zeros(batch, n_agents + 1, n_items + 1, dtype=dtype)
    cost[:, :n_agents, :n_items] = torch.randn(batch, n_agents, n_items, generator=generator, dtype=dtype)
    weights = torch.randn(batch, n_agents + 1, n_items + 1, generator=generator, dtype=dtype)
    a, b = marginals("unit", n_agents, n_items, dtype=dtype, device=device)
    return cost.to(device), a.expand(batch, -1).contiguous(), b.expand(batch, -1).contiguous(), weights.to(device)


def layer_solver(tol: float) -> Solver:
    """This layer with the paper's schedule (10 epsilons, 1 -> FINAL_EPS)."""
    return partial(sinkhorn, epsilons=geometric_epsilons(1.0, FINAL_EPS, 10), tol=tol)


def pot_solver(tol: float, max_iter: int) -> Solver:
    """POT's batched log-domain Sinkhorn at ``reg = FINAL_EPS`` with autodiff gradients."""
    import ot

    return lambda cost, a, b: ot.solve_batch(cost, reg=FINAL_EPS, a=a, b=b, method="log_sinkhorn", grad="autodiff",
                                             tol=tol, max_iter=max_iter).plan


def calibrate_pot(cost: Tensor, a: Tensor, b: Tensor, max_iter: int) -> float:
    """Loosest POT tolerance whose plan meets ``TARGET_ERROR`` (the last one if none does)."""
    for tol in POT_TOLS:
        with torch.no_grad():
            plan = pot_solver(tol, max_iter)(cost, a, b)
        if row_error(plan, a[0]) <= TARGET_ERROR:
            return tol
    return POT_TOLS[-1]


def sync(device: str) -> None:
    """Wait for queued device work so that wall-clock timings are complete."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_solver(solver: Solver, cost: Tensor, a: Tensor, b: Tensor, weights: Tensor, warmup: int,
                repeats: int) -> tuple[float, float]:
    """Median seconds of one forward + backward, and the plan's max relative row error (``a`` ``(batch, N)``)."""
    device = str(cost.device)
    times, error = [], float("nan")
    for rep in range(warmup + repeats):
        leaf = cost.detach().clone().requires_grad_(True)
        sync(device)
        start = time.perf_counter()
        plan = solver(leaf, a, b)
        (plan * weights).sum().backward()
        sync(device)
        if rep >= warmup:
            times.append(time.perf_counter() - start)
        error = row_error(plan.detach(), a[0])
    return statistics.median(times), error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    for flag, default in (("--batch", 4096), ("--warmup", 2), ("--repeats", 5), ("--pot-max-iter", 10000)):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-pot", action="store_true", help="time only this layer")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(f"device={args.device} ({describe(args.device)}), torch {torch.__version__}, "
          f"threads={torch.get_num_threads()}, dtype={args.dtype}, batch={args.batch}, warmup={args.warmup}, "
          f"repeats={args.repeats} (median); layer: {sinkhorn.__module__} ({inspect.getsourcefile(sinkhorn)})\n")
    print("| agents x items | layer problems/s | layer error | POT tol | POT problems/s | POT error | speedup "
          "| layer at tol = POT error: problems/s | error | speedup |\n" + "|---" * 10 + "|")
    timing = (args.warmup, args.repeats)
    for n_agents, n_items in SHAPES:
        problem = make_problem(n_agents, n_items, args.batch, dtype, args.device)
        seconds, error = time_solver(layer_solver(TARGET_ERROR), *problem, *timing)
        row = f"| {n_agents}x{n_items} | {args.batch / seconds:,.0f} | {error:.1e} |"
        if args.no_pot:
            print(row + " - | - | - | - | - | - | - |", flush=True)
            continue
        pot_tol = calibrate_pot(*problem[:3], args.pot_max_iter)
        pot_seconds, pot_error = time_solver(pot_solver(pot_tol, args.pot_max_iter), *problem, *timing)
        # The same comparison at an error no larger than POT's: this layer's tol set to POT's error.
        matched_seconds, matched_error = time_solver(layer_solver(min(TARGET_ERROR, pot_error)), *problem, *timing)
        print(row + f" {pot_tol:g} | {args.batch / pot_seconds:,.0f} | {pot_error:.1e} "
              f"| {pot_seconds / seconds:.1f}x | {args.batch / matched_seconds:,.0f} | {matched_error:.1e} "
              f"| {pot_seconds / matched_seconds:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
