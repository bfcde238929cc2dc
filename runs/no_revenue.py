"""A run whose mechanism stopped earning: test revenue near 0 at the end of the run (docs/scaling_out.md).

E.g. ``model.lr=10`` drives the networks to give an item away or to allocate nothing, and to charge nothing: zero
regret, zero revenue, a table that looks normal.  :func:`runs.run.run` prints :func:`no_revenue_warning` and writes
it to ``metrics.json`` and TensorBoard.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["NEAR_ZERO", "allocated_mass", "no_revenue_warning"]

NEAR_ZERO = 0.01
"""Revenue below this fraction of the mean upper value bound is 'near 0'."""


@torch.no_grad()
def allocated_mass(mechanism: nn.Module, valuations: Tensor) -> float:
    """Mean over the profiles ``(batch, agents, items)`` of the allocated fraction of the items (1: every item sold)."""
    allocation, _ = mechanism(valuations)
    return float(allocation.sum(1).mean())


def no_revenue_warning(revenue: float, mass: float, value_scale: float, best_validation: float | None = None) -> str | None:
    """The warning line if test ``revenue`` <= NEAR_ZERO x ``value_scale`` (the allocated ``mass`` says how), else
    ``None``.  ``best_validation`` (:class:`callbacks.CollapseGuard`'s; ``None``: unknown, both causes are named)
    above the same threshold is a collapse; below it, the mechanism's settings are the suspect."""
    if not revenue <= NEAR_ZERO * value_scale:
        return None
    how = "it allocates nothing" if mass <= NEAR_ZERO else f"it gives items away: allocated mass {mass:.3f} of the items"
    head = f"the mechanism earns no revenue (test revenue {revenue:.4f}; {how})"
    if best_validation is None:
        return (f"{head}; the training curves tell the cause: revenue that fell during training is a collapse (e.g. a "
                "too large model.lr), revenue never earned points at the mechanism's settings")
    if best_validation > NEAR_ZERO * value_scale:
        return (f"{head}: training collapsed after a best validation revenue of {best_validation:.4f}, e.g. a too large "
                "model.lr; see the training curves")
    return (f"{head}: it earned none in any validation either (best {best_validation:.4f}), so the mechanism's settings "
            "(or a budget too short to learn) are the suspect, not a collapse")
