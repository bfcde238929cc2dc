"""Two mechanisms the baselines and the distributions' optima are built from: :class:`MenuMechanism` (a fixed menu of
(allocation, price) for one bidder) and :class:`Myerson` (one item, second price with reserve ``high / 2``).  Both
are piecewise constant in the bids: their outputs never require grad.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from mechanisms.base import Mechanism
from mechanisms.demand import Demand, KSpec
from mechanisms.second_price import second_price

__all__ = ["MenuMechanism", "Myerson", "check_high", "myerson_revenue"]


def check_high(high: float) -> None:
    if isinstance(high, bool) or not isinstance(high, (int, float)) or not (math.isfinite(high) and high > 0):
        raise ValueError(f"high (the top of the value range U[0, high]) must be a positive finite number, got {high!r}")


def myerson_revenue(n_agents: int, high: float = 1.0) -> float:
    """Expected revenue ``high (n - 1 + 2^-n) / (n + 1)`` of :class:`Myerson` with ``n`` bidders U[0, high]."""
    return high * (n_agents - 1 + 2.0**-n_agents) / (n_agents + 1)


class MenuMechanism(Mechanism):
    """A single-bidder mechanism that sells the utility-maximizing entry of a fixed menu.

    ``allocations`` is ``(entries, items)`` (each row feasible for the demand), ``prices`` is ``(entries,)``; a
    zero-price entry is "not buying" (an all-zero row: free disposal).  Ties go to the more expensive entry, then to
    the earlier one.  ``expected_revenue`` is the closed-form revenue for the intended value distribution.
    """

    def __init__(self, allocations: Sequence[Sequence[float]], prices: Sequence[float], demand: str | Demand,
                 k: KSpec = 1, *, expected_revenue: float, name: str) -> None:
        menu = torch.as_tensor(allocations, dtype=torch.float64)
        cost = torch.as_tensor(prices, dtype=torch.float64)
        if menu.dim() != 2 or cost.shape != (menu.shape[0],) or menu.shape[0] == 0:
            raise ValueError(f"menu needs allocations (entries, items) and prices (entries,), got "
                             f"{tuple(menu.shape)} and {tuple(cost.shape)}")
        super().__init__(1, menu.shape[1], demand, k)
        if (self.demand.violation(menu.unsqueeze(1)) > 0).any():
            raise ValueError(f"every menu allocation must lie in [0, 1] and be feasible for {self.demand}")
        order = torch.sort(-cost, stable=True).indices  # most expensive first: argmax then prefers it
        self.register_buffer("menu", menu[order])
        self.register_buffer("prices", cost[order])
        self.expected_revenue = expected_revenue
        self.name = name

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, 1, items)`` and payment ``(batch, 1)`` of the chosen menu entries."""
        bids = bids.detach()
        menu = self.menu.to(bids.device, bids.dtype)
        prices = self.prices.to(bids.device, bids.dtype)
        choice = (bids[:, 0] @ menu.T - prices).argmax(-1)  # first maximal entry
        return menu[choice].unsqueeze(1), prices[choice].unsqueeze(1)


class Myerson(Mechanism):
    """Optimal single-item auction for ``n`` bidders U[0, high]: second price with reserve ``high / 2``
    (:func:`~mechanisms.second_price.second_price`); bids ``(batch, agents, 1)`` -> allocation ``(batch, agents, 1)``
    and payment ``(batch, agents)``."""

    def __init__(self, n_agents: int, high: float = 1.0, demand: str | Demand = "unit", k: KSpec = 1) -> None:
        super().__init__(n_agents, 1, demand, k)
        if not self.demand.free_disposal(n_agents, 1):
            raise ValueError(f"Myerson needs free disposal: {self.demand.description} forces the item onto a bidder")
        check_high(high)
        self.reserve = high / 2.0
        self.expected_revenue = myerson_revenue(n_agents, high)
        self.name = "second price with reserve 1/2 (Myerson 1981)"

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, 1)`` and payment ``(batch, agents)``; neither requires grad."""
        allocation, payment = second_price(bids, torch.tensor([self.reserve], dtype=torch.float64))
        return allocation, payment[..., 0]
