"""What :class:`training.AuctionModule` adds to, and takes from, a Lightning checkpoint dict beyond the weights.

* the random states (torch, CUDA, NumPy, Python) as values ``torch.load(weights_only=True)`` reads,
  so a resumed run draws what an uninterrupted one would;
* the persistent misreport buffer ``(train_size, agents, items)``, made optional in both directions:
  runs with and without persistent misreports resume each other's checkpoints.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

__all__ = ["restore_state", "rng_states", "save_state", "set_rng_states"]

BUFFER_KEY = "misreport_buffer"  # the buffer's name in the module's state dict


def rng_states() -> dict[str, Any]:
    """The global random states as tensors and plain Python values (loadable with ``weights_only=True``)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, state, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [str(kind), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(position), int(has_gauss), float(gauss)],
        "python": [version, list(state), python_gauss],
    }


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


def save_state(checkpoint: dict[str, Any]) -> None:
    """Store the process's random states in ``checkpoint``."""
    checkpoint["rng_states"] = rng_states()


def restore_state(checkpoint: dict[str, Any], buffer: Tensor | None) -> None:
    """Prepare ``checkpoint``'s state dict for a module with misreport buffer ``buffer`` (``None``: it keeps
    none), and restore the random states of :func:`save_state` (a checkpoint without them is accepted).

    A checkpoint without the buffer gets the module's current one (the search then warm-starts from it);
    a buffer in the checkpoint of a run that keeps none is dropped.
    """
    state = checkpoint.get("state_dict", {})
    if buffer is not None:
        state.setdefault(BUFFER_KEY, buffer)
    else:
        state.pop(BUFFER_KEY, None)
    states = checkpoint.get("rng_states")
    if states is not None:
        set_rng_states(states)
