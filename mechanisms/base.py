"""The mechanism contract shared by learned, classical and user-written auctions (docs/mechanisms.md).

A mechanism is a ``torch.nn.Module`` whose ``forward(bids)`` maps bids ``(batch, agents, items)`` to an allocation
``(batch, agents, items)`` in ``[0, 1]``, feasible for its demand (:meth:`mechanisms.demand.Demand.violation` is 0),
and a payment ``(batch, agents)``.  Subclassing :class:`Mechanism` adds the bookkeeping (sizes, demand, checks).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mechanisms.demand import Demand, KSpec

__all__ = ["Mechanism", "check_bids", "utility"]


def check_bids(bids: Tensor, n_agents: int, n_items: int) -> None:
    """Raise ``ValueError`` unless ``bids`` is a finite float32/float64 ``(batch >= 1, n_agents, n_items)`` tensor."""
    if not isinstance(bids, Tensor) or bids.dim() != 3 or tuple(bids.shape[1:]) != (n_agents, n_items):
        shape = tuple(bids.shape) if isinstance(bids, Tensor) else type(bids).__name__
        raise ValueError(f"bids must have shape (batch, {n_agents}, {n_items}), got {shape}")
    if bids.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"bids must be float32 or float64, got {bids.dtype}: cast them, e.g. bids.float()")
    if bids.shape[0] == 0:
        raise ValueError(f"bids hold no profile: batch size 0 (shape {tuple(bids.shape)})")
    if not bool(torch.isfinite(bids).all()):
        raise ValueError("bids contain NaN or Inf")


def utility(valuations: Tensor, allocation: Tensor, payment: Tensor) -> Tensor:
    """Quasi-linear utilities ``(batch, agents)`` from valuations and allocations ``(batch, agents, items)``."""
    return (valuations * allocation).sum(-1) - payment


class Mechanism(nn.Module):
    """Base class: stores the setting and validates bids before :meth:`allocate_and_pay` (which subclasses
    implement: ``allocate_and_pay(bids) -> (allocation, payment)``)."""

    def __init__(self, n_agents: int, n_items: int, demand: str | Demand = "unit", k: KSpec = 1) -> None:
        super().__init__()
        self.demand = demand if isinstance(demand, Demand) else Demand(demand, k)
        self.capacities = self.demand.capacities(n_agents, n_items)  # validates sizes and k
        self.n_agents, self.n_items = n_agents, n_items

    def forward(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, items)`` and payment ``(batch, agents)`` for ``bids``."""
        check_bids(bids, self.n_agents, self.n_items)
        return self.allocate_and_pay(bids)

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError
