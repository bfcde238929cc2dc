"""Exact VCG by enumeration, vectorized over the batch, for small settings with free disposal.

An optimal allocation gives agent ``i`` only items among its ``S`` most
valued ones (``S = sum_j k_j``, the total capacity): an item outside them can
be swapped for one of its top ``S`` that nobody holds (at most ``S - 1`` of
them are held), without loss.  So every optimum lives on the ``c = min(m, n S)``
items ranked best by some agent (:func:`candidate_items`), and the welfare
maximization is a maximum over every feasible owner map of those ``c`` items
(:func:`owner_maps`): one matrix product ``(batch, (n + 1) c) @ ((n + 1) c, maps)``.
The same table gives the welfare without agent ``i`` (the maps that give it
nothing), hence Clarke payments.  Ties go to the first map in enumeration
order, which keeps items unsold first.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["MAX_MAPS", "enumerated_vcg", "owner_maps"]

MAX_MAPS = 4096
"""Most feasible owner maps :func:`owner_maps` enumerates (else ``None``: use the assignment solver)."""


@lru_cache(maxsize=None)
def owner_maps(capacities: tuple[int, ...], n_items: int) -> tuple[tuple[int, ...], ...] | None:
    """Every map item -> owner (``-1``: unsold) of the candidate items within ``capacities``; ``None`` if more than :data:`MAX_MAPS`."""
    candidates = min(n_items, len(capacities) * sum(capacities))
    maps: list[tuple[int, ...]] = []

    def extend(prefix: tuple[int, ...], counts: list[int]) -> bool:
        if len(prefix) == candidates:
            maps.append(prefix)
            return len(maps) <= MAX_MAPS
        for owner in (-1, *range(len(capacities))):
            if owner >= 0 and counts[owner] == capacities[owner]:
                continue
            if owner >= 0:
                counts[owner] += 1
            ok = extend(prefix + (owner,), counts)
            if owner >= 0:
                counts[owner] -= 1
            if not ok:
                return False
        return True

    return tuple(maps) if extend((), [0] * len(capacities)) else None


def candidate_items(values: Tensor, capacities: Sequence[int], count: int) -> Tensor:
    """Indices ``(batch, count)`` of items ranked in the top ``sum(capacities)`` by some agent (padded with others).

    ``values`` is ``(batch, agents, items)``; items are ordered by their best rank over the agents (ties: lowest index).
    """
    rank = values.sort(dim=-1, descending=True, stable=True).indices.argsort(dim=-1)  # (batch, agents, items)
    best_rank = rank.to(torch.int32).amin(1)  # (batch, items); int32: int64 amin over a middle dim is slow on CPU
    return best_rank.sort(dim=-1, stable=True).indices[:, :count]


def enumerated_vcg(values: Tensor, capacities: Sequence[int], maps: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """VCG allocation ``(batch, agents, items)`` and Clarke payments ``(batch, agents)`` of ``values`` (free disposal).

    ``maps`` is :func:`owner_maps` of ``capacities`` and the item count (not ``None``).
    """
    batch, n, m = values.shape
    table = torch.tensor(maps, device=values.device)  # (M, c)
    c = table.shape[1]
    items = candidate_items(values, capacities, c)  # (batch, c)
    candidate_values = values.gather(-1, items.unsqueeze(1).expand(batch, n, c))  # (batch, n, c)
    owns = (table.unsqueeze(1) == torch.arange(n, device=values.device).view(1, n, 1)).to(values.dtype)  # (M, n, c)
    welfare = candidate_values.reshape(batch, n * c) @ owns.reshape(len(table), n * c).T  # (batch, M)
    best = welfare.argmax(-1)  # first maximal map
    total = welfare.gather(-1, best.unsqueeze(-1)).squeeze(-1)  # (batch,)
    candidate_allocation = owns[best]  # (batch, n, c)
    allocation = torch.zeros_like(values).scatter(-1, items.unsqueeze(1).expand(batch, n, c), candidate_allocation)
    own = (candidate_allocation * candidate_values).sum(-1)  # (batch, n)
    gets_nothing = owns.sum(-1) == 0  # (M, n)
    without = welfare.unsqueeze(1).masked_fill(~gets_nothing.T.unsqueeze(0), -torch.inf).amax(-1)  # (batch, n)
    payment = without - (total.unsqueeze(-1) - own)
    return allocation, payment
