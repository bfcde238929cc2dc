"""Brute-force references for the baseline tests: exhaustive allocations and misreport grids."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from mechanisms.base import utility


def best_welfare(
    values: list[list[float]], agents: list[int], capacities: list[int], exact: bool, minimum_sold: int = 0
) -> tuple[float, list]:
    """Max welfare and the optimal owner tuples, enumerating every item -> (agent or nobody) map.

    Only ``agents`` take part; agent ``i`` gets at most (``exact``: exactly) ``capacities[i]`` items,
    and at least ``minimum_sold`` items go to some agent.
    """
    n_items = len(values[0])
    best, argmax = float("-inf"), []
    for owners in itertools.product([None, *agents], repeat=n_items):
        counts = [owners.count(i) for i in agents]
        caps = [capacities[i] for i in agents]
        if any(c > k for c, k in zip(counts, caps)) or (exact and counts != caps) or sum(counts) < minimum_sold:
            continue
        welfare = sum(values[i][j] for j, i in enumerate(owners) if i is not None)
        if welfare > best + 1e-12:
            best, argmax = welfare, [owners]
        elif abs(welfare - best) <= 1e-12:
            argmax.append(owners)
    return best, argmax


def owners_allocation(owners: tuple[int | None, ...], n_agents: int) -> Tensor:
    """The 0/1 allocation ``(n_agents, items)`` (float64) of an owner tuple: item ``j`` to agent ``owners[j]``, ``None``: unsold."""
    allocation = torch.zeros(n_agents, len(owners), dtype=torch.float64)
    for j, i in enumerate(owners):
        if i is not None:
            allocation[i, j] = 1.0
    return allocation


def clarke_payments(
    values: list[list[float]], allocation: Tensor, capacities: list[int], exact: bool, minimum_sold: int = 0
) -> list[float]:
    """Clarke payments by definition, given the chosen allocation ``(agents, items)``: the others' best welfare
    without agent ``i`` (:func:`best_welfare` on them, same rules) minus their welfare in ``allocation``."""
    n_agents = len(values)
    own = [sum(v * a for v, a in zip(values[i], allocation[i].tolist())) for i in range(n_agents)]
    total = sum(own)
    payments = []
    for i in range(n_agents):
        others = [j for j in range(n_agents) if j != i]
        without_i = best_welfare(values, others, capacities, exact, minimum_sold)[0] if others else 0.0
        payments.append(without_i - (total - own[i]))
    return payments


def grid_regret(mechanism: nn.Module, valuations: Tensor, grid: Tensor) -> Tensor:
    """Best utility gain ``(profiles, agents)`` of any single-agent misreport in ``grid^items``.

    ``valuations`` is ``(profiles, agents, items)``; every agent in turn reports
    each point of the grid while the others report truthfully.
    """
    n_profiles, n_agents, n_items = valuations.shape
    reports = torch.cartesian_prod(*[grid] * n_items).reshape(-1, n_items).to(valuations.dtype)  # (G, items)
    truthful = utility(valuations, *mechanism(valuations))  # (profiles, agents)
    gains = torch.empty(n_profiles, n_agents, dtype=valuations.dtype)
    for i in range(n_agents):
        bids = valuations.unsqueeze(1).repeat(1, len(reports), 1, 1)  # (profiles, G, agents, items)
        bids[:, :, i] = reports
        allocation, payment = mechanism(bids.reshape(-1, n_agents, n_items))
        truth = valuations.unsqueeze(1).expand_as(bids).reshape(-1, n_agents, n_items)
        u = utility(truth, allocation, payment)[:, i].reshape(n_profiles, len(reports))
        gains[:, i] = u.max(dim=1).values - truthful[:, i]
    return gains
