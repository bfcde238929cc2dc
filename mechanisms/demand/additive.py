"""additive: no limit per agent, every item is sold on its own (``k`` is ignored)."""

from __future__ import annotations

from dataclasses import dataclass

from mechanisms.demand.base import SoftmaxHead
from mechanisms.demand.k_demand import KDemand

__all__ = ["Additive"]


@dataclass(frozen=True)
class Additive(KDemand):
    """Up to every item for every agent: :class:`~mechanisms.demand.k_demand.KDemand` with ``k_i = m``;
    Sinkhorn marginals ``a = (m, ..., m, m)``, ``b = (1, ..., 1, n m)``."""

    name = "additive"

    @property
    def description(self) -> str:
        return "additive demand"

    def limits(self, n_agents: int, n_items: int) -> list[int]:
        return [n_items] * n_agents

    def softmax_head(self, n_agents: int, n_items: int) -> SoftmaxHead:
        """Always the per-item softmax (also for one item, where the unit head would do as well)."""
        self.capacities(n_agents, n_items)
        return "additive"
