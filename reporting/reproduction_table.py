"""The reproduction's markdown table: each preset's results beside the paper's row, and the GPU queue's rows.

:func:`reproduction_table` renders :func:`runs.preset_runs.collect` entries; :func:`write_table` writes it
without replacing a complete table by one that lacks results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from adversary.base import Adversary
from adversary.grid_audit import GridAudit
from adversary.strong_search import StrongSearch
from reporting.gpu_queue_file import load_queue
from reporting.gpu_results import RESULTS as GPU_RESULTS
from reporting.gpu_results import rows_table as gpu_rows_table
from reporting.paper import PAPER_HARDWARE, PAPER_ROWS
from reporting.tables import duration, markdown_table, mean_std, number
from runs.seeds import row_test
from utils.atomic import write_text_atomic

__all__ = ["HEADERS", "paper_row", "reproduction_table", "write_table"]

HEADERS = (
    "Setting (preset)", "Revenue", "Paper revenue", "Regret (sum over agents)", "Audited regret (sum over agents)",
    "Audited max", "Paper regret", "Optimal", "VCG", "Best truthful baseline", "Paper opt./VCG", "Train time", "Paper time",
    "Hardware", "Budget", "Strong adversary regret (sum over agents)",
)
"""The columns; one more per adversary besides the audit and the strong one (``--adversary``)."""
AUDIT, STRONG = GridAudit(), StrongSearch()  # how the two columns of their own show their reports


def paper_row(preset: str):
    """The paper's row a preset reproduces: ``paper_<row>`` and ``original_<row>`` both map to ``PAPER_ROWS["paper_<row>"]``."""
    for prefix in ("paper_", "original_"):
        if preset.startswith(prefix):
            return PAPER_ROWS.get("paper_" + preset[len(prefix):])
    return None


def _adversary_cell(adversary: Adversary, report: dict[str, Any] | None) -> str:
    """``mean (std)`` of the adversary's regret (sum over agents), its profiles, how it searched and the search's regret
    on the same profiles; ``-`` when it did not run."""
    if report is None:
        return "-"
    text = mean_std(report["regret_sum_over_agents_mean"], report["regret_sum_over_agents_std"])
    search = report[adversary.comparison_key]["regret_sum_over_agents_mean"]
    return f"{text} [{report['n_samples']} profiles, {adversary.details(report)}; search {number(search)}]"


def _row(entry: dict[str, Any], extra: Sequence[Adversary]) -> list[str]:
    preset, sidecar, metrics, attacks = entry["preset"], entry["sidecar"], entry["metrics"], entry["adversaries"]
    paper = paper_row(preset)
    setting = f"{paper.setting if paper else preset} (`{preset}`)"
    paper_cells = [paper.revenue, paper.regret, f"{paper.reference} ({paper.reference_kind})", paper.train_time] if paper else ["-"] * 4
    extra_cells = [_adversary_cell(adversary, attacks.get(adversary.name)) for adversary in extra]
    if metrics is None:
        status = "not run" if sidecar is None else f"failed (exit {sidecar['returncode']}, log {sidecar['log']})"
        ours = [status, "", "", "", "", "", "", "", "", ""]
        extra_cells = [""] * len(extra)
    else:
        (test, note), refs, audited = row_test(metrics), metrics["references"], attacks.get(AUDIT.name)
        ours = [
            mean_std(test["revenue_mean"], test["revenue_std"]) + note,
            mean_std(test["regret_sum_over_agents_mean"], test["regret_sum_over_agents_std"]),
            _adversary_cell(AUDIT, audited),
            "-" if audited is None else number(audited["regret_sum_over_agents_max"]),
            _adversary_cell(STRONG, attacks.get(STRONG.name)),
            number(refs.get("reference/optimal_revenue")),
            number(refs.get("reference/vcg_revenue")),
            _best_baseline(refs),
            duration(metrics.get("train_time_s")),
            sidecar["hardware"] if sidecar else "unknown",
        ]
    budget = "" if sidecar is None else (" ".join(sidecar["overrides"]) or "paper's")
    revenue, regret, audited_regret, audited_max, strong, optimal, vcg, best, time_, hardware = ours
    return [setting, revenue, paper_cells[0], regret, audited_regret, audited_max, paper_cells[1], optimal, vcg, best,
            paper_cells[2], time_, paper_cells[3], hardware, budget, strong, *extra_cells]


def _best_baseline(refs: dict[str, Any]) -> str:
    """``name revenue`` of the best truthful baseline on the run's test profiles; ``-`` for runs older than the baselines."""
    name = refs.get("reference/best_truthful_baseline")
    return "-" if name is None else f"{name} {number(refs.get('reference/best_truthful_baseline_revenue'))}"


def reproduction_table(
    entries: Sequence[dict[str, Any]], command: str = "", gpu_results: Path = GPU_RESULTS, extra: Sequence[Adversary] = ()
) -> str:
    """The markdown report: a short legend, one row per :func:`runs.preset_runs.collect` entry (a column for each
    of the ``extra`` adversaries), then the GPU queue's runs of these rows as collected in ``gpu_results``."""
    legend = [
        "# Reproduction of the paper's Tables 1 and 2",
        "",
        *([f"Generated by `{command}`.", ""] if command else []),
        "Revenue and regret: mean (std) over the test profiles (the paper's protocol unless the budget overrides it: "
        "1000 profiles, 1000 misreport steps at lr 0.1, truthful + 10 random starts), regret summed over the agents. Optimal: closed form where known; "
        f"VCG: 10,000-profile Monte Carlo estimate. Best truthful baseline: the highest-earning of the simple truthful mechanisms "
        "with fitted prices (posted prices, VCG with a reserve, pay to choose; `baselines`) on the run's test profiles. "
        f"Paper times: one {PAPER_HARDWARE}. "
        "Budget: the Hydra overrides of a reduced budget (\"paper's\": the paper's 100 epochs of 2^19 profiles).",
        "Audited regret (docs/regret_audit.md): mean (std) and max, summed over the agents, of the exhaustive audit "
        "(a grid over each bidder's report, 101 points per item for 2 items, 31 for 3, then a local refinement) of the "
        "tested weights on the test profiles, with the gradient search's regret on the same profiles; \"-\": not audited "
        "(more than 3 items, or --no-audit). The gradient search's regret is a lower bound; the audit's is exhaustive up to the grid.",
        "Strong adversary regret (docs/regret_audit.md, `--strong`): mean (std), summed over the agents, of the strong "
        "misreport search (random and structured starts, long Adam runs) on the test profiles; \"-\": not run.",
        *(["Further adversaries (`--adversary`, docs/evaluation.md): " + ", ".join(a.name for a in extra) + "; "
           "the same statistics."] if extra else []),
        "RegretNet exactly-one rows are N/A in the paper (RegretNet cannot represent exactly-one demand for two bidders).",
        "",
    ]
    headers = (*HEADERS, *(f"{a.label[0].upper() + a.label[1:]} regret (sum over agents)" for a in extra))
    table = "\n".join(legend) + "\n" + markdown_table(headers, [_row(e, extra) for e in entries]) + "\n"
    return table + _gpu_rows([e["preset"] for e in entries], gpu_results)


def _gpu_rows(presets: Sequence[str], results: Path) -> str:
    """The GPU queue's collected runs of these rows (``results/gpu/``); ``""`` when the queue serves none of them."""
    jobs = load_queue()
    if not any(job.row in presets for job in jobs):
        return ""
    return ("\n## The same rows from the GPU queue\n\n"
            "Seeds 0, 1, 2 as one ensemble at the paper's budget on one GPU (`benchmarks/gpu_queue.yaml`, collected "
            "into `results/gpu/`; `python -m benchmarks.gpu_queue status`). Revenue and regret: mean over the seeds "
            "(sd over the seeds).\n\n" + gpu_rows_table(presets, jobs, results) + "\n")


def write_table(out: Path, table: str, complete: bool, empty: bool) -> Path | None:
    """Write ``table`` to ``out``, unless it lacks results (``complete`` false) and would replace an existing
    ``out`` (``--force``): then to ``<out>.partial.md``.  A table without any result (``empty``) replaces no
    file.  Returns the file written (``None``: none)."""
    target = out if complete or not out.exists() else out.with_suffix(".partial.md")
    if empty and target.exists():
        return None
    write_text_atomic(target, table)
    return target
