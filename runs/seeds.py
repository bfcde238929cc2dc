"""Seeds of one table row trained as one ensemble (docs/ensembles.md), for :mod:`runs.reproduce`:
:func:`seed_overrides` (seeds ``s_0, ..., s_{K-1}`` as one ensemble job: same data, member ``k`` initialized with
``s_k``) and :func:`row_test` (what a table row shows of a run).
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["parse_seeds", "row_test", "seed_overrides"]


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; one-line ``ValueError`` unless distinct integers >= 0."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError as error:
        raise ValueError(f"--seeds must be comma-separated integers, e.g. 0,1,2, got {text!r}") from error
    if any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must be distinct integers >= 0, got {text!r}")
    return seeds


def seed_overrides(seeds: Sequence[int]) -> list[str]:
    """``train.py`` overrides training ``seeds`` as one ensemble (the data seed: the first seed's)."""
    if len(seeds) == 1:
        return [f"seed={seeds[0]}"]
    return [f"seed={seeds[0]}", f"ensemble.size={len(seeds)}", f"ensemble.vary.seed=[{','.join(map(str, seeds))}]"]


def row_test(metrics: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The test dict a table row shows and a note: ``metrics["test"]`` for a single run; for an ensemble run the
    members' mean revenue and regret (sum over agents), their standard deviation over the members (not over the
    profiles) and the worst member."""
    if "ensemble" not in metrics:
        return metrics["test"], ""
    summary, members = metrics["ensemble"]["summary"], metrics["members"]
    test = {"revenue_mean": summary["revenue_mean_members_mean"], "revenue_std": summary["revenue_mean_members_sd"],
            "regret_sum_over_agents_mean": summary["regret_sum_over_agents_mean_members_mean"],
            "regret_sum_over_agents_std": summary["regret_sum_over_agents_mean_members_sd"],
            "n_samples": members[0]["test"]["n_samples"]}
    seeds = ",".join(str(m["seed"]) for m in members)
    note = (f" [seeds {seeds}: (sd over seeds); worst {summary['revenue_mean_members_worst']:.3f} / "
            f"{summary['regret_sum_over_agents_mean_members_worst']:.4f}]")
    return test, note
