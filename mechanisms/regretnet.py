"""The RegretNet baseline (Duetting et al. 2019; section 3.2 of the paper).

The allocation MLP's scores go through the softmax output layer the demand type names
(:meth:`mechanisms.demand.Demand.softmax_head`: ``additive``, ``unit`` or ``exactly_one``, docs/mechanisms.md), which
makes the allocation feasible by construction; other demand types are refused.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechanisms.base import Mechanism
from mechanisms.demand import Demand, KSpec, SoftmaxHead
from mechanisms.networks import MLP, NetworkFactory, PaymentHead, check_dtype

__all__ = ["RegretNet"]


class RegretNet(Mechanism):
    """RegretNet: bids ``(batch, agents, items)`` -> an exactly feasible allocation ``(batch, agents, items)`` from
    softmax heads and payments ``(batch, agents)`` from the shared IR payment head; ``allocation_net`` and
    ``payment_net`` are network factories."""

    def __init__(self, n_agents: int, n_items: int, demand: str | Demand = "unit", k: KSpec = 1,
                 allocation_net: NetworkFactory = MLP(), payment_net: NetworkFactory = MLP()) -> None:
        super().__init__(n_agents, n_items, demand, k)
        self.head: SoftmaxHead = self.demand.softmax_head(n_agents, n_items)
        item_wise = (n_agents + 1) * n_items  # softmax over agents + dummy agent, per item
        agent_wise = n_agents * (n_items + 1)  # softmax over items + dummy item, per agent
        n_out = {"additive": item_wise, "unit": item_wise + agent_wise, "exactly_one": n_items}[self.head]
        self.allocation_net = allocation_net(n_agents * n_items, n_out)
        self.payment_net = PaymentHead(n_agents, n_items, payment_net)

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, items)`` and payment ``(batch, agents)`` for valid bids."""
        check_dtype(bids, self.allocation_net)
        batch, n, m = bids.shape
        scores = self.allocation_net(bids.flatten(1))
        if self.head == "exactly_one":  # one agent, no dummy item: the row sums to exactly 1
            allocation = scores.view(batch, 1, m).softmax(2)
        else:
            split = (n + 1) * m
            allocation = scores[:, :split].view(batch, n + 1, m).softmax(1)[:, :n, :]
            if self.head == "unit":
                agent_wise = scores[:, split:].view(batch, n, m + 1).softmax(2)[:, :, :m]
                allocation = torch.minimum(allocation, agent_wise)
        return allocation, self.payment_net(bids, allocation)

    def extra_repr(self) -> str:
        return f"agents={self.n_agents}, items={self.n_items}, demand={self.demand}, head={self.head!r}"
