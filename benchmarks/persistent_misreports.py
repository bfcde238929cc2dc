"""Training searches from the truth against warm starts from persistent misreports: runs and table (docs/results.md).

Runs ``python train.py`` for every setting x search variant x seed into ``<out>/<setting>-<variant>-seed<seed>/``,
at most ``--jobs`` at a time, skipping runs whose ``metrics.json`` exists, then prints a markdown table of test
revenue, regret and wall time with per-variant means.  A failed run makes the exit status 1.

    python benchmarks/persistent_misreports.py --out results/persistent_runs --jobs 2
    python benchmarks/persistent_misreports.py --out results/persistent_runs --table-only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import mean

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"unit": [], "exactly_one": ["demand=exactly_k"]}  # the default job and exactly-one 1x2, same budget
VARIANTS = {
    "truth-25": ["model.persistent_misreports=false", "model.train_search.steps=25"],
    "warm-10": ["model.persistent_misreports=true", "model.train_search.steps=10"],
    "warm-5": ["model.persistent_misreports=true", "model.train_search.steps=5"]}
QUIET = ["callbacks.progress=null", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
# A table row: setting, search variant, seed (or the count of seeds), test revenue, regret, worst regret, times.
LINE = "| {} | {} | {} | {:.4f} | {:.4f} | {:.4f} | {:.0f} | {:.0f} |"


def _run(out: Path, setting: str, variant: str, seed: int, extra: list[str]) -> tuple[str, bool]:
    """Train one run unless its metrics.json exists; ``(a line saying what happened, whether it failed)``.
    Its log is appended to ``<out>/<run>.log`` (an earlier attempt's log is kept)."""
    folder = out / f"{setting}-{variant}-seed{seed}"
    if (folder / "metrics.json").is_file():
        return f"{folder.name}: done before", False
    command = [sys.executable, str(ROOT / "train.py"), *SETTINGS[setting], *VARIANTS[variant], f"seed={seed}"]
    command += [*QUIET, f"hydra.run.dir={folder}", *extra]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    with (out / f"{folder.name}.log").open("a") as log:
        log.write(result.stdout[-20000:] + result.stderr[-20000:])
    return f"{folder.name}: rc {result.returncode}, {time.perf_counter() - start:.0f} s", result.returncode != 0


def table(out: Path) -> str:
    """The markdown table of every finished run under ``out``, with per-setting, per-variant means."""
    rows, summary = [], []
    for setting in SETTINGS:
        for variant in VARIANTS:
            found = [(path.parent.name.rsplit("seed", 1)[1], json.loads(path.read_text()))
                     for path in sorted(out.glob(f"{setting}-{variant}-seed*/metrics.json")) if path.is_file()]
            values = [(m["test"]["revenue_mean"], m["test"]["regret_mean_over_agents_mean"],
                       m["test"]["regret_mean_over_agents_max"], m["train_time_s"], m["wall_time_s"])
                      for _, m in found]
            rows += [LINE.format(setting, variant, seed, *run) for (seed, _), run in zip(found, values)]
            if values:  # the means over the seeds, and the worst seed's mean regret
                revenue, regret, _, train_s, wall_s = zip(*values)
                summary.append(LINE.format(setting, variant, len(values), mean(revenue), mean(regret), max(regret),
                                           mean(train_s), mean(wall_s)))
    head = "| setting | training search | {} | test revenue | test regret | {} | train s | wall s |\n"
    head += "| --- " * 8 + "|"
    return "\n".join([head.format("seeds", "worst seed's regret"), *summary, "",
                      head.format("seed", "max regret"), *rows])


def main() -> int:
    """Run the missing runs, print the table; 1 if a run failed (the table lists the finished ones)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="concurrent runs (default 2)")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--override", action="append", default=[], help="extra train.py override for every run")
    args = parser.parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    if not args.table_only:
        with ThreadPoolExecutor(args.jobs) as pool:
            # seed-major, variant-minor, so that the machine's load falls evenly on the variants
            runs = [(setting, variant, seed) for seed in args.seeds for setting in SETTINGS for variant in VARIANTS]
            jobs = [pool.submit(_run, args.out, *run, args.override) for run in runs]
            for job in jobs:
                line, bad = job.result()
                print(line, flush=True)
                failed += [line] if bad else []
    print(table(args.out))
    if failed:
        print(f"error: {len(failed)} run(s) failed: {'; '.join(failed)} (logs in {args.out})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
