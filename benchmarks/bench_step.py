"""Time one complete training step: misreport search, regret, loss, backward, optimizer step, rho/lambda
(docs/throughput.md).

    python benchmarks/bench_step.py --device cpu --threads 1          # the CPU table
    python benchmarks/bench_step.py --device cuda                     # the GPU table
    python benchmarks/bench_step.py --device cuda --concurrent 1,2,4,6 --window 20   # runs sharing one GPU
    python benchmarks/bench_step.py --device cuda --ensemble 1,2,4,8,16   # K members as one model (docs/ensembles.md)

Variants: ``eager``, the step of :class:`training.AuctionModule` without the fast path; ``fast``,
:class:`training.fast_step.FastStep` run eagerly; ``graph``, the same captured as a CUDA graph (CUDA only).
Each case is warmed up, then timed (median ms per step, profiles per second, peak memory).  Results go to
``--json``, never over a file unless ``--force``; the exit status is 1 when a case failed (its row says why).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # python benchmarks/bench_step.py: the project's packages and benchmarks/
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_step_cases import PLAIN, cases, check_mechanism_names  # noqa: E402
from benchmarks.bench_step_runs import concurrent, ensembles  # noqa: E402
from benchmarks.bench_step_timing import Step, interleaved, measure  # noqa: E402
from utils.atomic import check_new, write_json  # noqa: E402
from utils.hardware import describe as describe_hardware  # noqa: E402

__all__ = ["Step", "default_output", "main"]  # Step: the step workload of benchmarks/ab_checkouts.py

HEADER = f"{'setting':<18} {'mechanism':<10} {'variant':<6} {'ms/step':>9} {'profiles/s':>11} {'peak MiB':>9}"


def print_row(row: dict) -> None:
    """One case's line of the table (``failed: ...`` for a row with an ``error``)."""
    mechanism, variant = row["mechanism"], row["variant"]
    if "error" in row:
        print(f"{row['setting']:<18} {mechanism:<10} {variant:<6} failed: {row['error']}", flush=True)
        return
    memory = "" if row["peak_memory_mib"] is None else f"{row['peak_memory_mib']:.0f}"
    print(f"{row['setting']:<18} {mechanism:<10} {variant:<6} {row['ms_per_step']:9.1f} "
          f"{row['profiles_per_s']:11.0f} {memory:>9}"
          + (f"  {row['kernels_per_step']} kernels" if "kernels_per_step" in row else "")
          + (f"  {row['ratio_to_first']:.2f}x the setting's first" if "ratio_to_first" in row else ""),
          flush=True)  # fmt: skip


def default_output(directory: Path, device: str) -> Path:
    """``directory/step_<device>.json``, or ``step_<device>_<UTC time>.json`` where that exists (never overwritten)."""
    recorded, stamp = directory / f"step_{device}.json", time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return directory / f"step_{device}_{stamp}.json" if recorded.exists() else recorded


def finish(path: Path, result: dict, rows: list[dict], quiet: bool) -> None:
    """Print the last row as JSON (``quiet``), write ``result`` to ``path`` (not ``/dev/null``), and exit with
    status 1 naming the failed cases when a row has an ``error``."""
    if quiet:
        print(json.dumps(rows[-1] if rows else {}))
    if str(path) != "/dev/null":
        write_json(path, result)  # (its folder made where missing)
        if not quiet:
            print(f"wrote {path}")
    failed = [f"{row.get('setting')} {row.get('mechanism')} {row.get('variant')}" for row in rows if "error" in row]
    if failed:
        print(f"error: {len(failed)} case(s) failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


def _ints(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``."""
    return [int(x) for x in text.split(",")]


def main() -> None:
    """Parse the command line (bad input: exit 2 before any work), time the cases, print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the training default: 1)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (capture, compilation)")
    parser.add_argument("--search-steps", type=int, default=25, help="misreport steps per training step")
    parser.add_argument("--only", nargs="*", help="settings whose name contains one of these, e.g. 2x3")
    parser.add_argument("--variants", nargs="*", choices=["eager", "fast", "graph"])
    parser.add_argument("--mechanisms", nargs="*", default=["sinkhorn", "regretnet"],
                        help="sinkhorn, sinkhorn_potential (mechanism=sinkhorn_potential), lottery_ama, regretnet; "
                             f"NAME{PLAIN}: without its prepared calls (eager only)")
    parser.add_argument("--interleave", action="store_true",
                        help="build and warm every case, then time them in turns (ratios on a shared machine)")
    parser.add_argument("--count-kernels", action="store_true", help="CUDA kernels per step (eager variants)")
    parser.add_argument("--concurrent", type=_ints,
                        help="e.g. 1,2,4,6: total throughput of that many processes on one GPU")
    parser.add_argument("--window", type=float,
                        help="with --concurrent: seconds every process times steps, all over the same interval")
    parser.add_argument("--ensemble", type=_ints,
                        help="e.g. 1,2,4,8,16: ensembles of that many members against one run (2x3 and 2x15 unit)")
    parser.add_argument("--batch", type=int, default=None, help="profiles per batch instead of each setting's")
    parser.add_argument("--json", default=None, help="output file (default benchmarks/results/step_<device>.json; "
                        "where that exists, step_<device>_<UTC time>.json beside it)")
    parser.add_argument("--force", action="store_true", help="replace an existing --json file (default: refused)")
    parser.add_argument("--quiet", action="store_true", help="print only the JSON rows")
    args = parser.parse_args()
    check_mechanism_names(parser, args.mechanisms, args.variants)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    path = Path(args.json) if args.json else default_output(Path(__file__).parent / "results", args.device)
    try:
        check_new([path], args.force, "--json")
    except ValueError as error:
        parser.error(str(error))
    result = {"hardware": describe_hardware(device)}
    if args.ensemble:
        if any(k < 1 for k in args.ensemble):
            parser.error(f"--ensemble sizes must be >= 1, got {args.ensemble}")
        rows = ensembles(args, device)
        result.update(torch=torch.__version__, batch=args.batch, search_steps=args.search_steps, ensemble=rows)
    elif args.concurrent:
        args.window = args.window or 20.0
        rows = result["concurrent"] = concurrent(args, Path(__file__))
    else:
        if not args.quiet:
            print(f"{result['hardware']}\n{HEADER}", flush=True)
        rows = interleaved(list(cases(args, device)), device, args) if args.interleave else []
        for row in rows if not args.quiet else []:
            print_row(row)
        for setting, mechanism, variant in ([] if args.interleave else cases(args, device)):
            try:
                row = measure(setting, mechanism, variant, device, args)
            except Exception as error:  # report and go on: one failing variant must not hide the others
                row = {"setting": setting[0], "mechanism": mechanism, "variant": variant, "error": repr(error)[:300]}
            rows.append(row)
            if not args.quiet:
                print_row(row)
        result.update(torch=torch.__version__, rows=rows)
    finish(path, result, rows, args.quiet)


if __name__ == "__main__":
    main()
