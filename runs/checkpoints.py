"""Rebuilding a trained mechanism from a checkpoint written by ``train.py``, without a Trainer.

The checkpoint holds the resolved run configuration as ``hyper_parameters["run_config"]`` and the mechanism's
weights under ``mechanism.``: :func:`load_checkpoint` instantiates the first and loads the second.
:func:`run_config` maps older layouts to today's (``target``, :data:`RENAMED_TARGETS`, flat arguments).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from torch import nn

from distributions import Setting
from runs.config_store import SINKHORN_TARGET
from utils.checks import one_line

__all__ = ["TrainedRun", "load_checkpoint", "read_checkpoint", "run_config"]


@dataclass(frozen=True)
class TrainedRun:
    """A mechanism restored from a checkpoint (``checkpoint``), with the resolved run configuration it was trained
    under (``config``); ``mechanism`` maps bids ``(batch, agents, items)`` to ``(allocation, payment)``."""

    mechanism: nn.Module
    config: dict[str, Any]
    checkpoint: Path

    @property
    def setting(self) -> Setting:
        """The run's :class:`~distributions.Setting`: bidders, items, demand and distribution of its configuration."""
        return Setting.from_config(self.config)

    @property
    def data_seed(self) -> int:
        """Seed of the run's data: with it, the test split is the one ``train.py`` tested on."""
        return int(self.config.get("data", {}).get("seed", self.config.get("seed", 0)))

    @property
    def test_seed(self) -> int:
        """Seed of the random misreport starts in the run's test."""
        return int(self.config.get("model", {}).get("test_seed", self.config.get("seed", 0)))

    @property
    def run_dir(self) -> Path:
        """The run directory: ``<run>`` for ``<run>/checkpoints/x.ckpt``, else the checkpoint's folder."""
        folder = self.checkpoint.resolve().parent
        return folder.parent if folder.name == "checkpoints" else folder


RENAMED_TARGETS = {f"callbacks.{name}": f"lagrangian.{name}"
                   for name in ("RhoSchedule", "LagrangeUpdate", "TargetRegretUpdate")}
"""``_target_``s that moved, as a stored run configuration may name them: old name -> today's."""


def _with_targets(node: Any) -> Any:
    """A stored configuration with today's ``_target_`` keys (an old format stored them as ``target``) and
    today's names for moved targets (:data:`RENAMED_TARGETS`)."""
    if isinstance(node, dict):
        return {("_target_" if key == "target" else key):
                RENAMED_TARGETS.get(value, value) if key in ("target", "_target_") and isinstance(value, str)
                else _with_targets(value) for key, value in node.items()}
    return [_with_targets(value) for value in node] if isinstance(node, list) else node


_FLAT_NETWORK = ("hidden", "activation")  # the MLP arguments the mechanisms took before mechanism.allocation_net
_FLAT_SINKHORN = ("eps_init", "eps_final", "eps_steps", "tol", "max_iter", "grad")  # before mechanism.sinkhorn


def _nested(config: dict[str, Any]) -> dict[str, Any]:
    """A run configuration with flat network and Sinkhorn arguments in today's layout: ``mechanism.allocation_net``
    and ``payment_net`` (the MLP both were), ``mechanism.sinkhorn`` (and ``sinkhorn`` as a ``_target_`` node)."""
    mechanism = dict(config["mechanism"])
    if not (mechanism.keys() & {*_FLAT_NETWORK, *_FLAT_SINKHORN}):
        return config
    network = {"_target_": "mechanisms.networks.MLP", **{key: mechanism.pop(key) for key in _FLAT_NETWORK if key in mechanism}}
    sinkhorn = {key: mechanism.pop(key) for key in _FLAT_SINKHORN if key in mechanism}
    if sinkhorn:
        mechanism["sinkhorn"] = {"_target_": SINKHORN_TARGET, **sinkhorn}
    mechanism.update(allocation_net=network, payment_net=dict(network))
    config = {**config, "mechanism": mechanism}
    if isinstance(config.get("sinkhorn"), dict):
        config["sinkhorn"] = {"_target_": SINKHORN_TARGET, **config["sinkhorn"]}
    return config


def read_checkpoint(path: Path | str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The raw contents of a checkpoint file; ``ValueError`` (one line) when it is missing or not a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}" + (" (a directory)" if path.is_dir() else ""))
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many types for a non-checkpoint file
        detail = " ".join(str(error).split())[:120]
        raise ValueError(f"{path} is not a PyTorch checkpoint written by train.py (e.g. <run dir>/checkpoints/"
                         f"last.ckpt): torch.load failed ({type(error).__name__}: {detail})") from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not a train.py checkpoint (it holds a {type(checkpoint).__name__}, not a dict)")
    return checkpoint


def run_config(checkpoint: dict[str, Any], path: Path | str = "the checkpoint") -> dict[str, Any]:
    """The resolved run configuration stored in a :func:`read_checkpoint` dict, in today's layout (``_target_``
    keys and nested mechanism nodes, also for an old-format checkpoint); ``ValueError`` if absent."""
    config = checkpoint.get("hyper_parameters", {}).get("run_config")
    mechanism = config.get("mechanism") if isinstance(config, dict) else None
    if not isinstance(mechanism, dict) or not ({"_target_", "target"} & mechanism.keys()):
        raise ValueError(f"{path} holds no run configuration (hyper_parameters.run_config.mechanism); was it written by train.py?")
    return _nested(_with_targets(config))


def load_checkpoint(path: Path | str, device: torch.device | str = "cpu") -> TrainedRun:
    """Rebuild the mechanism of a ``train.py`` checkpoint on ``device``, weights loaded, in eval mode; one-line
    ``ValueError`` for a missing file, not a checkpoint, or one without the run configuration or fitting weights."""
    path = Path(path)
    checkpoint = read_checkpoint(path, device)
    config = run_config(checkpoint, path)
    members = checkpoint.get("hyper_parameters", {}).get("member_configs")
    if members:  # docs/ensembles.md
        raise ValueError(f"{path} is an ensemble checkpoint of {len(members)} members: read the exported members/"
                         "member_<k>.ckpt, or export one with python -m runs.export CHECKPOINT --member K --out FILE")
    try:  # _convert_="all": plain lists and dicts, as train.py's configuration asks (old checkpoints lack the key)
        mechanism = instantiate(config["mechanism"], _convert_="all")
    except (InstantiationException, TypeError, ValueError) as error:
        raise ValueError(f"cannot rebuild the mechanism {config['mechanism']['_target_']} from {path}: "
                         f"{one_line(error)[:200]}") from error
    state = {key.removeprefix("mechanism."): value
             for key, value in checkpoint.get("state_dict", {}).items() if key.startswith("mechanism.")}
    try:
        mechanism.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"the weights in {path} do not fit {type(mechanism).__name__}: {one_line(error)[:200]}") from error
    return TrainedRun(mechanism.to(device).eval(), config, path)

