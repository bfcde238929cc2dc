"""Building the run's objects from the Hydra configuration, and rejecting bad configurations early.

:func:`validate_config` checks a composed configuration before any training:
the top-level setting, the trainer settings the training loop relies on, and a
dry build of the mechanism, the data module, the LightningModule and the
callbacks (their constructors validate their own arguments: demand and sizes,
epsilons, batch versus data set size, ...).  Every problem surfaces as one
``ValueError`` with a one-line message naming the config section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
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


def _check_trainer(trainer: DictConfig) -> None:
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
