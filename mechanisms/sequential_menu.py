"""Sequential menus for exactly-one demand: each bidder in turn picks from a learned menu of lotteries over the ranks
of the items still left.  Truthful and individually rational for every value of the parameters
(docs/sequential_menu.md).

Bidder ``i`` (order ``0, 1, ..., n - 1``) faces the ``r = items - i`` items the earlier bidders left.  Entry ``k`` of
its menu is a lottery over ranks, a mixture ``w_k`` of "uniform over your top ``l``" (``l = 1..r``, so the rank
probabilities do not increase), at price ``c_k``; entry 0 is the free uniform lottery.  With reported values ``b``
its value is ``f_k(b) = sum_l w_kl mean_top_l(b)``, convex in ``b``.  With the potential
``u(b) = T logsumexp((f(b) - c) / T)``, the bidder's allocation is ``x = grad u`` (the softmax's mix of rank
lotteries, placed by the reported ranking), its utility ``u(b) - u(0)`` and its payment ``b . x - u(b) + u(0)``
(>= 0, as ``u`` is convex).  Pay-to-choose is the menu {best item at ``p_i``, free}.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from mechanisms.base import Mechanism
from mechanisms.demand import Demand, KSpec
from utils.checks import check_positive_int

__all__ = ["MAX_OUTCOMES", "SequentialMenu"]

MAX_OUTCOMES = 4096
"""Most remaining-item sets the last bidder can face (the batch is expanded by this factor)."""


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class SequentialMenu(Mechanism):
    """Sequential menus over item ranks: bids ``(batch, agents, items)`` -> expected allocation
    ``(batch, agents, items)`` and payment ``(batch, agents)`` (see the module docstring).

    ``options`` learned entries per bidder start as "uniform over your top ``l``" for ``l`` spread over ``1..r``;
    the ``l = 1`` entry (the best item) at ``prices[i]`` (a number: every bidder's; pay_to_choose's fitted prices
    are a good start), the others at a price falling linearly to 0 at ``l = r``, plus ``margin``.  ``temperature``
    (learned) is the choice's softness in value units: it costs at most ``T log(options + 1)`` of revenue per bidder.
    ``jitter``: the standard deviation of normal noise on the starting logits (seeded runs start apart).
    """

    def __init__(self, n_agents: int, n_items: int, demand: str | Demand = "exactly_k", k: KSpec = 1,
                 options: int = 8, prices: float | Sequence[float] = 0.25, temperature: float = 0.001,
                 margin: float = 0.02, spread: float = 6.0, jitter: float = 0.1) -> None:
        super().__init__(n_agents, n_items, demand, k)
        if not self.demand.fixed_totals(n_agents, n_items) or set(self.capacities) != {1}:
            raise ValueError(f"sequential_menu is for exactly-one demand (demand=exactly_k, k=1), got "
                             f"{self.demand.description}: use sinkhorn_potential or lottery_ama")
        outcomes = math.prod(range(n_items - n_agents + 2, n_items + 1))  # items left for the last bidder
        if outcomes > MAX_OUTCOMES:
            raise ValueError(f"sequential_menu would enumerate {outcomes} remaining-item sets for the last bidder; "
                             f"at most {MAX_OUTCOMES}: use fewer bidders")
        check_positive_int(options, "options")
        start = [prices] * n_agents if isinstance(prices, (int, float)) else list(prices)
        if len(start) != n_agents or not all(_finite(p) for p in start):
            raise ValueError(f"sequential_menu: prices must be a number or {n_agents} finite numbers (one per "
                             f"bidder), got {prices!r}")
        if not (_finite(temperature) and temperature > 0 and _finite(margin) and _finite(spread) and spread >= 0
                and _finite(jitter) and jitter >= 0):
            raise ValueError(f"sequential_menu: temperature must be > 0, margin finite, spread and jitter >= 0, got "
                             f"{temperature!r}, {margin!r}, {spread!r}, {jitter!r}")
        logits = torch.full((n_agents, options, n_items), -spread)
        price = torch.empty(n_agents, options)
        for i, p in enumerate(start):
            r = n_items - i
            for entry in range(options):
                top = 1 + round((r - 1) * entry / options)  # top-l lottery, l = 1 .. r
                logits[i, entry, top - 1] = 0.0
                price[i, entry] = p * (r - top) / max(r - 1, 1) + (margin if entry else 0.0)
        # (agents, options, items): bidder i uses its first items - i
        self.rank_logits = nn.Parameter(logits + jitter * torch.randn(logits.shape))
        self.prices = nn.Parameter(price)  # (agents, options)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))

    def mixtures(self, agent: int) -> tuple[Tensor, Tensor]:
        """Bidder ``agent``'s menu with the free entry first: mixture weights over "uniform over the top ``l``"
        ``(options + 1, r)`` and prices ``(options + 1,)``."""
        r = self.n_items - agent
        weights = torch.softmax(self.rank_logits[agent, :, :r], -1)
        free = torch.zeros_like(weights[:1]).index_fill_(1, torch.tensor([r - 1], device=weights.device), 1.0)
        return torch.cat([free, weights]), torch.cat([self.prices.new_zeros(1), self.prices[agent]])

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Expected allocation ``(batch, agents, items)`` and payment ``(batch, agents)``: every set of items the
        earlier bidders can leave is enumerated, weighted by its probability."""
        batch, m = bids.shape[0], self.n_items
        remaining = torch.ones(batch, 1, m, dtype=torch.bool, device=bids.device)  # (batch, sets, items)
        chance = bids.new_ones(batch, 1)  # (batch, sets): probability of each remaining set
        allocations, payments = [], []
        for i in range(self.n_agents):
            share, paid = self._choose(i, bids[:, i], remaining)  # (batch, sets, items), (batch, sets)
            allocations.append((chance.unsqueeze(-1) * share).sum(1))
            payments.append((chance * paid).sum(1))
            if i + 1 < self.n_agents:  # one child set per item left, without it
                left = m - i
                # (batch, sets, r): the items left, in index order
                positions = (~remaining).to(torch.int8).sort(dim=-1, stable=True).indices[..., :left]
                chance = (chance.unsqueeze(-1) * share.gather(-1, positions)).flatten(1)
                children = remaining.unsqueeze(2).expand(batch, remaining.shape[1], left, m)
                remaining = children.scatter(-1, positions.unsqueeze(-1), False).flatten(1, 2)
        return torch.stack(allocations, 1), torch.stack(payments, 1)

    def _choose(self, agent: int, bids: Tensor, remaining: Tensor) -> tuple[Tensor, Tensor]:
        """Bidder ``agent`` with bids ``(batch, items)`` facing each set ``remaining`` ``(batch, sets, items)``: its
        allocation ``(batch, sets, items)`` and payment ``(batch, sets)``."""
        weights, prices = self.mixtures(agent)  # (E, r), (E,)
        r = weights.shape[1]
        sizes = torch.arange(1, r + 1, dtype=bids.dtype, device=bids.device)
        ranked, order = bids.unsqueeze(1).masked_fill(~remaining, -math.inf).sort(dim=-1, descending=True, stable=True)
        top_means = ranked[..., :r].cumsum(-1) / sizes  # (batch, sets, r): mean of the top l
        scores = (top_means @ weights.T.to(bids.dtype) - prices.to(bids.dtype)) / self.log_temperature.exp()
        choice = torch.softmax(scores, -1)  # (batch, sets, E)
        # rank probabilities q_k = sum_{l >= rank} w_kl / l, mixed by the choice, placed on the items by rank
        rank_chance = choice @ (weights / sizes.to(weights.dtype)).flip(-1).cumsum(-1).flip(-1).to(bids.dtype)
        share = torch.zeros_like(ranked).scatter(-1, order[..., :r], rank_chance)
        # u(b) - u(0) with u(b) = T logsumexp((f(b) - c) / T): 0 at b = 0, so payments >= 0 (u is convex)
        temperature = self.log_temperature.exp()
        at_zero = torch.logsumexp(-prices.to(bids.dtype) / temperature, -1)
        utility = temperature * (torch.logsumexp(scores, -1) - at_zero)
        return share, (bids.unsqueeze(1) * share).sum(-1) - utility

    def extra_repr(self) -> str:
        return (f"agents={self.n_agents}, items={self.n_items}, options={self.prices.shape[1]}, "
                f"temperature={self.log_temperature.exp().item():.4g}")
