"""One ensemble run: fit, test every member, export every member, report (``train.py`` with ``ensemble.size`` > 1).

Writes into ``cfg.output_dir``:

* ``checkpoints/last.ckpt`` (the ensemble, resumable) and ``checkpoints/member_<k>-best-*.ckpt``
  (the ensemble at member ``k``'s best regret-budget score);
* ``members/member_<k>.ckpt`` (member ``k``'s last weights) and ``members/member_<k>-best.ckpt``
  (its best ones), ordinary single-run checkpoints (:mod:`training.ensemble_export`);
* ``metrics.json``: every member (seed, varied settings, test, rho, lambda, best checkpoint) and the
  ensemble's summary (mean, sd and worst member of revenue and regret).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from reporting.atomic import write_json
from reporting.checkpoints import load_checkpoint
from reporting.tables import allocation_tolerance
from training.config import TEST_CHECKPOINTS, Components
from training.ensemble import EnsembleModule, ensemble_summary
from training.ensemble_config import VARY
from training.ensemble_export import export_member
from training.interrupt import StopOnSignal, stop_testing_on_signal
from training.run import _finite, _save_last, trainer_strategy

__all__ = ["format_ensemble_table", "run_ensemble"]


def _member_best(trainer: pl.Trainer, k: int) -> ModelCheckpoint | None:
    prefix = f"member_{k}/"
    return next((c for c in trainer.checkpoint_callbacks if c.monitor and c.monitor.startswith(prefix)), None)


def _varied(cfg: DictConfig, k: int) -> dict[str, Any]:
    vary = cfg.ensemble.get("vary") or {}
    return {key: vary[key][k] for key in VARY if vary.get(key) is not None}


def _test_best(model: EnsembleModule, datamodule: pl.LightningDataModule, k: int, path: Path) -> dict[str, Any]:
    """Member ``k``'s test of the exported single-run checkpoint ``path`` (its best weights)."""
    datamodule.setup("test")
    valuations = datamodule.splits["test"].valuations.to(model.device)
    return model.test_member(k, valuations, load_checkpoint(path, model.device).mechanism)


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


def run_ensemble(cfg: DictConfig, parts: Components) -> dict[str, Any]:
    """Train and test the ensemble of :func:`training.ensemble_config.build_ensemble`; returns (and writes as
    ``metrics.json``) every member's metrics and the ensemble's summary."""
    choice = cfg.get("test_checkpoint", "last")
    if choice not in TEST_CHECKPOINTS:
        raise ValueError(f"test_checkpoint must be one of {', '.join(TEST_CHECKPOINTS)}, got {choice!r}")
    start = time.perf_counter()
    model: EnsembleModule = parts.model
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    stop = StopOnSignal(Path(cfg.output_dir) / "checkpoints")  # SIGTERM/SIGINT: last.ckpt, then Interrupted (train.py)
    trainer: pl.Trainer = instantiate(
        cfg.trainer, strategy=trainer_strategy(cfg.trainer), callbacks=[*parts.callbacks, stop], logger=logger
    )
    trainer.fit(model, datamodule=parts.datamodule, ckpt_path=cfg.get("resume"))
    saved = _save_last(trainer)
    fitted = time.perf_counter()
    fit_metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    with stop_testing_on_signal(trainer.global_step, saved):
        trainer.test(model, datamodule=parts.datamodule, verbose=False)  # the last weights of every member

    output = Path(cfg.output_dir)
    members = []
    for k, config in enumerate(model.hparams["member_configs"]):
        best = _member_best(trainer, k)
        best_path = best.best_model_path if best is not None else ""
        exported = {}
        if saved is not None:
            exported["last"] = str(export_member(saved, k, output / "members" / f"member_{k}.ckpt"))
        if best_path:
            exported["best"] = str(export_member(best_path, k, output / "members" / f"member_{k}-best.ckpt"))
        test, tested = model.test_results["members"][k], "last"
        if choice == "best" and "best" in exported:
            test, tested = _test_best(model, parts.datamodule, k, Path(exported["best"])), exported["best"]
        members.append({
            "member": k, "seed": config["seed"], "varied": _varied(cfg, k), "test": test, "tested_weights": tested,
            "rho": float(model.rho[k]), "lambda": model.lagrange_multipliers[k].tolist(),
            "best_checkpoint": best_path, "best_score": _finite(best.best_model_score) if best is not None else None,
            "exported": exported,
        })
    done = time.perf_counter()
    mechanism = model.mechanism
    metrics = {
        "setting": f"{cfg['agents']} agent(s) x {cfg['items']} item(s), {cfg.demand.name} demand, {type(mechanism).__name__}",
        "ensemble": {"size": model.size, "data_seed": cfg.data.seed, "summary": ensemble_summary([m["test"] for m in members])},
        "members": members,
        "fit": fit_metrics,
        "references": model.references,
        "allocation_tolerance": allocation_tolerance(mechanism),
        "global_step": trainer.global_step,
        "train_time_s": fitted - start,
        "test_time_s": done - fitted,
        "wall_time_s": done - start,
    }
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "metrics.json", metrics)
    print(format_ensemble_table(metrics))
    return metrics
