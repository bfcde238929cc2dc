"""Training curves of revenue and regret, read from a run's TensorBoard event files.

``python -m reporting.curves <run dir or tensorboard dir> [--out curves.png]``: revenue (train, validation, the
references as horizontal lines) and regret (both conventions, log scale) against the training step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from utils.atomic import check_new

__all__ = ["Series", "curves_figure", "event_directories", "main", "read_scalars"]

Series = list[tuple[int, float]]

REVENUE = ("train/revenue", "val/revenue")
REFERENCES = (("reference/optimal_revenue", "optimal"), ("reference/vcg_revenue", "VCG"),
              ("reference/best_truthful_baseline_revenue", "best truthful baseline"))
REGRET = ("train/regret_mean_over_agents", "val/regret_mean_over_agents", "train/regret_sum_over_agents",
          "val/regret_sum_over_agents")


def event_directories(path: Path | str) -> list[Path]:
    """Folders under ``path`` (itself included) that hold TensorBoard event files, sorted."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"not a directory: {path}")
    return sorted({file.parent for file in path.rglob("events.out.tfevents*")})


def read_scalars(path: Path | str) -> dict[str, Series]:
    """Every scalar tag of the event files under ``path``: ``{tag: [(step, value), ...]}`` sorted by step;
    ``ValueError`` when there are none."""
    folders = event_directories(path)
    if not folders:
        raise ValueError(f"no TensorBoard event files under {path}")
    scalars: dict[str, Series] = {}
    for folder in folders:
        accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0}).Reload()  # 0: keep every point
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((event.step, event.value) for event in accumulator.Scalars(tag))
    return {tag: sorted(points) for tag, points in scalars.items()}


def curves_figure(scalars: dict[str, Series], title: str | None = None) -> Figure:
    """Revenue and regret against the training step, from :func:`read_scalars` output.

    Missing tags are skipped; regret uses a log scale (zeros are not drawn).
    """
    figure = Figure(figsize=(12, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    revenue_axes, regret_axes = figure.subplots(1, 2)
    for axes, tags, name in ((revenue_axes, REVENUE, "revenue"), (regret_axes, REGRET, "regret")):
        for tag in tags:
            points = [(step, value) for step, value in scalars.get(tag, []) if name == "revenue" or value > 0]
            if points:
                steps, values = zip(*points)
                axes.plot(steps, values, label=tag, marker="." if len(steps) < 30 else None)
                if name == "regret":
                    axes.set_yscale("log")
        axes.set(xlabel="training step", ylabel=f"{name} per profile", title=name)
    for tag, label in REFERENCES:
        if scalars.get(tag):
            value = scalars[tag][-1][1]
            revenue_axes.axhline(value, linestyle="--", color="gray" if label == "VCG" else "black",
                                 label=f"{label} {value:.4f}")
    for axes in (revenue_axes, regret_axes):
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
        axes.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    return figure


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: draw a run's training curves to a PNG (default ``<path>/curves.png``)."""
    parser = argparse.ArgumentParser(prog="python -m reporting.curves", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a run directory, or any folder with TensorBoard event files under it")
    parser.add_argument("--out", type=Path, default=None, help="PNG file to write (default: <path>/curves.png)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file (default: refused)")
    args = parser.parse_args(argv)
    out = args.out or args.path / "curves.png"
    try:
        check_new([out], args.force)
        figure = curves_figure(read_scalars(args.path), title=str(args.path))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    figure.savefig(out, dpi=100)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
