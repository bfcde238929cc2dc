"""The output of ``benchmarks/bench_step.py``: the table's header and rows, its default ``--json`` file, and
writing the result (the exit status 1 when a case failed)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from utils.atomic import write_json

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
    recorded = directory / f"step_{device}.json"
    if not recorded.exists():
        return recorded
    return directory / f"step_{device}_{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"


def finish(path: Path, result: dict, rows: list[dict], quiet: bool) -> None:
    """Print the last row as JSON (``quiet``), write ``result`` to ``path`` (not ``/dev/null``), and exit with
    status 1 naming the failed cases when a row has an ``error``."""
    if quiet:
        print(json.dumps(rows[-1] if rows else {}))
    if str(path) != "/dev/null":
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, result)
        if not quiet:
            print(f"wrote {path}")
    failed = [f"{row.get('setting')} {row.get('mechanism')} {row.get('variant')}" for row in rows if "error" in row]
    if failed:
        print(f"error: {len(failed)} case(s) failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)
