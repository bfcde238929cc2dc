"""The Vickrey-Clarke-Groves auction, computed exactly with an assignment solver (docs/baselines.md).

VCG picks a welfare-maximizing deterministic allocation of the bids and charges each agent the harm it does to
the others (Clarke pivot: the others' best welfare without it minus their welfare in the chosen allocation).
The welfare maximization is the demand type's (:meth:`mechanisms.demand.Demand.max_welfare`); the problem without
agent ``i`` is the same demand on the others.  With free disposal and no binding capacity the items are
independent and VCG is a vectorized second-price auction per item.  Ties are broken deterministically; the
outputs never require grad (VCG is piecewise constant in the bids).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mechanisms.base import Mechanism
from mechanisms.demand import Demand, KSpec

__all__ = ["VCG"]


class VCG(Mechanism):
    """Exact VCG auction for any demand type (unit, k_demand, exactly_k, additive, ...).

    The assignment path loops over the batch in Python (``agents + 1`` scipy solves per sample); the per-item
    path is vectorized.
    """

    def __init__(self, n_agents: int, n_items: int, demand: str | Demand = "unit", k: KSpec = 1) -> None:
        super().__init__(n_agents, n_items, demand, k)
        self.per_item = self.demand.free_disposal(n_agents, n_items) and all(c >= n_items for c in self.capacities)
        # for each agent i: the other agents and their capacities (the problem without i)
        self._without = [([j for j in range(n_agents) if j != i], [c for j, c in enumerate(self.capacities) if j != i])
                         for i in range(n_agents)]

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, items)`` and payment ``(batch, agents)`` (the bids' dtype and device)."""
        bids = bids.detach()
        if self.per_item:
            return _second_price_per_item(bids)
        values = bids.to("cpu", torch.float64).numpy()
        allocation, payment = np.zeros_like(values), np.zeros(values.shape[:2])
        for b, v in enumerate(values):
            allocation[b], welfare = self.demand.max_welfare(v, self.capacities)
            own = (v * allocation[b]).sum(-1)
            for i, (rest, caps) in enumerate(self._without):
                without_i = self.demand.max_welfare(v[rest], caps)[1] if rest else 0.0
                payment[b, i] = without_i - (welfare - own[i])
        return tuple(torch.from_numpy(x).to(bids.device, bids.dtype) for x in (allocation, payment))


def _second_price_per_item(bids: Tensor) -> tuple[Tensor, Tensor]:
    """Per-item second-price auctions (no reserve, free disposal) on bids ``(batch, agents, items)``: item ``j`` goes
    to its highest positive bidder (lowest index on ties), who pays the highest other bid, or 0 if that is negative."""
    n_agents = bids.shape[1]
    top, winner = bids.max(dim=1)  # (batch, items); max returns the first maximal index
    second = bids.topk(2, dim=1).values[:, 1] if n_agents > 1 else torch.zeros_like(top)
    wins = torch.nn.functional.one_hot(winner, n_agents).transpose(1, 2).to(bids.dtype)
    allocation = wins * (top > 0).unsqueeze(1).to(bids.dtype)
    payment = (allocation * second.clamp(min=0).unsqueeze(1)).sum(-1)
    return allocation, payment
