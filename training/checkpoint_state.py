"""What :class:`training.AuctionModule` adds to, and takes from, a Lightning checkpoint dict beyond the weights.

* the random states (torch, CUDA, NumPy, Python; :mod:`training.random_state`), so a resumed run draws
  what an uninterrupted one would;
* the persistent misreport buffer ``(train_size, agents, items)``, made optional in both directions:
  runs with and without persistent misreports resume each other's checkpoints.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from training.random_state import rng_states, set_rng_states

__all__ = ["restore_state", "save_state"]

BUFFER_KEY = "misreport_buffer"  # the buffer's name in the module's state dict


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
