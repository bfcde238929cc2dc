"""Building the run's objects from the Hydra configuration, and rejecting bad configurations early.

:func:`validate_config` checks a composed configuration before any training:
the top-level setting, the trainer settings the training loop relies on, and a
dry build of the mechanism, the data module, the LightningModule and the
callbacks (their constructors validate their own arguments: demand and sizes,
epsilons, batch versus data set size, ...).  Every problem surfaces as one
``ValueError`` with a one-line message naming the config section.
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

from mechanisms.demand import Demand
from training.module import AuctionModule

__all__ = ["Components", "build_components", "validate_config"]


@dataclass
class Components:
    """What a run trains: the mechanism, its data, the LightningModule and the callbacks."""

    mechanism: nn.Module
    datamodule: pl.LightningDataModule
    model: AuctionModule
    callbacks: list[pl.Callback]


def _positive_int(value: Any, name: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _one_line(error: BaseException) -> str:
    """The innermost cause's message on one line."""
    while error.__cause__ is not None:
        error = error.__cause__
    return " ".join(str(error).split()) or type(error).__name__


def _build(section: str, build: Any) -> Any:
    """Run ``build()``, turning any construction error into a one-line ``ValueError`` naming ``section``."""
    try:
        return build()
    except (ValueError, TypeError, InstantiationException, OmegaConfBaseException) as error:
        raise ValueError(f"{section}: {_one_line(error)}") from error


def _check_setting(cfg: DictConfig) -> None:
    _positive_int(cfg["agents"], "agents")
    _positive_int(cfg["items"], "items")
    _positive_int(cfg.seed, "seed", minimum=0)
    _build("demand", lambda: Demand(cfg.demand.name, cfg.demand.k).capacities(cfg["agents"], cfg["items"]))


STRATEGIES = ("auto", "ddp")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
PRECISIONS = ("32-true", "32")


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _check_devices(trainer: DictConfig) -> None:
    """accelerator, strategy, devices, num_nodes: one process per device, as many devices as there are."""
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator not in ACCELERATORS:
        raise ValueError(f"trainer.accelerator must be one of {', '.join(ACCELERATORS)}, got {accelerator!r}")
    strategy = trainer.get("strategy", "auto")
    if strategy in ("ddp_spawn", "ddp_fork", "ddp_notebook"):
        raise ValueError(
            f"trainer.strategy={strategy} is not supported (the run's results cannot come back from "
            "spawned/forked processes): use trainer.strategy=ddp"
        )
    if strategy not in STRATEGIES:
        raise ValueError(f"trainer.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    _positive_int(devices, "trainer.devices")
    _positive_int(nodes, "trainer.num_nodes")
    cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(f"trainer.accelerator={accelerator} but no CUDA GPU is available: use trainer=cpu")
    available = torch.cuda.device_count() if cuda else _cpu_count()
    if devices > available:
        kind = "GPU(s)" if cuda else "CPU core(s) (one process per device)"
        raise ValueError(f"trainer.devices={devices} but this machine has {available} {kind}: use 1..{available}")
    if trainer.get("use_distributed_sampler", True) and devices * nodes > 1:
        raise ValueError("trainer.use_distributed_sampler must be false: the data module shards the batches itself")


def _check_trainer(trainer: DictConfig) -> None:
    _check_devices(trainer)
    precision = str(trainer.get("precision", "32-true"))
    if precision not in PRECISIONS:
        raise ValueError(
            f"trainer.precision must be 32-true (the Sinkhorn layer and the misreport search need float32), got {precision!r}"
        )
    if trainer.get("inference_mode", True):
        raise ValueError("trainer.inference_mode must be false: validation and test differentiate w.r.t. the bids")
    if trainer.get("gradient_clip_val") is not None or trainer.get("accumulate_grad_batches", 1) != 1:
        raise ValueError("trainer.gradient_clip_val/accumulate_grad_batches do not apply to manual optimization")


def _plain(node: Any) -> Any:
    """The resolved config as hyperparameters: ``_target_`` becomes ``target``, other ``_..._`` keys go.

    (Left as ``_target_``, instantiate would build the nested nodes again.)
    """
    if isinstance(node, dict):
        kept = {k: v for k, v in node.items() if k == "_target_" or not k.startswith("_")}
        return {("target" if k == "_target_" else k): _plain(v) for k, v in kept.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def build_components(cfg: DictConfig) -> Components:
    """Instantiate mechanism, data module, LightningModule (resolved config as hyperparameters), callbacks."""
    mechanism = _build("mechanism", lambda: instantiate(cfg.mechanism))
    datamodule = _build("data", lambda: instantiate(cfg.data))
    config = _build("config", lambda: _plain(OmegaConf.to_container(cfg, resolve=True)))
    model = _build("model", lambda: instantiate(cfg.model, mechanism=mechanism, run_config=config))
    callbacks = [
        _build(f"callbacks.{name}", lambda spec=spec: instantiate(spec))
        for name, spec in (cfg.get("callbacks") or {}).items()
        if spec is not None
    ]
    return Components(mechanism, datamodule, model, callbacks)


def validate_config(cfg: DictConfig) -> None:
    """Raise ``ValueError`` (one line, naming the section) unless ``cfg`` describes a trainable run.

    Catches e.g. exactly_k with items < agents * k, RegretNet with exactly_k
    and several agents, a non-positive epsilon, a batch larger than the data
    set, an unknown demand, and trainer settings that break the training loop.
    """
    _check_setting(cfg)
    _check_trainer(cfg.trainer)
    build_components(cfg)
