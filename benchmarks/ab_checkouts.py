"""Time one workload under two checkouts of the project, interleaved call by call (docs/mechanisms.md).

    git archive --prefix=base/ c918746 | tar -x -C /tmp       # the code before a change
    python benchmarks/ab_checkouts.py /tmp/base . --workload search --mechanism lottery_ama --setting 2x3

One worker process per checkout (importing the project from its own directory, torch on 1 thread) builds the
workload from seed 0; then they take turns, one timed call each, so that load changes hit both alike.  Prints
the medians and the ratio A / B (also to a new ``--json`` file).  Workloads (unit demand, CPU): ``search``,
``find_misreports`` on ``--batch`` profiles; ``step``, one eager step of the checkout's ``bench_step.Step``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

MECHANISMS = {  # name: (module, class) in every checkout
    "sinkhorn": ("mechanisms.sinkhorn_auction", "SinkhornMechanism"),
    "sinkhorn_potential": ("mechanisms.potential_auction", "PotentialSinkhornMechanism"),
    "lottery_ama": ("mechanisms.lottery_ama", "LotteryAMA"), "regretnet": ("mechanisms.regretnet", "RegretNet")}


def setting(text: str) -> tuple[int, int]:
    """``"2x3"`` -> ``(2, 3)`` (``--setting``, also of ``benchmarks/bench_misreport.py``)."""
    try:
        n, m = (int(x) for x in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a setting is AGENTSxITEMS, e.g. 2x3, got {text!r}") from None
    if n < 1 or m < 1:
        raise argparse.ArgumentTypeError(f"a setting needs at least one agent and one item, got {text!r}")
    return n, m


def _workload(checkout: Path, args: argparse.Namespace):
    """The workload's call, built from ``checkout``'s code (seed 0)."""
    sys.path.insert(0, str(checkout))
    import torch

    from adversary.search import MisreportSearch, find_misreports

    torch.set_num_threads(1)
    torch.manual_seed(0)
    module, name = MECHANISMS[args.mechanism]
    n, m = args.setting
    mechanism = getattr(importlib.import_module(module), name)(n, m, "unit")
    batches = [torch.rand(args.batch, n, m, generator=torch.Generator().manual_seed(k)) for k in range(4)]
    if args.workload == "search":
        search = MisreportSearch(steps=args.search_steps, restarts=args.restarts)
        return lambda i: find_misreports(mechanism, batches[i % 4], search, generator=torch.Generator().manual_seed(i))
    spec = importlib.util.spec_from_file_location("bench_step", checkout / "benchmarks" / "bench_step.py")
    bench_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_step)
    step = bench_step.Step(mechanism, "eager", torch.device("cpu"), args.search_steps)
    return lambda i: step(batches[i % 4])


def _worker(args: argparse.Namespace) -> None:
    """Build the workload, print ``ready``, then one timed call per line read, printing its seconds."""
    call = _workload(Path(args.worker).resolve(), args)
    for i in range(args.warmup):
        call(i)
    print("ready", flush=True)
    for i, _ in enumerate(sys.stdin):
        start = time.perf_counter()
        call(i)
        print(time.perf_counter() - start, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", nargs="?", help="checkout A (e.g. the code before a change)")
    parser.add_argument("b", nargs="?", help="checkout B")
    parser.add_argument("--workload", choices=["search", "step"], default="search")
    parser.add_argument("--mechanism", choices=sorted(MECHANISMS), default="lottery_ama")
    parser.add_argument("--setting", type=setting, default=(2, 3), help="AGENTSxITEMS, e.g. 2x3")
    parser.add_argument("--batch", type=int, default=512, help="profiles per call")
    parser.add_argument("--search-steps", type=int, default=25, help="Adam steps of the search")
    parser.add_argument("--restarts", type=int, default=0, help="random starts of the search (workload search)")
    parser.add_argument("--calls", type=int, default=10, help="timed calls per checkout, taking turns")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first")
    parser.add_argument("--json", default=None, help="also write the result to this new file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args)
    if not (args.a and args.b):
        parser.error("give the two checkouts A and B")
    for checkout in (args.a, args.b):
        if not (Path(checkout) / "adversary" / "search.py").is_file():
            parser.error(f"{checkout} is not a checkout of the project (no adversary/search.py)")
    if args.json and Path(args.json).exists():
        parser.error(f"--json {args.json} exists: name a new file")
    if args.calls < 1:
        parser.error(f"--calls must be >= 1, got {args.calls}")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
             if k in ("workload", "mechanism", "batch", "search_steps", "restarts", "warmup")]
    flags.append(f"--setting={args.setting[0]}x{args.setting[1]}")
    workers = [subprocess.Popen([sys.executable, __file__, "--worker", str(Path(c).resolve()), *flags],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for c in (args.a, args.b)]
    for worker in workers:
        if worker.stdout.readline().strip() != "ready":
            raise SystemExit(f"a worker failed while building the workload (exit {worker.wait()})")
    times: list[list[float]] = [[], []]
    for _ in range(args.calls):
        for worker, spent in zip(workers, times):
            worker.stdin.write("go\n")
            worker.stdin.flush()
            spent.append(float(worker.stdout.readline()))
    for worker in workers:
        worker.stdin.close()
        worker.wait()
    medians = [statistics.median(t) for t in times]
    result = {"a": str(args.a), "b": str(args.b), "workload": args.workload, "mechanism": args.mechanism,
              "setting": f"{args.setting[0]}x{args.setting[1]}", "batch": args.batch, "search_steps": args.search_steps,
              "restarts": args.restarts, "calls": args.calls, "median_s_a": medians[0], "median_s_b": medians[1],
              "ratio_a_over_b": medians[0] / medians[1], "times_a": times[0], "times_b": times[1]}
    print(f"{args.workload} {args.mechanism} {result['setting']} batch {args.batch}: A {medians[0]:.3f} s, "
          f"B {medians[1]:.3f} s per call (medians of {args.calls}); A / B = {result['ratio_a_over_b']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
