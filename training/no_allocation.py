"""A run whose mechanism stopped allocating (issue 19, point 3): revenue and allocated mass near 0 at the end.

E.g. ``model.lr=10`` drives the networks to allocate nothing and charge nothing: zero regret, zero
revenue, a table that looks normal.  :func:`no_allocation_warning` names it; :func:`training.run.run`
prints it in the log and the results table, writes it to ``metrics.json`` (``warnings``) and to
TensorBoard (text ``warnings/no_allocation``).  (A finer guard, per bidder and during training, can
build on :func:`allocated_mass`.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["NEAR_ZERO", "allocated_mass", "no_allocation_warning"]

NEAR_ZERO = 0.01
"""Revenue (as a fraction of the mean upper value bound) and allocated mass (fraction of the items) called 'near 0'."""


@torch.no_grad()
def allocated_mass(mechanism: nn.Module, valuations: Tensor) -> float:
    """Mean over the profiles ``(batch, agents, items)`` of the allocated fraction of the items (1: every item sold)."""
    allocation, _ = mechanism(valuations)
    return float(allocation.sum(1).mean())


def no_allocation_warning(revenue: float, mass: float, value_scale: float) -> str | None:
    """The warning line if test ``revenue`` <= NEAR_ZERO x ``value_scale`` and allocated ``mass`` <= NEAR_ZERO, else ``None``."""
    if not (revenue <= NEAR_ZERO * value_scale and mass <= NEAR_ZERO):
        return None
    return (f"the mechanism stopped allocating: test revenue {revenue:.4f}, allocated mass {mass:.4f} of the items "
            f"(training collapsed, e.g. a too large model.lr; see the training curves)")
