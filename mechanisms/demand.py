"""Bidder demand types and the Sinkhorn marginals that encode them (section 4.1).

Row ``n`` of the transport problem is the dummy agent ("allocated to nobody"),
column ``m`` the dummy item ("receives nothing"):

=============  =========  ===============  =======  ===============
demand         a_i        a_dummy          b_j      b_dummy
=============  =========  ===============  =======  ===============
additive       m          m                1        n * m
unit           1          m                1        n
k_demand       k_i        m                1        sum_i k_i
exactly_k      k_i        m - sum_i k_i    1        0
=============  =========  ===============  =======  ===============

``additive`` is ``k_demand`` with ``k = m`` (no per-agent limit) and ``unit``
is ``k_demand`` with ``k = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch
from torch import Tensor
from mechanisms.checks import check_positive_int, is_int

__all__ = ["DEMAND_TYPES", "Demand", "marginals"]

DEMAND_TYPES = ("additive", "unit", "k_demand", "exactly_k")

KSpec = Union[int, Sequence[int]]


@dataclass(frozen=True)
class Demand:
    """A demand type, e.g. ``Demand("exactly_k", k=1)`` or ``Demand("k_demand", k=[1, 2])``.

    ``k`` is ignored by ``additive`` and ``unit``; it is an int or one int per agent.
    """

    name: str
    k: KSpec = 1

    def __post_init__(self) -> None:
        if self.name not in DEMAND_TYPES:
            raise ValueError(f"unknown demand {self.name!r}; valid demand types: {', '.join(DEMAND_TYPES)}")
        ks = list(self.k) if isinstance(self.k, Sequence) and not isinstance(self.k, str) else [self.k]
        if not ks or not all(is_int(k) for k in ks):
            raise ValueError(f"k must be a positive integer or a list of them, got {self.k!r}")
        if not isinstance(self.k, int):
            object.__setattr__(self, "k", tuple(ks))

    @property
    def exact(self) -> bool:
        """True when every agent must receive exactly its k items (no free disposal)."""
        return self.name == "exactly_k"

    def capacities(self, n_agents: int, n_items: int) -> list[int]:
        """Items each agent may (or, for exactly_k, must) receive: one int per agent."""
        _check_sizes(n_agents, n_items)
        if self.name == "additive":
            return [n_items] * n_agents
        if self.name == "unit":
            return [1] * n_agents
        if isinstance(self.k, int):
            ks = [self.k] * n_agents
        else:
            ks = list(self.k)
            if len(ks) != n_agents:
                raise ValueError(f"k has {len(ks)} entries but there are {n_agents} agents")
        if self.exact and sum(ks) > n_items:
            raise ValueError(
                f"exactly_k needs items >= sum(k): {n_agents} agents with k={self.k} need "
                f"{sum(ks)} items, got {n_items}"
            )
        return ks

    def marginals(
        self,
        n_agents: int,
        n_items: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Row marginals ``a`` ``(n_agents + 1,)`` and column marginals ``b`` ``(n_items + 1,)``."""
        ks = self.capacities(n_agents, n_items)
        dummy_agent = n_items - sum(ks) if self.exact else n_items
        dummy_item = 0 if self.exact else sum(ks)
        a = torch.tensor([*ks, dummy_agent], dtype=dtype, device=device)
        b = torch.tensor([1] * n_items + [dummy_item], dtype=dtype, device=device)
        return a, b

    def violation(self, allocation: Tensor) -> Tensor:
        """Largest constraint violation ``(batch,)`` of an allocation ``(batch, agents, items)``.

        The maximum over ``x < 0``, ``x > 1``, item totals above 1 and agent totals
        above ``k`` (for exactly_k: away from ``k``); 0 when the allocation is feasible.
        """
        if not isinstance(allocation, Tensor) or allocation.dim() != 3 or not allocation.is_floating_point():
            shape = tuple(allocation.shape) if isinstance(allocation, Tensor) else type(allocation).__name__
            raise ValueError(f"allocation must be a floating-point (batch, agents, items) tensor, got {shape}")
        if not bool(torch.isfinite(allocation).all()):
            raise ValueError("allocation contains NaN or Inf")
        _, n_agents, n_items = allocation.shape
        ks = torch.tensor(self.capacities(n_agents, n_items), dtype=allocation.dtype, device=allocation.device)
        excess = allocation.sum(-1) - ks  # (batch, agents)
        terms = (
            (-allocation).amax((1, 2)),
            (allocation - 1).amax((1, 2)),
            (allocation.sum(1) - 1).amax(-1),
            (excess.abs() if self.exact else excess).amax(-1),
        )
        worst = torch.stack(terms, -1).amax(-1)
        return torch.where(worst > 0, worst, 0.0)  # not clamp_min: it keeps -0.0


def _check_sizes(n_agents: int, n_items: int) -> None:
    for name, value in (("agents", n_agents), ("items", n_items)):
        check_positive_int(value, name)


def marginals(
    demand: str,
    n_agents: int,
    n_items: int,
    k: KSpec = 1,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Sinkhorn marginals ``(a, b)`` of shapes ``(n_agents + 1,)``, ``(n_items + 1,)`` for a demand type."""
    return Demand(demand, k).marginals(n_agents, n_items, dtype=dtype, device=device)
