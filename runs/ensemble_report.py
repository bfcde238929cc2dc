"""What an ensemble run reports (``train.py`` with ``ensemble.size`` > 1; the run itself is :func:`runs.run.run`).

:func:`ensemble_members` exports every member of the tested ensemble as a single-run checkpoint
(``members/member_<k>.ckpt``, ``members/member_<k>-best.ckpt``: :mod:`runs.export`) and collects the members'
metrics and the ensemble's summary for ``metrics.json``; :func:`format_ensemble_table` prints them
(docs/ensembles.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from omegaconf import DictConfig

from callbacks.warm_start import WarmStart
from runs.checkpoints import load_checkpoint
from runs.config import Components
from runs.members import VARY
from runs.export import export_member
from training.members import ensemble_summary
from utils.checks import finite_or_none
from training.validation import measure_member

__all__ = ["ensemble_members", "format_ensemble_table"]


def format_ensemble_table(metrics: dict[str, Any]) -> str:
    """One line per member and the summary: test revenue and regret (mean over agents)."""
    lines = [f"{metrics['setting']}: ensemble of {metrics['ensemble']['size']}"]
    for member in metrics["members"]:
        test = member["test"]
        lines.append(
            f"member {member['member']} (seed {member['seed']}{''.join(f', {k}={v}' for k, v in member['varied'].items())}): "
            f"revenue {test['revenue_mean']:.4f}, regret {test['regret_mean_over_agents_mean']:.5f} "
            f"(sum over agents {test['regret_sum_over_agents_mean']:.5f}), tested {Path(member['tested_weights']).name}"
        )
    s = metrics["ensemble"]["summary"]
    for name, label in (("revenue_mean", "revenue"), ("regret_mean_over_agents_mean", "regret")):
        lines.append(f"{label}: mean {s[f'{name}_members_mean']:.4f}, sd {s[f'{name}_members_sd']:.4f}, "
                     f"worst {s[f'{name}_members_worst']:.4f}")
    return "\n".join(lines)


def ensemble_members(trainer: pl.Trainer, parts: Components, cfg: DictConfig, saved: Path | None,
                     choice: str) -> dict[str, Any]:
    """After the ensemble's test: export every member, test its best weights when ``choice`` is ``best``;
    ``{"ensemble": {size, data_seed, summary}, "members": [...], "warm_start": ...}`` for ``metrics.json``."""
    model, output, vary = parts.model, Path(cfg.output_dir), cfg.ensemble.get("vary") or {}
    members = []
    for k, config in enumerate(model.hparams["member_configs"]):
        best = next((c for c in trainer.checkpoint_callbacks if c.monitor and c.monitor.startswith(f"member_{k}/")), None)
        best_path = best.best_model_path if best is not None else ""
        exported = {}
        if saved is not None:
            exported["last"] = str(export_member(saved, k, output / "members" / f"member_{k}.ckpt"))
        if best_path:
            exported["best"] = str(export_member(best_path, k, output / "members" / f"member_{k}-best.ckpt"))
        test, tested = model.test_results["members"][k], "last"
        if choice == "best" and "best" in exported:
            parts.datamodule.setup("test")
            valuations = parts.datamodule.splits["test"].valuations.to(model.device)
            test = measure_member(model, k, valuations, load_checkpoint(exported["best"], model.device).mechanism)
            tested = exported["best"]
        members.append({
            "member": k, "seed": config["seed"], "varied": {key: vary[key][k] for key in VARY if vary.get(key) is not None},
            "test": test, "tested_weights": tested,
            "rho": float(model.rho[k]), "lambda": model.lagrange_multipliers[k].tolist(),
            "best_checkpoint": best_path, "best_score": finite_or_none(best.best_model_score) if best else None,
            "exported": exported,
        })
    summary = ensemble_summary([m["test"] for m in members])
    return {
        "ensemble": {"size": model.members, "data_seed": cfg.data.seed, "summary": summary},
        "members": members,
        "warm_start": next((c.report for c in parts.callbacks if isinstance(c, WarmStart) and c.report), None),
    }
