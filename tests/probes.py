"""Test helpers that run inside train.py processes (named in Hydra overrides, e.g. +callbacks.probe._target_=...)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch


class StateProbe(pl.Callback):
    """After training, every process saves what it holds to ``<dirpath>/rank<global rank>.pt``.

    Saved: the module's state dict, lambda, rho, the global step, the number of training batches this
    process saw and the metrics of its last validation (``trainer.callback_metrics`` at that time).
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.train_batches = 0
        self.val_metrics: dict[str, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.train_batches += 1

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.val_metrics = {
            key: float(value) for key, value in trainer.callback_metrics.items() if key.startswith("val/")
        }
        self.val_step = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        state = {
            "state_dict": {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()},
            "lambda": pl_module.lagrange_multipliers.detach().cpu().clone(),
            "rho": pl_module.rho.detach().cpu().clone(),
            "global_step": trainer.global_step,
            "val_step": self.val_step,
            "train_batches": self.train_batches,
            "val_metrics": self.val_metrics,
            "world_size": trainer.world_size,
        }
        torch.save(state, self.dirpath / f"rank{trainer.global_rank}.pt")


class ValidationRecorder(pl.Callback):
    """After every validation, append ``{"step": global step, "val/...": value}`` as a JSON line to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import json

        record = {"step": trainer.global_step}
        record.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})
        with self.path.open("a") as stream:
            stream.write(json.dumps(record) + "\n")


class InjectNonFinite(pl.Callback):
    """At the end of training batch ``at_step`` (the global step after it), set every Lagrange multiplier to NaN."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.at_step:
            pl_module.lagrange_multipliers.fill_(float("nan"))


class MarkStep(pl.Callback):
    """Create the file ``path`` after training batch ``at_step`` (a test waits for it, then signals the run);
    with ``sleep`` seconds, every later batch sleeps that long (the signal arrives mid-training)."""

    def __init__(self, path: str, at_step: int, sleep: float = 0.0) -> None:
        self.path, self.at_step, self.sleep = Path(path), at_step, sleep

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        import time

        if trainer.global_step == self.at_step:
            self.path.write_text(str(trainer.global_step))
        if trainer.global_step >= self.at_step:
            time.sleep(self.sleep)
