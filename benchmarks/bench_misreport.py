"""Cost of the misreport search, the training and evaluation hot path (docs/throughput.md).

For each mechanism (those of ``benchmarks/bench_step.py``, unit demand) and setting: a training step's regret
work (``find_misreports`` with 25 Adam steps, ``regret``, backward) and ``--eval-steps`` evaluation search
steps (truth + 10 random starts), per step and extrapolated to 1000.  Medians of ``--repeats`` calls, the
mechanisms of a setting in turn; a markdown table, and the rows in ``--json``.

    python benchmarks/bench_misreport.py                    # CPU
    python benchmarks/bench_misreport.py --device cuda --batch 4096 --eval-samples 1000
    python benchmarks/bench_misreport.py --mechanisms lottery_ama lottery_ama+plain --settings 2x3 2x15 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adversary.regret import regret  # noqa: E402
from adversary.search import MisreportSearch, find_misreports  # noqa: E402
from benchmarks.ab_checkouts import setting  # noqa: E402
from benchmarks.bench_step_cases import MECHANISMS, PLAIN, build_mechanism, check_mechanism_names  # noqa: E402
from benchmarks.bench_step_timing import seconds  # noqa: E402
from utils.atomic import write_json  # noqa: E402
from utils.hardware import describe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the training default: 1)")
    parser.add_argument("--batch", type=int, default=512, help="training batch (the paper: 4096)")
    parser.add_argument("--eval-samples", type=int, default=100, help="evaluation samples (the paper: 1000)")
    parser.add_argument("--eval-steps", type=int, default=10, help="timed evaluation steps")
    parser.add_argument("--mechanisms", nargs="+", default=["sinkhorn", "regretnet"],
                        help=f"{', '.join(MECHANISMS)}; NAME{PLAIN}: without its prepared calls")
    parser.add_argument("--settings", nargs="+", type=setting, default=[(2, 3), (3, 10)], help="e.g. 2x3 2x15")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per measurement (median), interleaved")
    parser.add_argument("--json", default=None, help="also write the rows to this file (refused if it exists)")
    args = parser.parse_args()
    check_mechanism_names(parser, args.mechanisms, ["eager"])  # NAME+plain: only eager calls are timed here
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.json and Path(args.json).exists():
        parser.error(f"--json {args.json} exists: name a new file")
    torch.set_num_threads(args.threads)
    name = describe(args.device)
    print(f"device: {args.device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"training: batch {args.batch}, 25 steps; evaluation: {args.eval_samples} samples, 11 starts; "
          f"median of {args.repeats}\n")
    print("| mechanism | agents x items | train step regret work (s) | eval search step (ms) | eval, 1000 steps (s) |")
    print("|---|---|---|---|---|")
    rows = []
    for n, m in args.settings:
        train_v = torch.rand(args.batch, n, m, device=args.device, generator=torch.Generator().manual_seed(1))
        eval_v = torch.rand(args.eval_samples, n, m, device=args.device, generator=torch.Generator().manual_seed(2))
        work = {}
        for mech_name in args.mechanisms:
            mechanism = build_mechanism(mech_name, "unit", n, m, 0).to(args.device)

            def train_step(mechanism: nn.Module = mechanism) -> None:
                misreports = find_misreports(mechanism, train_v, MisreportSearch(steps=25))
                regret(mechanism, train_v, misreports).regret.mean().backward()

            def eval_search(mechanism: nn.Module = mechanism) -> None:
                find_misreports(mechanism, eval_v, MisreportSearch(steps=args.eval_steps, restarts=10))

            train_step(), eval_search()  # warm-up
            work[mech_name] = (train_step, eval_search, [], [])
        for _ in range(args.repeats):  # the mechanisms take turns
            for train_step, eval_search, train_times, eval_times in work.values():
                train_times.append(seconds(train_step, torch.device(args.device)))
                eval_times.append(seconds(eval_search, torch.device(args.device)) / (args.eval_steps + 1))
        for mech_name, (_, _, train_times, eval_times) in work.items():
            train_s, step_s = statistics.median(train_times), statistics.median(eval_times)
            rows.append({"mechanism": mech_name, "agents": n, "items": m, "train_step_regret_work_s": train_s,
                         "eval_search_step_ms": 1e3 * step_s, "repeats": args.repeats})
            print(f"| {mech_name} | {n} x {m} | {train_s:.3f} | {1e3 * step_s:.1f} | {1000 * step_s:.0f} |", flush=True)
    if args.json:
        write_json(Path(args.json), {"device": f"{args.device} ({name})", "torch": torch.__version__,
                                     "threads": torch.get_num_threads(), "batch": args.batch,
                                     "eval_samples": args.eval_samples, "eval_steps": args.eval_steps, "rows": rows})


if __name__ == "__main__":
    main()
