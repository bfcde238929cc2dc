"""Pay to choose (exactly-k demand): a free lottery over the items left, or a price for the best ones.

Bidders act in the order ``0, 1, ..., n - 1``.  Bidder ``i``, facing the ``r`` items the earlier bidders left,
either takes for free a uniformly random ``k_i``-subset of them (expected value ``k_i / r`` times their total) or
pays ``p_i`` for the ``k_i`` it values most, whichever its reported values make better (the lottery on ties).
Its options do not depend on its report: dominant-strategy truthful and individually rational.

The allocation is the expected one: every realization of the earlier bidders' lotteries is enumerated,
vectorized over the batch, so the mechanism is exact but limited to :data:`MAX_OUTCOMES` lottery outcomes.
Ties among items of equal value go to the lowest index.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Sequence

import torch
from torch import Tensor

from mechanisms.base import Mechanism
from baselines.posted_price import best_items, check_prices
from mechanisms.demand import Demand, KSpec

__all__ = ["MAX_OUTCOMES", "PayToChoose", "lottery_outcomes"]

MAX_OUTCOMES = 4096
"""Most lottery realizations :class:`PayToChoose` enumerates (the batch is expanded by this factor)."""


def lottery_outcomes(capacities: Sequence[int], n_items: int) -> int:
    """Realizations of the earlier bidders' lotteries the last bidder can face: ``prod_{i < n-1} C(r_i, k_i)``."""
    outcomes, left = 1, n_items
    for k in capacities[:-1]:
        outcomes *= math.comb(left, k)
        left -= k
    return outcomes


@lru_cache(maxsize=None)
def _subsets(left: int, k: int) -> tuple[tuple[int, ...], ...]:
    return tuple(itertools.combinations(range(left), k))


class PayToChoose(Mechanism):
    """Pay-to-choose for exactly-k demand, one price per bidder (see the module docstring)."""

    def __init__(self, n_agents: int, n_items: int, prices: Sequence[float], demand: str | Demand = "exactly_k",
                 k: KSpec = 1) -> None:
        super().__init__(n_agents, n_items, demand, k)
        if not self.demand.fixed_totals(n_agents, n_items):
            raise ValueError(f"pay_to_choose is for demand that fixes every bidder's total (exactly_k), "
                             f"got {self.demand.description}: use posted_price")
        outcomes = lottery_outcomes(self.capacities, n_items)
        if outcomes > MAX_OUTCOMES:
            raise ValueError(f"pay_to_choose would enumerate {outcomes} lottery outcomes here; at most {MAX_OUTCOMES}")
        self.prices = check_prices(prices, n_agents, "pay_to_choose")
        self.name = "pay to choose (else a free lottery) at " + ", ".join(f"{p:.4f}" for p in self.prices)

    @staticmethod
    def applies(demand: Demand, n_agents: int, n_items: int) -> bool:
        """Whether the setting allows pay-to-choose: every bidder takes exactly its capacity, and the lotteries
        have at most :data:`MAX_OUTCOMES` outcomes."""
        return (demand.fixed_totals(n_agents, n_items)
                and lottery_outcomes(demand.capacities(n_agents, n_items), n_items) <= MAX_OUTCOMES)

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Expected allocation ``(batch, agents, items)`` and payment ``(batch, agents)``; neither requires grad."""
        bids = bids.detach()
        batch, m = bids.shape[0], self.n_items
        remaining = torch.ones(batch, 1, m, dtype=torch.bool, device=bids.device)  # (batch, outcomes, items)
        allocation = torch.zeros_like(bids)
        payment = bids.new_zeros(batch, self.n_agents)
        left = m
        for i, (price, k) in enumerate(zip(self.prices, self.capacities)):
            values = bids[:, i].unsqueeze(1)  # (batch, 1, items)
            masked = values.masked_fill(~remaining, -math.inf)
            best = best_items(masked, k)  # (batch, outcomes, k)
            chosen_value = masked.gather(-1, best).sum(-1)
            lottery_value = (k / left) * torch.where(remaining, values, 0.0).sum(-1)
            choose = chosen_value - price > lottery_value  # (batch, outcomes)
            chosen = torch.zeros_like(remaining).scatter(-1, best, True)
            share = torch.where(choose.unsqueeze(-1), chosen.to(bids.dtype), (k / left) * remaining.to(bids.dtype))
            allocation[:, i] = share.mean(1)
            payment[:, i] = price * choose.to(bids.dtype).mean(1)
            if i + 1 < self.n_agents:
                remaining = self._next_remaining(remaining, choose, best, left, k)
                left -= k
        return allocation, payment

    @staticmethod
    def _next_remaining(remaining: Tensor, choose: Tensor, best: Tensor, left: int, k: int) -> Tensor:
        """Items left ``(batch, outcomes * C(left, k), items)`` after the bidder, for every lottery subset.

        A bidder who chose removes ``best`` ``(batch, outcomes, k)`` in every child outcome (all equally likely).
        """
        batch, outcomes, m = remaining.shape
        positions = (~remaining).to(torch.int8).sort(dim=-1, stable=True).indices[..., :left]  # items left, in order
        subsets = torch.tensor(_subsets(left, k), device=remaining.device)  # (C, k)
        drawn = positions[..., subsets]  # (batch, outcomes, C, k)
        removed = torch.where(choose[..., None, None], best.unsqueeze(2), drawn)
        children = remaining.unsqueeze(2).expand(batch, outcomes, len(subsets), m)
        return children.scatter(-1, removed, False).reshape(batch, -1, m)
