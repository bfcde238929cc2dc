"""Prepared calls: a mechanism bound to a batch of truthful profiles, for engines that score deviations from them.

:class:`PreparedCall` makes plain calls of any forward; a mechanism's ``prepare(valuations, solver=None)`` returns a
subclass that does the work depending only on its parameters or the other (truthful) rows once (docs/mechanisms.md).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

__all__ = ["Forward", "PlainCalls", "PreparedCall", "agent_profiles", "deviation_profiles", "own_entries"]

Forward = Callable[[Tensor], tuple[Tensor, Tensor]]
"""A mechanism call: bids ``(batch, agents, items)`` -> ``(allocation, payment)``."""


def deviation_profiles(valuations: Tensor, rows: Tensor) -> Tensor:
    """Profiles ``(starts * agents * batch, agents, items)``: ``valuations`` ``(batch, agents, items)`` with agent
    ``i``'s row replaced by ``rows[s, i, b]`` (``rows`` ``(starts, agents, batch, items)``), batch innermost (so a
    profile keeps its position modulo the batch: the member layout of :mod:`mechanisms.ensemble`)."""
    starts, n, batch, m = rows.shape
    own = torch.eye(n, dtype=torch.bool, device=rows.device).view(1, n, 1, n, 1)
    profiles = torch.where(own, rows.unsqueeze(3), valuations.view(1, 1, batch, n, m))  # (S, n, B, n, m)
    return profiles.reshape(starts * n * batch, n, m)


def own_entries(x: Tensor, starts: int, agents: int, batch: int) -> Tensor:
    """The deviator's entries ``(starts, agents, batch, ...)`` of a per-agent output ``x``
    ``(starts * agents * batch, agents, ...)`` on :func:`deviation_profiles` (a view)."""
    return x.view(starts, agents, batch, agents, *x.shape[2:]).diagonal(dim1=1, dim2=3).movedim(-1, 1)


def agent_profiles(valuations: Tensor, agent: int, sources: Tensor, reports: Tensor) -> Tensor:
    """Profiles ``(P, agents, items)``: ``valuations[sources]`` (``sources`` ``(P,)``) with ``agent``'s row
    replaced by ``reports`` ``(P, items)``."""
    profiles = valuations[sources].clone()
    profiles[:, agent] = reports
    return profiles


class PreparedCall:
    """Plain calls of ``forward`` bound to truthful ``valuations`` ``(batch, agents, items)``; subclasses (a
    mechanism's ``prepare``) override the calls with the same shapes and meaning."""

    def __init__(self, forward: Forward, valuations: Tensor) -> None:
        self.forward, self.valuations = forward, valuations

    def truthful(self) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, items)`` and payment ``(batch, agents)`` of the valuations."""
        return self.forward(self.valuations)

    def deviations(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """Agent ``i``'s allocation ``(starts, agents, batch, items)`` and payment ``(starts, agents, batch)`` when
        it alone reports ``rows[s, i, b]`` in profile ``b`` (``rows`` ``(starts, agents, batch, items)``):
        one call on :func:`deviation_profiles`."""
        starts, n, batch, _ = rows.shape
        allocation, payment = self.forward(deviation_profiles(self.valuations, rows))
        return own_entries(allocation, starts, n, batch), own_entries(payment, starts, n, batch)

    def utilities(self, rows: Tensor) -> Tensor:
        """Agent ``i``'s true utility ``(starts, batch, agents)`` when it alone reports ``rows[s, i, b]``."""
        own_allocation, own_payment = self.deviations(rows)  # (S, n, B, m), (S, n, B)
        return (own_allocation.movedim(1, -1) * self.valuations.transpose(1, 2)).sum(2) - own_payment.movedim(1, -1)

    def deviate(self, agent: int, sources: Tensor, reports: Tensor) -> tuple[Tensor, Tensor]:
        """``agent``'s allocation ``(P, items)`` and payment ``(P,)`` when it alone reports ``reports[p]``
        ``(P, items)`` in profile ``sources[p]`` ``(P,)``: one call on :func:`agent_profiles`."""
        allocation, payment = self.forward(agent_profiles(self.valuations, agent, sources, reports))
        return allocation[:, agent], payment[:, agent]


class PlainCalls(nn.Module):
    """``mechanism`` without its ``prepare`` (plain calls), for comparisons; its ``n_agents``, ``n_items``,
    ``demand``."""

    def __init__(self, mechanism: nn.Module) -> None:
        super().__init__()
        self.mechanism = mechanism
        for name in ("n_agents", "n_items", "demand"):
            if hasattr(mechanism, name):
                setattr(self, name, getattr(mechanism, name))

    def forward(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        return self.mechanism(bids)
