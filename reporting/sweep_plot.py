"""Revenue and regret against the final Sinkhorn epsilon, from a Hydra multirun (the paper's Appendix A).

``sweep_plot <multirun dir> [--key sinkhorn.eps_final] [--out <dir>/sweep.png]``
(or ``python -m reporting.sweep_plot ...``), after e.g.
``python train.py -m sinkhorn.eps_final=0.02,0.05,0.1``.

Every job folder under the sweep directory that holds a ``metrics.json`` (written
by ``train.py``) and a ``.hydra/config.yaml`` is one point: the swept value is
read from the job's config at ``--key``.  Writes the plot, ``sweep.md`` (a
markdown table) and ``sweep.json`` (the points) next to each other.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from omegaconf import OmegaConf

from reporting.atomic import write_json, write_text_atomic
from reporting.tables import duration, markdown_table, mean_std

__all__ = ["SweepPoint", "main", "read_sweep", "sweep_figure", "sweep_table"]

DEFAULT_KEY = "sinkhorn.eps_final"


@dataclass(frozen=True)
class SweepPoint:
    """One job of the sweep: the swept value and its test metrics (means and std over the test profiles)."""

    value: float
    job: str
    n_samples: int
    revenue_mean: float
    revenue_std: float
    regret_sum_mean: float
    regret_sum_std: float
    regret_mean_mean: float
    regret_mean_std: float
    regret_sum_max: float
    optimal_revenue: float | None
    vcg_revenue: float | None
    train_time_s: float | None


def read_sweep(sweep_dir: Path | str, key: str = DEFAULT_KEY) -> list[SweepPoint]:
    """The sweep's points sorted by the swept value; jobs without ``metrics.json`` are skipped.

    Raises ``ValueError`` when there is no job with metrics, or a job's config
    lacks ``key`` or holds a non-number there.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ValueError(f"not a directory: {sweep_dir}")
    points = []
    for metrics_file in sorted(sweep_dir.rglob("metrics.json")):
        job = metrics_file.parent
        config_file = job / ".hydra" / "config.yaml"
        if not config_file.is_file():
            continue
        value = OmegaConf.select(OmegaConf.load(config_file), key, default=None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{config_file} has no number at {key!r} (got {value!r}); pass the swept key with --key")
        metrics = json.loads(metrics_file.read_text())
        test, refs = metrics["test"], metrics.get("references", {})
        points.append(
            SweepPoint(
                value=float(value),
                job=str(job.relative_to(sweep_dir)),
                n_samples=int(test["n_samples"]),
                revenue_mean=test["revenue_mean"],
                revenue_std=test["revenue_std"],
                regret_sum_mean=test["regret_sum_over_agents_mean"],
                regret_sum_std=test["regret_sum_over_agents_std"],
                regret_mean_mean=test["regret_mean_over_agents_mean"],
                regret_mean_std=test["regret_mean_over_agents_std"],
                regret_sum_max=test["regret_sum_over_agents_max"],
                optimal_revenue=refs.get("reference/optimal_revenue"),
                vcg_revenue=refs.get("reference/vcg_revenue"),
                train_time_s=metrics.get("train_time_s"),
            )
        )
    if not points:
        raise ValueError(f"no job with metrics.json and .hydra/config.yaml under {sweep_dir}")
    return sorted(points, key=lambda p: (p.value, p.job))


def sweep_figure(points: Sequence[SweepPoint], key: str = DEFAULT_KEY) -> Figure:
    """Revenue (left) and regret in both conventions (right, log scale) against the swept value (log scale).

    Error bars: one standard error of the mean over the test profiles.  The
    optimal and VCG revenue, where the runs report them, are dashed lines.
    """
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    revenue_axes, regret_axes = figure.subplots(1, 2)
    values = [p.value for p in points]

    def stderr(std: float, point: SweepPoint) -> float:
        return std / math.sqrt(point.n_samples)

    revenue_axes.errorbar(values, [p.revenue_mean for p in points], yerr=[stderr(p.revenue_std, p) for p in points],
                          marker="o", capsize=3, label="test revenue")
    for attribute, label, color in (("optimal_revenue", "optimal", "black"), ("vcg_revenue", "VCG", "gray")):
        reference = next((getattr(p, attribute) for p in points if getattr(p, attribute) is not None), None)
        if reference is not None:
            revenue_axes.axhline(reference, linestyle="--", color=color, label=f"{label} {reference:.4f}")
    conventions = [("regret_sum", "regret, sum over agents")]
    if any(p.regret_mean_mean != p.regret_sum_mean for p in points):  # they coincide for one bidder
        conventions.append(("regret_mean", "regret, mean over agents"))
    for attribute, label in conventions:
        means = [getattr(p, f"{attribute}_mean") for p in points]
        errors = [stderr(getattr(p, f"{attribute}_std"), p) for p in points]
        regret_axes.errorbar(values, means, yerr=errors, marker="o", capsize=3, label=label)
    if all(p.regret_sum_mean > 0 for p in points):
        regret_axes.set_yscale("log")
    for axes, ylabel in ((revenue_axes, "revenue per profile"), (regret_axes, "regret per profile")):
        if min(values) > 0:
            axes.set_xscale("log")
        axes.set_xticks(values, [f"{v:g}" for v in values])
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set(xlabel=key, ylabel=ylabel)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle(f"test revenue and regret against {key} ({len(points)} runs)")
    return figure


def sweep_table(points: Sequence[SweepPoint], key: str = DEFAULT_KEY) -> str:
    """A markdown table of the points: value, revenue, regret (both conventions), max regret, training time."""
    rows = [
        [f"{p.value:g}", mean_std(p.revenue_mean, p.revenue_std, 4), mean_std(p.regret_sum_mean, p.regret_sum_std, 4),
         mean_std(p.regret_mean_mean, p.regret_mean_std, 4), f"{p.regret_sum_max:.4f}", duration(p.train_time_s), p.job]
        for p in points
    ]
    headers = [key, "revenue", "regret (sum over agents)", "regret (mean over agents)", "max regret (sum)", "train time", "job"]
    return markdown_table(headers, rows)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: plot a sweep; exit status 2 on bad input."""
    parser = argparse.ArgumentParser(prog="sweep_plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the multirun directory, e.g. multirun/<date>/<time>")
    parser.add_argument("--key", default=DEFAULT_KEY, help=f"the swept config key (default {DEFAULT_KEY})")
    parser.add_argument("--out", type=Path, default=None, help="PNG file (default <sweep dir>/sweep.png); sweep.md and sweep.json go next to it")
    args = parser.parse_args(argv)
    try:
        points = read_sweep(args.sweep_dir, args.key)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out or args.sweep_dir / "sweep.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_figure(points, args.key).savefig(out, dpi=100)
    table = sweep_table(points, args.key)
    write_text_atomic(out.with_name("sweep.md"), table + "\n")
    write_json(out.with_name("sweep.json"), [asdict(p) for p in points])
    print(table)
    print(f"wrote {out}, {out.with_name('sweep.md')}, {out.with_name('sweep.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
