"""Whether a ``resume`` checkpoint may be continued (docs/training.md, "Resuming"): the same run (settings of
:data:`RESUME_COMPARED`; ``resume_allow_changes`` except :data:`RESUME_FIXED`), a budget it has not passed, and
weights that fit.
"""

from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from distributions import distribution_node
from runs.checkpoints import read_checkpoint, run_config
from training.checkpoint_state import BUFFER_KEY
from utils.checks import is_int

__all__ = ["RESUME_COMPARED", "RESUME_FIXED", "check_resume", "resume_differences"]

# What defines a training run: a resume refuses to continue a checkpoint whose stored values differ here.
RESUME_COMPARED = (  # the Sinkhorn settings as the mechanism holds them: mechanism.sinkhorn
    "agents", "items", "seed", "demand", "distribution", "mechanism", "data", "model", "lagrangian",
    "callbacks.rho", "callbacks.lagrange", "callbacks.budget", "callbacks.warm_start", "callbacks.collapse", "ensemble")
# Callbacks added after the first checkpoints were written: not compared with a checkpoint that lacks the section.
RESUME_ADDED_SINCE = ("callbacks.warm_start", "callbacks.collapse")
RESUME_IGNORED = ("data.device",)  # where the data lives does not change the run
# The setting and the architecture: the whole network nodes, so that no architecture field slips past.
RESUME_FIXED = ("agents", "items", "demand", "distribution", "mechanism._target_", "mechanism.allocation_net", "mechanism.payment_net",
                "ensemble.size")


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{dotted key: value}`` of a nested config; Hydra's ``_..._`` keys other than ``_target_`` are left out."""
    if isinstance(node, dict):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            if key == "_target_" or not (key.startswith("_") and key.endswith("_")):
                flat.update(_flat(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: node}


def _section(config: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(config, dict) or key not in config:
            return None
        config = config[key]
    return config


def resume_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, checkpoint value, this run's value)`` for each setting of :data:`RESUME_COMPARED` that differs."""
    differences = []
    if "distribution" in current and "distribution" not in stored:  # a run from before the distribution group
        stored = {**stored, "distribution": distribution_node(stored)}
    if "ensemble" in current and "ensemble" not in stored:  # a run from before ensembles: a single run
        stored = {**stored, "ensemble": {"size": 1}}
    for section in RESUME_COMPARED:
        parent, _, key = section.rpartition(".")
        if section in RESUME_ADDED_SINCE and key not in (_section(stored, parent) or {}):
            continue
        old, new = _flat(_section(stored, section), f"{section}."), _flat(_section(current, section), f"{section}.")
        for key in sorted(old.keys() | new.keys()):
            if key in RESUME_IGNORED or old.get(key, "<absent>") == new.get(key, "<absent>"):
                continue
            if old.get(key) is None and new.get(key) is None:  # a setting added since, left at null (off)
                continue
            differences.append((key, old.get(key, "<absent>"), new.get(key, "<absent>")))
    return differences


def _check_shapes(checkpoint: dict[str, Any], model: nn.Module) -> None:
    """Every tensor of the checkpoint's state dict has the shape of ``model``'s (a shape change is never a resume)."""
    stored, current = checkpoint.get("state_dict", {}), model.state_dict()
    optional = {BUFFER_KEY} - (stored.keys() & current.keys())  # a misreport buffer on one side only is fine
    changes = [f"{key}: {tuple(stored[key].shape)} in the checkpoint, {tuple(current[key].shape)} now"
               for key in sorted(stored.keys() & current.keys()) if tuple(stored[key].shape) != tuple(current[key].shape)]
    changes += [f"{key} only in the checkpoint" for key in sorted(stored.keys() - current.keys() - optional)]
    changes += [f"{key} only in this run's model" for key in sorted(current.keys() - stored.keys() - optional)]
    if changes:
        raise ValueError(f"resume: the checkpoint's weights do not fit this run's model ({'; '.join(changes)}); "
                         "a change of shape cannot be continued")


def check_resume(cfg: DictConfig, model: nn.Module | None = None) -> None:
    """``resume``: a train.py checkpoint of the same run (one-line diff otherwise, unless resume_allow_changes,
    which prints the changes) whose weights fit ``model`` (``None``: not checked)."""
    path = cfg.get("resume")
    if path is None:
        return
    if not isinstance(path, str) or not path:
        raise ValueError(f"resume must be the path of a checkpoint (e.g. <run dir>/checkpoints/last.ckpt), got {path!r}")
    try:
        checkpoint = read_checkpoint(path)
        stored = run_config(checkpoint, path)
    except ValueError as error:
        raise ValueError(f"resume: {error}") from error
    _check_resume_budget(cfg.trainer, checkpoint)
    differences = resume_differences(stored, OmegaConf.to_container(cfg, resolve=True))
    listed = "; ".join(f"{key}: {old!r} in the checkpoint, {new!r} now" for key, old, new in differences)
    if any(key == f or key.startswith(f + ".") for key, _, _ in differences for f in RESUME_FIXED):
        raise ValueError(f"resume: the checkpoint is of another setting or architecture ({listed}); it cannot be continued")
    if differences and not cfg.get("resume_allow_changes", False):
        raise ValueError(f"resume: this run's configuration differs from the checkpoint's ({listed}); use the "
                         "checkpoint's values, or add resume_allow_changes=true to continue with the new ones")
    if differences:  # resume_allow_changes=true
        print(f"warning: resume_allow_changes=true: continuing with settings the checkpoint was not trained with "
              f"({listed})", file=sys.stderr)
    if model is not None:
        _check_shapes(checkpoint, model)


def _check_resume_budget(trainer: DictConfig, checkpoint: dict[str, Any]) -> None:
    """``trainer.max_epochs``/``max_steps`` at least the checkpoint's epochs and steps (Lightning refuses less mid-fit)."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    epochs, steps = int(progress.get("completed", checkpoint.get("epoch", 0))), int(checkpoint.get("global_step", 0))
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    if is_int(max_epochs) and max_epochs < epochs:
        raise ValueError(f"resume: the checkpoint has trained {epochs} epoch(s) (step {steps}) but trainer.max_epochs="
                         f"{max_epochs}: set trainer.max_epochs >= {epochs}")
    if is_int(max_steps) and max_steps < steps:
        raise ValueError(f"resume: the checkpoint has trained {steps} step(s) but trainer.max_steps={max_steps}: "
                         f"set trainer.max_steps >= {steps} (or -1)")
