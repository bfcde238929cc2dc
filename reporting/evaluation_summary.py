"""The summary ``evaluate.py`` prints: one row per measured quantity of an ``evaluation.json`` report."""

from __future__ import annotations

from typing import Any, Sequence

from adversary.base import Adversary
from reporting.tables import allocation_warning, baseline_rows, mean_std, plain_table

__all__ = ["evaluation_summary"]


def _stat(source: dict[str, Any], name: str) -> str:
    """``source``'s ``<name>_mean``, ``_std`` and ``_max`` on one line."""
    return f"{source[name + '_mean']:.4f} (std {source[name + '_std']:.4f}, max {source[name + '_max']:.4f})"


def evaluation_summary(report: dict[str, Any], adversaries: Sequence[Adversary] = ()) -> str:
    """The plain-text summary of ``report`` (``evaluation.json``), with a block for each of ``adversaries``."""
    metrics, refs, protocol = report["metrics"], report["references"], report["protocol"]
    optimum = "unknown" if refs["optimal_revenue_mean"] is None else (
        f"{mean_std(refs['optimal_revenue_mean'], refs['optimal_revenue_std'], 4)}; "
        f"closed form {refs['optimal_revenue_closed_form']:.4f} ({refs['optimal_mechanism']})")
    eps, baseline = report["setting"].get("eps_final"), report.get("baseline")  # baseline: none for a checkpoint
    best_name = refs.get("best_truthful_baseline")
    best = None if best_name is None else (best_name, refs["best_truthful_baseline_revenue_mean"])
    rows = [
        ("mechanism", f"{report['setting']['mechanism']} ({report['source']})"),
        ("setting", report["setting"]["description"]),
        ("protocol", f"{protocol['samples']} profiles, {protocol['steps']} steps at lr {protocol['lr']:g}, "
                     f"truthful + {protocol['restarts']} random start(s), seed {protocol['seed']}"
                     + ("" if eps is None else f", Sinkhorn eps_final {eps:g}")),
        ("revenue", mean_std(metrics["revenue_mean"], metrics["revenue_std"], 4)),
        ("regret per agent", ", ".join(f"{r:.4f}" for r in metrics["regret_per_agent"])),
        ("regret, mean over agents", _stat(metrics, "regret_mean_over_agents")),
        ("regret, sum over agents", _stat(metrics, "regret_sum_over_agents")),
        *(row for adversary in adversaries for row in _adversary_rows(adversary, report[adversary.name])),
        ("IR violations", f"{metrics['ir_violations']} of {metrics['n_samples']} profiles "
                          f"(max {metrics['ir_violation_max']:.2e})"),
        ("allocation violation", allocation_warning(metrics["allocation_violation_max"],
                                                    report.get("allocation_tolerance"))
         or f"max {metrics['allocation_violation_max']:.2e}"),
        *([] if baseline is None else [("baseline prices", ", ".join(f"{p:.4f}" for p in baseline["prices"])
                                        + f" (fitted revenue {baseline['revenue']:.4f} +- "
                                          f"{baseline['revenue_stderr']:.4f} on {baseline['samples']} profiles)")]),
        ("VCG revenue, same profiles", mean_std(refs["vcg_revenue_mean"], refs["vcg_revenue_std"], 4)),
        ("optimal revenue, same profiles", optimum),
        *((f"{name} revenue, same profiles", f"{mean_std(found['revenue_mean'], found['revenue_std'], 4)}; prices "
           + ", ".join(f"{p:.4f}" for p in found["prices"])) for name, found in refs.get("baselines", {}).items()),
        *baseline_rows(metrics["revenue_mean"], best, (baseline or {}).get("name")),
        ("time", f"{report['evaluation_time_s']:.1f} s on {report['hardware']}")]
    return plain_table(rows)


def _adversary_rows(adversary: Adversary, found: dict[str, Any]) -> list[tuple[str, str]]:
    """An adversary's regret in both conventions, the search's on the same profiles, and how it was found."""
    search = found[adversary.comparison_key]
    regret, searched = found["regret_sum_over_agents_mean"], search["regret_sum_over_agents_mean"]
    ratio = f"{regret / searched:.2f}" if searched > 0 else ("n/a (both 0)" if regret == 0 else "inf")
    return [
        (f"{adversary.label} regret, mean over agents", _stat(found, "regret_mean_over_agents")),
        (f"{adversary.label} regret, sum over agents", _stat(found, "regret_sum_over_agents")),
        ("search regret, same profiles", f"{_stat(search, 'regret_sum_over_agents')} (sum over agents); "
                                         f"{adversary.name} / search {ratio}"),
        (adversary.name, ", ".join(filter(None, (f"{found['n_samples']} profiles", adversary.details(found),
                                                 f"{found['time_s']:.1f} s" if "time_s" in found else "")))),
    ]

