"""Building the run's objects from the Hydra configuration, and rejecting bad configurations early.

:func:`validate_config` checks the setting and the trainer, builds the components (their constructors check their
own arguments), then checks what the settings mean together and whether a ``resume`` checkpoint fits: every
problem is one ``ValueError`` naming the config section.  The run trains the components it returns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
import torch
from torch import nn

from utils.checks import check_flag, check_int, is_int, one_line
from mechanisms.demand import Demand
from runs.resume_checks import check_resume
from runs.setting_checks import check_meaning
from training.divergence import check_penalty_weights
from training.metric_logging import TRAINING_KEYS
from training.module import AuctionModule
from training.validation import validation_metrics

__all__ = ["Components", "build_components", "validate_config"]


@dataclass
class Components:
    """What a run trains: the mechanism, its data, the LightningModule and the callbacks."""

    mechanism: nn.Module
    datamodule: pl.LightningDataModule
    model: AuctionModule
    callbacks: list[pl.Callback]


def _build(section: str, build: Any) -> Any:
    """Run ``build()``, turning any construction error into a one-line ``ValueError`` naming ``section``."""
    try:
        return build()
    except (ValueError, TypeError, InstantiationException, OmegaConfBaseException) as error:
        raise ValueError(f"{section}: {one_line(error)}") from error


TEST_CHECKPOINTS = ("last", "best", "both")  # both: test the last weights, then the best checkpoint too
DATA_DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def _check_setting(cfg: DictConfig) -> None:
    check_int(cfg["agents"], "agents")
    check_int(cfg["items"], "items")
    check_int(cfg.seed, "seed", minimum=0)
    if cfg.get("threads") is not None:
        check_int(cfg.threads, "threads (torch CPU threads; null: torch's default)")
    if cfg.get("test_checkpoint", "last") not in TEST_CHECKPOINTS:
        raise ValueError(f"test_checkpoint must be one of {', '.join(TEST_CHECKPOINTS)}, got {cfg.test_checkpoint!r}")
    _build("demand", lambda: Demand(cfg.demand.name, cfg.demand.k).capacities(cfg["agents"], cfg["items"]))


def _check_data(cfg: DictConfig, world: int, check_machine: bool) -> None:
    data = cfg.data
    for name in ("train_size", "val_size", "test_size", "batch_size"):
        check_int(data.get(name), f"data.{name}")
    if data.get("val_batch_size") is not None:
        check_int(data.val_batch_size, "data.val_batch_size (null: data.batch_size)")
    device = str(data.get("device", "auto"))
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"data.device must be one of {', '.join(DATA_DEVICES)}, got {device!r}")
    if check_machine and device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"data.device={device} but CUDA is not available: use data.device=auto or cpu")
    if world > 1:  # every process needs a training and a validation batch
        val_batch = min(data.get("val_batch_size") or data.batch_size, data.val_size)
        for split, size, batch in (("train", data.train_size, data.batch_size), ("val", data.val_size, val_batch)):
            if -(-size // batch) < world:
                raise ValueError(f"data.{split}_size={size} in batches of {batch} gives fewer batches than the "
                                 f"{world} processes (trainer.devices x trainer.num_nodes): make "
                                 f"data.{split}_size >= {world * batch}")


def _check_run_options(cfg: DictConfig) -> None:
    trainer = cfg.trainer
    epochs, steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    if not (epochs == -1 or is_int(epochs) or epochs is None):
        raise ValueError(f"trainer.max_epochs must be an integer >= 1 (or -1: no limit), got {epochs!r}")
    if not (steps == -1 or is_int(steps)):
        raise ValueError(f"trainer.max_steps must be an integer >= 1 (or -1: no limit), got {steps!r}")
    if epochs == -1 and steps == -1:
        raise ValueError("trainer.max_epochs=-1 and trainer.max_steps=-1: the run would never stop; set one of them")
    for name in ("check_val_every_n_epoch", "log_every_n_steps"):
        if trainer.get(name) is not None:
            check_int(trainer.get(name), f"trainer.{name}")
    if cfg.model.get("test_batch_size") is not None:
        check_int(cfg.model.test_batch_size, "model.test_batch_size (null: the whole test set)")
    check_flag(cfg.get("resume_allow_changes", False), "resume_allow_changes")


def _check_penalty_schedule(cfg: DictConfig, world: int) -> None:
    """lambda_init, rho_init and the largest rho the run's schedule reaches must not overflow float32 training."""
    model, schedule = cfg.model, (cfg.get("callbacks") or {}).get("rho")
    lambda_init, rho_init = model.get("lambda_init", 5.0), model.get("rho_init", 1.0)
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (lambda_init, rho_init)):
        return  # the module's constructor reports the type
    largest = None
    if schedule is not None:
        trainer, data = cfg.trainer, cfg.data
        steps, epochs = trainer.get("max_steps", -1), trainer.get("max_epochs")
        if not (is_int(steps) and steps > 0):
            steps = epochs * (-(-data.train_size // data.batch_size) // world) if is_int(epochs) else 0
        start = schedule.get("rho_init", rho_init)
        largest = start + schedule.increment * (steps // schedule.every_n_steps)
        if schedule.get("max_rho") is not None:
            largest = min(largest, schedule.max_rho)
    _build("lagrangian", lambda: check_penalty_weights(float(lambda_init), float(rho_init), largest))


def _check_monitors(callbacks: list[pl.Callback]) -> None:
    """Every callback's ``monitor`` (checkpoint, early stopping) names a metric that something logs."""
    logged = {f"val/{name}" for name in validation_metrics()} | TRAINING_KEYS | {"hp_metric"}
    logged |= {c.score_key for c in callbacks if isinstance(getattr(c, "score_key", None), str)}
    audited = any(type(c).__name__ == "RegretAudit" for c in callbacks)
    for callback in callbacks:
        monitor = getattr(callback, "monitor", None)
        if monitor is None or monitor in logged or (audited and monitor.startswith("audit/")):
            continue
        hint = " (callbacks.budget=null removes the callback that logs it)" if monitor == "val/budgeted_revenue" else ""
        shown = ", ".join(sorted(k for k in logged if k.startswith("val/")))
        raise ValueError(f"callbacks: {type(callback).__name__} monitors {monitor!r}, which nothing logs{hint}: "
                         f"monitor one of {shown} (e.g. callbacks.checkpoint.monitor=val/revenue)")


STRATEGIES = ("auto", "ddp")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
PRECISIONS = ("32-true", "32")


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _check_trainer(trainer: DictConfig, check_machine: bool = True) -> None:
    """accelerator, strategy, devices, num_nodes (one process per device, as many devices as there are), then what
    the training loop needs: float32, no inference mode, manual optimization."""
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator not in ACCELERATORS:
        raise ValueError(f"trainer.accelerator must be one of {', '.join(ACCELERATORS)}, got {accelerator!r}")
    strategy = trainer.get("strategy", "auto")
    if strategy in ("ddp_spawn", "ddp_fork", "ddp_notebook"):
        raise ValueError(f"trainer.strategy={strategy} is not supported (the run's results cannot come back from "
                         "spawned/forked processes): use trainer.strategy=ddp")
    if strategy not in STRATEGIES:
        raise ValueError(f"trainer.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    check_int(devices, "trainer.devices")
    check_int(nodes, "trainer.num_nodes")
    if trainer.get("use_distributed_sampler", True) and devices * nodes > 1:
        raise ValueError("trainer.use_distributed_sampler must be false: the data module shards the batches itself")
    if check_machine:
        cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
        if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
            raise ValueError(f"trainer.accelerator={accelerator} but no CUDA GPU is available: use trainer=cpu")
        available = torch.cuda.device_count() if cuda else _cpu_count()
        if devices > available:
            kind = "GPU(s)" if cuda else "CPU core(s) (one process per device)"
            raise ValueError(f"trainer.devices={devices} but this machine has {available} {kind}: use 1..{available}")
    precision = str(trainer.get("precision", "32-true"))
    if precision not in PRECISIONS:
        raise ValueError("trainer.precision must be 32-true (the Sinkhorn layer and the misreport search need "
                         f"float32), got {precision!r}")
    if trainer.get("inference_mode", True):
        raise ValueError("trainer.inference_mode must be false: validation and test differentiate w.r.t. the bids")
    if trainer.get("gradient_clip_val") is not None or trainer.get("accumulate_grad_batches", 1) != 1:
        raise ValueError("trainer.gradient_clip_val/accumulate_grad_batches do not apply to manual optimization")


def world_size(trainer_cfg: DictConfig) -> int:
    """Processes a trainer configuration starts: ``devices * num_nodes`` (validated to be integers)."""
    return int(trainer_cfg.get("devices", 1)) * int(trainer_cfg.get("num_nodes", 1))


def build_components(cfg: DictConfig) -> Components:
    """Apply ``cfg.threads``, seed with ``cfg.seed``, instantiate the mechanism, data module, LightningModule and
    callbacks.  The module's ``run_config`` hyperparameter (the resolved configuration, ``_target_`` keys kept, from
    which checkpoints rebuild the mechanism) goes to the partial, as instantiate would build its ``_target_`` nodes."""
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    mechanism = _build("mechanism", lambda: instantiate(cfg.mechanism))
    node = cfg.get("distribution")  # None: the data node's U[data.low, data.high]
    distribution = None if node is None else _build("distribution", lambda: instantiate(node))
    datamodule = _build("data", lambda: instantiate(cfg.data, distribution=distribution))
    config = _build("config", lambda: OmegaConf.to_container(cfg, resolve=True))
    model = _build("model", lambda: instantiate(cfg.model, mechanism=mechanism, _partial_=True)(
        run_config=config, distribution=distribution))
    callbacks = [_build(f"callbacks.{name}", lambda spec=spec: instantiate(spec))
                 for name, spec in (cfg.get("callbacks") or {}).items() if spec is not None]
    return Components(mechanism, datamodule, model, callbacks)


def validate_config(cfg: DictConfig, check_machine: bool = True) -> Components:
    """The run's components (:func:`build_components`), or ``ValueError`` (one line, naming the section)
    unless ``cfg`` describes a trainable run (e.g. not exactly_k with items < agents * k, a batch larger than the
    data set, trainer settings that break the training loop, a ``resume`` checkpoint of another run).
    ``check_machine=False`` skips what depends on this machine (GPUs, cores: e.g. a job for a cluster node)."""
    _check_setting(cfg)
    _check_trainer(cfg.trainer, check_machine)
    _check_run_options(cfg)
    _check_data(cfg, world_size(cfg.trainer), check_machine)
    components = build_components(cfg)  # checks each component's own arguments
    check_meaning(cfg, components.datamodule.distribution)  # and what they mean together
    _check_penalty_schedule(cfg, world_size(cfg.trainer))
    _check_monitors(components.callbacks)
    check_resume(cfg, components.model)
    return components
