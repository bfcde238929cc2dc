"""The setting of an auction: who bids on what, with what demand, and where the values come from.

It lives here, below both :mod:`baselines` and :mod:`adversary` (it needs only :mod:`mechanisms.demand` and the
distribution), so that everything that takes a setting can import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from distributions.base import ValuationDistribution
from distributions.config import distribution_of
from distributions.uniform import Bound, Uniform
from mechanisms.demand import Demand
from utils.checks import check_int

__all__ = ["Setting"]


@dataclass(frozen=True)
class Setting:
    """``agents`` bidders, ``items`` items, each bidder's ``demand``, values drawn from ``distribution``; hashable
    and compared by value (the baselines' fits are cached on them).  A one-line ``ValueError`` refuses a demand or
    distribution that does not fit ``agents`` x ``items``."""

    agents: int
    items: int
    demand: Demand
    distribution: ValuationDistribution

    def __post_init__(self) -> None:
        check_int(self.agents, "agents (bidders)")
        check_int(self.items, "items")
        if not isinstance(self.demand, Demand):
            raise ValueError(f"Setting.demand must be a Demand, e.g. Demand('unit'), got {self.demand!r}")
        self.demand.capacities(self.agents, self.items)  # validates the demand for the setting
        self.distribution.check_setting(self.agents, self.items)

    @classmethod
    def uniform(cls, agents: int, items: int, demand: Demand | str = "unit", low: Bound = 0.0,
                high: Bound = 1.0) -> Setting:
        """Values i.i.d. ``U[low, high]`` (bounds shared, per agent, or per agent and item); ``demand`` or its name."""
        demand = demand if isinstance(demand, Demand) else Demand(demand)
        return cls(agents, items, demand, Uniform(agents, items, low, high))

    @classmethod
    def of(cls, mechanism: nn.Module, distribution: ValuationDistribution | None = None) -> Setting:
        """The setting of ``mechanism`` (agents, items, demand), values from ``distribution`` (or U[0, 1])."""
        agents, items = mechanism.n_agents, mechanism.n_items
        return cls(agents, items, mechanism.demand, distribution or Uniform(agents, items))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Setting:
        """The setting of a resolved run configuration (``agents``, ``items``, ``demand``, its distribution)."""
        demand = Demand(config["demand"]["name"], config["demand"].get("k", 1))
        return cls(int(config["agents"]), int(config["items"]), demand, distribution_of(config))

    @property
    def description(self) -> str:
        """E.g. ``2 bidder(s) x 3 item(s), unit demand``."""
        return f"{self.agents} bidder(s) x {self.items} item(s), {self.demand.description}"

    def domain(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """The report domain ``(low, high)``, each ``(agents, items)`` float64, on ``device``."""
        low, high = self.distribution.support
        return low.to(device), high.to(device)

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
        """``n`` valuation profiles ``(n, agents, items)`` (:meth:`ValuationDistribution.sample`)."""
        return self.distribution.sample(n, generator, device, dtype)
