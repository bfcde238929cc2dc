"""exactly_k: each agent receives exactly ``k_i`` items (no free disposal); needs ``items >= sum_i k_i``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from torch import Tensor

from mechanisms.demand.base import Demand, per_agent

__all__ = ["ExactlyK"]


@dataclass(frozen=True)
class ExactlyK(Demand):
    """Exactly ``k_i`` items for agent ``i`` (``k`` an int or one per agent); Sinkhorn marginals
    ``a = (k_1, ..., k_n, m - sum_i k_i)``, ``b = (1, ..., 1, 0)``: the dummy item takes nothing."""

    name = "exactly_k"
    exact = True

    def limits(self, n_agents: int, n_items: int) -> list[int]:
        ks = per_agent(self.k, n_agents)
        if sum(ks) > n_items:
            raise ValueError(f"exactly_k needs items >= sum(k): {n_agents} agents with k={self.k} need {sum(ks)} "
                             f"items, got {n_items}")
        return ks

    def disposal(self, capacities: Sequence[int]) -> int:
        return 0

    def _total_violation(self, totals: Tensor, capacities: list[int]) -> Tensor:
        """The largest distance of an agent's total from its ``k_i``."""
        return (totals - totals.new_tensor(capacities)).abs().amax(-1)
