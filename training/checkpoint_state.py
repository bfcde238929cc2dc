"""What :class:`training.AuctionModule` keeps beyond the weights: the random states and the persistent misreports.

The random states (torch, CUDA, NumPy, Python) are stored as values ``torch.load(weights_only=True)`` reads, so a
resumed run draws what an uninterrupted one would.  The persistent misreport buffer (docs/training.md, "Persistent
misreports"; buffer ``misreport_buffer``, ``(train_size, agents, items)``, K members ``(train_size, K, agents,
items)``) is read by :func:`recall` and written by :func:`remember`; checkpoints with and without it resume each other.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor

from datamodules.valuations import TrainBatch
from distributions import ValuationDistribution
from utils.checks import is_int

__all__ = ["check_buffer", "new_buffer", "recall", "remember", "restore_state", "rng_states", "set_rng_states",
           "split_batch"]

BUFFER_KEY = "misreport_buffer"  # the buffer's name in the module's state dict


def rng_states() -> dict[str, Any]:
    """The global random states as tensors and plain Python values (loadable with ``weights_only=True``)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, state, python_gauss = random.getstate()
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [str(kind), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(position), int(has_gauss),
                      float(gauss)],
            "python": [version, list(state), python_gauss]}


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Restore :func:`rng_states` (CUDA states only where CUDA is available with as many devices)."""
    torch.set_rng_state(states["torch"].cpu())
    cuda = states.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([state.cpu() for state in cuda])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), position, has_gauss, gauss))
    version, state, python_gauss = states["python"]
    random.setstate((version, tuple(state), python_gauss))


def restore_state(checkpoint: dict[str, Any], buffer: Tensor | None) -> None:
    """Fit ``checkpoint``'s state dict to a module with misreport buffer ``buffer`` (``None``: none; a missing
    buffer is the module's current one); restore the random states where the checkpoint has them."""
    state = checkpoint.get("state_dict", {})
    if buffer is not None:
        state.setdefault(BUFFER_KEY, buffer)
    else:
        state.pop(BUFFER_KEY, None)
    if checkpoint.get("rng_states") is not None:
        set_rng_states(checkpoint["rng_states"])


def new_buffer(distribution: ValuationDistribution, train_size: Any, members: int) -> Tensor:
    """A run's first misreport buffer: draws from ``distribution``, ``(train_size, agents, items)``.  K members:
    an uninitialized ``(train_size, K, agents, items)``, which :func:`runs.members.stack_modules` fills with the
    members' own first buffers (no draws made only to be overwritten)."""
    if not is_int(train_size):
        raise ValueError(f"persistent_misreports needs train_size, a positive integer, got {train_size!r}")
    if members == 1:
        return distribution.sample(train_size)
    return torch.empty(train_size, members, distribution.n_agents, distribution.n_items, dtype=torch.float32)


def check_buffer(buffer: Tensor, datamodule: Any) -> None:
    """``ValueError`` unless ``buffer`` holds as many profiles as the data module's training set (where it says)."""
    sizes = getattr(datamodule, "sizes", None)
    if isinstance(sizes, dict) and sizes.get("train") != len(buffer):
        raise ValueError(f"the misreport buffer holds {len(buffer)} profiles but the training set "
                         f"{sizes.get('train')}: set model.train_size to data.train_size")


def split_batch(batch: TrainBatch | Tensor, persistent: bool) -> tuple[Tensor | None, Tensor]:
    """A training batch's profile indices (``None``: not persistent) and valuations ``(batch, agents, items)``."""
    indices, valuations = batch if isinstance(batch, tuple) else (None, batch)
    if persistent and indices is None:
        raise ValueError("persistent_misreports needs training batches (indices, valuations), e.g. TrainBatch")
    return indices if persistent else None, valuations


def recall(module: pl.LightningModule, indices: Tensor | None) -> Tensor | None:
    """The buffered misreports ``(batch * K, agents, items)`` of training profiles ``indices`` (``None``: none)."""
    return None if indices is None else getattr(module, BUFFER_KEY)[indices].flatten(0, -3)


def remember(module: pl.LightningModule, indices: Tensor | None, misreports: Tensor) -> None:
    """Write the misreports ``(batch * K, agents, items)`` of training profiles ``indices`` (``None``: none) into
    ``module``'s buffer, every process's batch on every process (so the buffers stay identical under DDP)."""
    if indices is None:
        return
    buffer = getattr(module, BUFFER_KEY)
    if module.trainer is not None and module.trainer.world_size > 1:
        indices = module.all_gather(indices).reshape(-1)
        misreports = module.all_gather(misreports).reshape(-1, *misreports.shape[1:])
    buffer[indices] = misreports.view(len(indices), *buffer.shape[1:])
