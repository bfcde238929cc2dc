"""Small text-table helpers: markdown tables, aligned two-column listings and the paper's number formats."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from mechanisms.sinkhorn_auction import layer_settings

__all__ = ["allocation_tolerance", "allocation_warning", "baseline_rows", "config_threads", "duration",
           "markdown_table", "mean_std", "number", "plain_table"]


def number(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; ``<0.001`` (for 3 digits) when positive but smaller; ``n/a`` for None/NaN."""
    if value is None or not math.isfinite(value):
        return "n/a"
    floor = 10.0**-digits
    return f"<{floor:.{digits}f}" if 0 < value < floor else f"{value:.{digits}f}"


def mean_std(mean: float | None, std: float | None = None, digits: int = 3) -> str:
    """The paper's ``mean (std)`` format, e.g. ``0.397 (0.248)`` or ``0.001 (<0.001)``."""
    text = number(mean, digits)
    return text if std is None else f"{text} ({number(std, digits)})"


def duration(seconds: float | None) -> str:
    """A duration in the paper's style: ``3h25m``, ``18m34s``, ``42s``; ``n/a`` for ``None``."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _cell(value: object) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; cells are stringified, whitespace collapsed and ``|`` escaped; ``ValueError`` when a
    row's length differs from the header's."""
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"every row needs {len(headers)} cells, got {len(row)}: {row!r}")
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plain_table(rows: Sequence[tuple[str, str]]) -> str:
    """Two left-aligned columns (name, value) for terminal output."""
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def allocation_tolerance(mechanism: object) -> float:
    """The largest demand violation a feasible-up-to-tolerance allocation may have: Sinkhorn mechanisms meet the
    agents' capacities up to their relative ``tol``, exact mechanisms up to rounding."""
    capacities = getattr(mechanism, "capacities", None) or [1]
    settings = layer_settings(mechanism)
    return (0.0 if settings is None else float(settings.tol)) * max(capacities) + 1e-5


def allocation_warning(violation: float | None, tolerance: float | None) -> str:
    """The text of an "allocation violation" table row, or ``""`` while the violation is within ``tolerance``."""
    if violation is None or tolerance is None or violation <= tolerance:
        return ""
    return (f"max {violation:.3g} > tolerance {tolerance:.3g}: allocations break the demand constraints "
            "(Sinkhorn did not converge: raise sinkhorn.max_iter or sinkhorn.eps_final)")


def baseline_rows(revenue: float, best: tuple[str, float] | None,
                  evaluated: str | None = None) -> list[tuple[str, str]]:
    """Rows naming the best truthful baseline ``(name, revenue)`` and, when ``revenue`` is lower by at least the
    4 decimals shown, by how much; ``evaluated``: the name of the baseline whose ``revenue`` this is (no gap to
    itself)."""
    if best is None:
        return []
    name, best_revenue = best
    if name == evaluated:
        return [("best truthful baseline", f"{name} {best_revenue:.4f} (the evaluated mechanism)")]
    rows = [("best truthful baseline", f"{name} {best_revenue:.4f}")]
    if round(best_revenue - revenue, 4) > 0:
        rows.append(("below best truthful baseline", f"({name} {best_revenue:.4f}) by {best_revenue - revenue:.4f}"))
    return rows


def config_threads() -> int | None:
    """The training configuration's thread policy (``threads`` in conf/config.yaml), shared by every entry point."""
    from omegaconf import OmegaConf

    return OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "config.yaml").get("threads")
