"""unit: each agent receives at most one item (``k`` is ignored)."""

from __future__ import annotations

from dataclasses import dataclass

from mechanisms.demand.k_demand import KDemand

__all__ = ["Unit"]


@dataclass(frozen=True)
class Unit(KDemand):
    """At most one item per agent: :class:`~mechanisms.demand.k_demand.KDemand` with every ``k_i = 1``;
    Sinkhorn marginals ``a = (1, ..., 1, m)``, ``b = (1, ..., 1, n)``."""

    name = "unit"

    @property
    def description(self) -> str:
        return "unit demand"

    def limits(self, n_agents: int, n_items: int) -> list[int]:
        return [1] * n_agents
