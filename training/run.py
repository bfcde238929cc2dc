"""One training run: build from the config, fit, test, report (the body of ``train.py``).

:func:`run` seeds everything, builds the components with
``hydra.utils.instantiate``, fits (resuming from ``cfg.resume`` when set),
tests the ``cfg.test_checkpoint`` weights with the evaluation engine, prints
:func:`format_table` and writes ``metrics.json`` into ``cfg.output_dir``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from training.config import build_components

__all__ = ["format_table", "run"]

TEST_CHECKPOINTS = ("last", "best")


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


def _checkpoint(trainer: pl.Trainer) -> ModelCheckpoint | None:
    return next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)


def _test_weights(trainer: pl.Trainer, choice: str) -> str | None:
    """Checkpoint path to test, or ``None`` for the weights in memory (the last ones)."""
    if choice not in TEST_CHECKPOINTS:
        raise ValueError(f"test_checkpoint must be one of {', '.join(TEST_CHECKPOINTS)}, got {choice!r}")
    checkpoint = _checkpoint(trainer)
    if choice == "best" and checkpoint is not None and checkpoint.best_model_path:
        return checkpoint.best_model_path
    return None


def format_table(metrics: dict[str, Any]) -> str:
    """A short plain-text table of the final metrics written by :func:`run`."""
    test, refs = metrics["test"], metrics["references"]

    def stat(name: str) -> str:
        extras = ", ".join(f"{k} {test[f'{name}_{k}']:.4f}" for k in ("std", "max") if f"{name}_{k}" in test)
        return f"{test[f'{name}_mean']:.4f} ({extras})"

    optimal = refs.get("reference/optimal_revenue")
    rows = [
        ("setting", metrics["setting"]),
        ("test revenue", stat("revenue")),
        ("regret, mean over agents", stat("regret_mean_over_agents")),
        ("regret, sum over agents", stat("regret_sum_over_agents")),
        ("optimal revenue", "unknown" if optimal is None else f"{optimal:.4f}"),
        ("VCG revenue", f"{refs['reference/vcg_revenue']:.4f}" if "reference/vcg_revenue" in refs else "n/a"),
        ("tested weights", metrics["tested_weights"]),
        (
            "wall time",
            f"{_duration(metrics['wall_time_s'])} (train {_duration(metrics['train_time_s'])}, "
            f"test {_duration(metrics['test_time_s'])})",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and test the configured mechanism; returns (and writes as ``metrics.json``) the final metrics."""
    start = time.perf_counter()
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    parts = build_components(cfg)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=parts.callbacks, logger=logger)

    trainer.fit(parts.model, datamodule=parts.datamodule, ckpt_path=cfg.get("resume"))
    fitted = time.perf_counter()
    fit_metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    weights = _test_weights(trainer, cfg.get("test_checkpoint", "last"))
    trainer.test(parts.model, datamodule=parts.datamodule, ckpt_path=weights, verbose=False)
    done = time.perf_counter()

    model, mechanism = parts.model, parts.mechanism
    checkpoint = _checkpoint(trainer)
    metrics = {
        "setting": (
            f"{cfg['agents']} agent(s) x {cfg['items']} item(s), {cfg.demand.name} demand, {type(mechanism).__name__}"
        ),
        "fit": fit_metrics,
        "test": model.test_results,
        "references": model.references,
        "tested_weights": weights or "last",
        "global_step": trainer.global_step,
        "rho": float(model.rho),
        "lambda": model.lagrange_multipliers.tolist(),
        "best_checkpoint": checkpoint.best_model_path if checkpoint else "",
        "best_score": _finite(checkpoint.best_model_score) if checkpoint else None,
        "train_time_s": fitted - start,
        "test_time_s": done - fitted,
        "wall_time_s": done - start,
    }
    output = Path(cfg.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(format_table(metrics))
    return metrics


def _finite(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)
