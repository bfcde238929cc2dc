"""Revenue and regret against the final Sinkhorn epsilon, from a Hydra multirun (the paper's Appendix A).

``sweep_plot <multirun dir> [--key sinkhorn.eps_final] [--out <dir>/sweep.png]``; what it reads and writes:
docs/results.md.  Each point is labelled by the keys the multirun swept, read from its own record (Hydra's
``multirun.yaml`` and each job's ``.hydra/overrides.yaml``); with one numeric swept key (or ``--key``) the points
lie on that axis, with several (e.g. a lambda/rho grid) one tick per job.
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

from utils.atomic import check_new, write_json, write_text_atomic
from reporting.tables import duration, markdown_table, mean_std

__all__ = ["SweepPoint", "incomplete_jobs", "main", "read_sweep", "sweep_axis", "sweep_figure", "sweep_table"]

DEFAULT_KEY = "sinkhorn.eps_final"


@dataclass(frozen=True)
class SweepPoint:
    """One job of the sweep: the swept value and its test metrics (means and std over the test profiles)."""

    value: float
    job: str
    label: str
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


def _record(sweep_dir: Path) -> tuple[list[str], list[list[str]] | None]:
    """The swept keys and the expanded jobs (overrides of each) of the multirun's ``multirun.yaml`` (``[], None``
    without one: then the keys whose values differ between the jobs' ``.hydra/overrides.yaml``)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    record = sweep_dir / "multirun.yaml"
    if record.is_file():
        task = list(OmegaConf.select(OmegaConf.load(record), "hydra.overrides.task", default=[]) or [])
        parsed = OverridesParser.create().parse_overrides(task)
        keys = [o.get_key_element() for o in parsed if o.is_sweep_override()]
        return keys, [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    seen: dict[str, set[str]] = {}
    for overrides in sweep_dir.glob("*/.hydra/overrides.yaml"):
        for override in OmegaConf.load(overrides):
            key, _, value = str(override).partition("=")
            seen.setdefault(key, set()).add(value)
    return sorted(k for k, values in seen.items() if len(values) > 1), None


def _job_label(job: Path, keys: Sequence[str]) -> str:
    """``key=value`` of the swept ``keys`` in the job's ``.hydra/overrides.yaml``."""
    overrides_file = job / ".hydra" / "overrides.yaml"
    overrides = [str(o) for o in OmegaConf.load(overrides_file)] if overrides_file.is_file() else []
    return " ".join(o for o in overrides if o.split("=", 1)[0] in keys)


def incomplete_jobs(sweep_dir: Path | str) -> tuple[list[str], list[str]]:
    """``(failed, never started)``: job folders without ``metrics.json``, and the multirun's jobs with no folder
    (``#<number> <swept values>``; the second list needs ``multirun.yaml``)."""
    sweep_dir = Path(sweep_dir)
    keys, jobs = _record(sweep_dir)
    folders = sorted((p.parent.parent for p in sweep_dir.glob("*/.hydra/config.yaml")), key=lambda p: p.name)
    failed = [f"{p.name} ({_job_label(p, keys)})" for p in folders if not (p / "metrics.json").is_file()]
    names = {p.name for p in folders}
    missing = [f"#{n} ({' '.join(o for o in job if o.split('=', 1)[0] in keys)})"
               for n, job in enumerate(jobs or []) if str(n) not in names]
    return failed, missing


def read_sweep(sweep_dir: Path | str, key: str | None = None) -> list[SweepPoint]:
    """The sweep's points sorted by the x axis ``key`` (:func:`sweep_axis`; ``job``: the job number); jobs without
    ``metrics.json`` are skipped (:func:`incomplete_jobs`).  ``ValueError`` when there is no job with metrics, or a
    job's config lacks ``key`` or holds a non-number there."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ValueError(f"not a directory: {sweep_dir}")
    keys, _ = _record(sweep_dir)
    axis = sweep_axis(sweep_dir, key)
    points = []
    for metrics_file in sorted(sweep_dir.rglob("metrics.json")):
        job = metrics_file.parent
        config_file = job / ".hydra" / "config.yaml"
        if not config_file.is_file():
            continue
        value = ((int(job.name) if job.name.isdigit() else len(points)) if axis == "job"
                 else OmegaConf.select(OmegaConf.load(config_file), axis, default=None))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{config_file} has no number at {axis!r} (got {value!r}); pass the swept key with --key")
        metrics = json.loads(metrics_file.read_text())
        test, refs = metrics["test"], metrics.get("references", {})
        points.append(SweepPoint(
            value=float(value), job=str(job.relative_to(sweep_dir)), label=_job_label(job, keys) or f"{axis}={value:g}",
            n_samples=int(test["n_samples"]), revenue_mean=test["revenue_mean"], revenue_std=test["revenue_std"],
            regret_sum_mean=test["regret_sum_over_agents_mean"], regret_sum_std=test["regret_sum_over_agents_std"],
            regret_mean_mean=test["regret_mean_over_agents_mean"], regret_mean_std=test["regret_mean_over_agents_std"],
            regret_sum_max=test["regret_sum_over_agents_max"], optimal_revenue=refs.get("reference/optimal_revenue"),
            vcg_revenue=refs.get("reference/vcg_revenue"), train_time_s=metrics.get("train_time_s")))
    if not points:
        raise ValueError(f"no job with metrics.json and .hydra/config.yaml under {sweep_dir}")
    return sorted(points, key=lambda p: (p.value, p.job))


def sweep_axis(sweep_dir: Path | str, key: str | None = None) -> str:
    """The x axis: ``key``; else the multirun's one swept key if numeric; else ``job`` (one tick per job,
    labelled by its swept values); :data:`DEFAULT_KEY` for a sweep without a record of what it swept."""
    if key is not None:
        return key
    sweep_dir = Path(sweep_dir)
    keys, _ = _record(sweep_dir)
    if not keys:
        return DEFAULT_KEY
    if len(keys) == 1:
        configs = sorted(sweep_dir.glob("*/.hydra/config.yaml"))
        value = OmegaConf.select(OmegaConf.load(configs[0]), keys[0], default=None) if configs else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return keys[0]
    return "job"


def sweep_figure(points: Sequence[SweepPoint], key: str = DEFAULT_KEY) -> Figure:
    """Revenue (left) and regret in both conventions (right, log scale) against the swept value (log scale), error
    bars one standard error; the optimal and VCG revenue, where the runs report them, as dashed lines."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    revenue_axes, regret_axes = figure.subplots(1, 2)
    values = [p.value for p in points]
    revenue_axes.errorbar(values, [p.revenue_mean for p in points], marker="o", capsize=3, label="test revenue",
                          yerr=[p.revenue_std / math.sqrt(p.n_samples) for p in points])
    for attribute, label, color in (("optimal_revenue", "optimal", "black"), ("vcg_revenue", "VCG", "gray")):
        reference = next((getattr(p, attribute) for p in points if getattr(p, attribute) is not None), None)
        if reference is not None:
            revenue_axes.axhline(reference, linestyle="--", color=color, label=f"{label} {reference:.4f}")
    conventions = [("regret_sum", "regret, sum over agents")]
    if any(p.regret_mean_mean != p.regret_sum_mean for p in points):  # they coincide for one bidder
        conventions.append(("regret_mean", "regret, mean over agents"))
    for attribute, label in conventions:
        means = [getattr(p, f"{attribute}_mean") for p in points]
        errors = [getattr(p, f"{attribute}_std") / math.sqrt(p.n_samples) for p in points]
        regret_axes.errorbar(values, means, yerr=errors, marker="o", capsize=3, label=label)
    if all(p.regret_sum_mean > 0 for p in points):
        regret_axes.set_yscale("log")
    for axes, ylabel in ((revenue_axes, "revenue per profile"), (regret_axes, "regret per profile")):
        if min(values) > 0 and key != "job":
            axes.set_xscale("log")
        axes.set_xticks(values, [p.label if key == "job" else f"{p.value:g}" for p in points],
                        rotation=30 if key == "job" else 0, fontsize="small" if key == "job" else None)
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set(xlabel=key, ylabel=ylabel)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle(f"test revenue and regret against {key} ({len(points)} runs)")
    return figure


def sweep_table(points: Sequence[SweepPoint], key: str = DEFAULT_KEY) -> str:
    """A markdown table of the points: value, revenue, regret (both conventions), max regret, training time."""
    rows = [[f"{p.value:g}", *(mean_std(getattr(p, f"{name}_mean"), getattr(p, f"{name}_std"), 4)
                               for name in ("revenue", "regret_sum", "regret_mean")),
             f"{p.regret_sum_max:.4f}", duration(p.train_time_s), p.job, p.label] for p in points]
    headers = [key, "revenue", "regret (sum over agents)", "regret (mean over agents)", "max regret (sum)",
               "train time", "job", "swept values"]
    return markdown_table(headers, rows)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: plot a sweep; exit status 2 on bad input, 1 when a job failed or never started (the plot and table
    show the finished ones and name the others)."""
    parser = argparse.ArgumentParser(prog="sweep_plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the multirun directory, e.g. multirun/<date>/<time>")
    parser.add_argument("--key", default=None, help="the x axis, a config key (default: the key the multirun swept, "
                        f"one tick per job when it swept several; {DEFAULT_KEY} for a sweep without multirun.yaml)")
    parser.add_argument("--out", type=Path, default=None,
                        help="PNG file (default <sweep dir>/sweep.png); sweep.md and sweep.json go next to it")
    parser.add_argument("--force", action="store_true", help="replace an existing output file (default: refused)")
    args = parser.parse_args(argv)
    out = args.out or args.sweep_dir / "sweep.png"
    try:
        check_new([out, out.with_name("sweep.md"), out.with_name("sweep.json")], args.force)
        axis = sweep_axis(args.sweep_dir, args.key) if args.sweep_dir.is_dir() else args.key
        points = read_sweep(args.sweep_dir, axis)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    notes = [f"{what}: {', '.join(jobs)}" for what, jobs
             in zip(("failed (no metrics.json)", "never started"), incomplete_jobs(args.sweep_dir)) if jobs]
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_figure(points, axis).savefig(out, dpi=100)
    table = sweep_table(points, axis)
    write_text_atomic(out.with_name("sweep.md"), table + "\n" + "".join(f"\nJobs {note}.\n" for note in notes))
    write_json(out.with_name("sweep.json"), [asdict(p) for p in points])
    print(table)
    for note in notes:
        print(f"warning: jobs {note}", file=sys.stderr)
    print(f"wrote {out}, {out.with_name('sweep.md')}, {out.with_name('sweep.json')}")
    return 1 if notes else 0  # the sweep is incomplete: the table lists the jobs that finished


if __name__ == "__main__":
    sys.exit(main())
