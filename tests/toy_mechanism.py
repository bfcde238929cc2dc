"""A test-only learned mechanism, the worked example of docs/extending.md ("A new mechanism").

Every item is sold by its own second-price auction whose reserve ``r_j`` is learned, with the sale smoothed:
the highest bidder of item ``j`` gets it with probability ``sigmoid((top_j - r_j) / temperature)`` and pays
``max(r_j, second_j)``.  As ``temperature -> 0`` this is the truthful second-price auction with reserves; at a
positive temperature a bidder gains a little by overbidding near the reserve, and the Lagrangian prices that
regret.  Additive bidders only (items are sold independently).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mechanisms.base import Mechanism
from mechanisms.demand import Demand, KSpec


class SmoothReserveAuction(Mechanism):
    """Bids ``(batch, agents, items)`` -> allocation ``(batch, agents, items)``, payment ``(batch, agents)``;
    learned: the reserves ``(items,)``, starting at ``reserve``."""

    def __init__(self, n_agents: int, n_items: int, demand: str | Demand = "additive", k: KSpec = 1,
                 reserve: float = 0.2, temperature: float = 0.02) -> None:
        super().__init__(n_agents, n_items, demand, k)
        if self.demand.name != "additive":
            raise ValueError(f"SmoothReserveAuction sells items independently: it needs additive demand, got {self.demand}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.reserves = nn.Parameter(torch.full((n_items,), float(reserve)))
        self.temperature = float(temperature)

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        top, winner = bids.max(dim=1)  # (batch, items)
        second = bids.topk(2, dim=1).values[:, 1] if self.n_agents > 1 else torch.zeros_like(top)
        sold = torch.sigmoid((top - self.reserves) / self.temperature)  # (batch, items)
        allocation = nn.functional.one_hot(winner, self.n_agents).movedim(-1, 1).to(bids) * sold.unsqueeze(1)
        payment = (allocation * torch.maximum(second, self.reserves).unsqueeze(1)).sum(-1)
        return allocation, payment
