"""k_demand: each agent receives at most ``k_i`` items; any of them may stay empty (free disposal)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from mechanisms.demand.base import Demand, per_agent

__all__ = ["KDemand"]


@dataclass(frozen=True)
class KDemand(Demand):
    """At most ``k_i`` items for agent ``i`` (``k`` an int or one per agent); Sinkhorn marginals
    ``a = (k_1, ..., k_n, m)``, ``b = (1, ..., 1, sum_i k_i)``."""

    name = "k_demand"

    def limits(self, n_agents: int, n_items: int) -> list[int]:
        return per_agent(self.k, n_agents)

    def disposal(self, capacities: Sequence[int]) -> int:
        return sum(capacities)
