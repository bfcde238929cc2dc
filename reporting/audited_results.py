"""One results file per run of the improved presets (issue 16): ``results/tables/<preset>_seed<k>.json``.

``python -m reporting.audited_results METRICS_JSON EVALUATION_JSON OUT_JSON [--precise FILE]``
(docs/evaluation.md, docs/stable_lagrangian.md): the run's ``metrics.json`` plus the ``audit`` (or ``strong``)
block of ``evaluate.py --audit`` (``--strong``)'s ``evaluation.json``, the evaluated checkpoint's path and, with
``--precise``, ``python -m reporting.precise_revenue``'s JSON as a ``precise_revenue`` block.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from utils.atomic import check_new, write_json

__all__ = ["audited_results"]


def audited_results(metrics: dict[str, Any], evaluation: dict[str, Any],
                    precise: dict[str, Any] | None = None) -> dict[str, Any]:
    """``metrics`` with the ``audit`` (or ``strong``) block of ``evaluation`` (``ValueError`` if it has neither) and,
    when given, the ``precise_revenue`` block."""
    blocks = {key: evaluation[key] for key in ("audit", "strong") if evaluation.get(key)}
    if not blocks:
        raise ValueError("the evaluation has no audit or strong block: run evaluate.py with --audit (<= 3 items) "
                         "or --strong")
    source = evaluation.get("source", "")
    if precise is not None:
        if precise.get("checkpoint") and source and Path(precise["checkpoint"]).resolve() != Path(source).resolve():
            raise ValueError(f"the precise revenue is of {precise['checkpoint']}, the audit of {source}: give the "
                             "same checkpoint's")
        blocks["precise_revenue"] = precise
    return {**metrics, **blocks, "audited_checkpoint": source}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reporting.audited_results METRICS_JSON EVALUATION_JSON OUT_JSON``: write the results file."""
    parser = argparse.ArgumentParser(prog="python -m reporting.audited_results", description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path, help="the run's metrics.json")
    parser.add_argument("evaluation", type=Path, help="evaluate.py --audit (or --strong)'s evaluation.json")
    parser.add_argument("out", type=Path, help="the results file to write: results/tables/<preset>_seed<k>.json")
    parser.add_argument("--precise", type=Path, default=None,
                        help="python -m reporting.precise_revenue's JSON of the same checkpoint")
    parser.add_argument("--force", action="store_true", help="replace an existing output file (default: refused)")
    args = parser.parse_args(argv)
    try:
        check_new([args.out], args.force, "out", inputs=[p for p in (args.metrics, args.evaluation, args.precise) if p])
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    metrics, evaluation = (json.loads(p.read_text()) for p in (args.metrics, args.evaluation))
    precise = None if args.precise is None else json.loads(args.precise.read_text())
    write_json(args.out, audited_results(metrics, evaluation, precise=precise))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
