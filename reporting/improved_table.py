"""The improved presets' results table (issue 16): one row per preset over its seeds' results files.

``python -m reporting.improved_table [results/tables] [--out results/tables/summary.md]`` reads
``<preset>_seed<k>.json`` (``python -m reporting.audited_results``); the columns: docs/stable_lagrangian.md.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from utils.atomic import check_new, write_text_atomic
from reporting.paper import PAPER_ROWS
from reporting.tables import markdown_table

__all__ = ["improved_table"]

FILE_NAME = re.compile(r"^(?P<preset>.+)_seed(?P<seed>\d+)\.json$")
HEADERS = ("preset", "seeds", "paper (revenue at regret)", "best truthful baseline (large sample)",
           "ours (large sample)", "ours - baseline (paired)", "ours (test, 1000 profiles)",
           "audited regret (mean over bidders)", "training time (wall; CPU)", "hardware")


def _stats(values: Sequence[float], worst: str, digits: int = 4) -> str:
    """``mean +- sd (worst w)`` over the seeds (sd with ddof 1; a single seed shows its value)."""
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    pick = min(values) if worst == "min" else max(values)
    return f"{mean:.{digits}f} +- {statistics.stdev(values):.{digits}f} (worst {pick:.{digits}f})"


def _minutes(seconds: Sequence[float]) -> str:
    """Mean and longest of the seeds' training times, in minutes."""
    mean, longest = statistics.fmean(seconds) / 60, max(seconds) / 60
    return f"{mean:.1f} min" if len(seconds) == 1 else f"{mean:.1f} min (max {longest:.1f})"


def _row(preset: str, results: dict[int, dict[str, Any]]) -> list[str]:
    runs = [results[seed] for seed in sorted(results)]
    precise = [r["precise_revenue"] for r in runs if r.get("precise_revenue")]
    ours_large = [p["revenue"]["mean"] for p in precise]
    best_names = {p["best_truthful_baseline"] for p in precise if p.get("best_truthful_baseline")}
    baseline = [p["baselines"][p["best_truthful_baseline"]]["mean"] for p in precise if p.get("best_truthful_baseline")]
    margin = [p["baselines"][p["best_truthful_baseline"]]["difference"]["mean"] for p in precise
              if p.get("best_truthful_baseline")]
    regrets = [x for x in ((r.get("audit") or r.get("strong") or {}).get("regret_mean_over_agents_mean") for r in runs)
               if x is not None]
    paper = PAPER_ROWS.get(preset.replace("best_", "paper_", 1))
    time = "; ".join(f"{label} {_minutes([r[key] for r in runs if r.get(key) is not None])}" for label, key
                     in (("wall", "train_time_s"), ("CPU", "train_cpu_s")) if any(key in r for r in runs))
    return [
        preset, ", ".join(str(s) for s in sorted(results)),
        "n/a" if paper is None else f"{paper.revenue} at {paper.regret}",
        f"{'/'.join(sorted(best_names)) or 'n/a'} {_stats(baseline, 'min')}",
        _stats(ours_large, "min"), _stats(margin, "min"), _stats([r["test"]["revenue_mean"] for r in runs], "min"),
        _stats(regrets, "max", 5), time, "; ".join(sorted({r.get("hardware", "?") for r in runs}))]


def improved_table(folder: Path) -> str:
    """The markdown table of every ``<preset>_seed<k>.json`` in ``folder``; ``ValueError`` if there is none."""
    grouped: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for path in sorted(folder.glob("*_seed*.json")):
        match = FILE_NAME.match(path.name)
        if match:
            grouped[match["preset"]][int(match["seed"])] = json.loads(path.read_text())
    if not grouped:
        raise ValueError(f"no <preset>_seed<k>.json results file in {folder}: write them with "
                         "python -m reporting.audited_results")
    return markdown_table(HEADERS, [_row(preset, results) for preset, results in sorted(grouped.items())])


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print (and with ``--out`` write) the table."""
    parser = argparse.ArgumentParser(prog="python -m reporting.improved_table", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path("results/tables"), help="default results/tables")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    parser.add_argument("--force", action="store_true", help="replace an existing output file (default: refused)")
    args = parser.parse_args(argv)
    try:
        check_new([args.out] if args.out else [], args.force)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    table = improved_table(args.folder)
    print(table)
    if args.out is not None:
        write_text_atomic(args.out, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
