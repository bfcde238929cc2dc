"""A test-only demand type, the worked example of docs/extending.md ("A new demand type").

``at_least_one``: at most ``k_i`` items for bidder ``i`` and at least one item
sold in all; one bidder with ``k = 2`` takes one or two items.  Its YAML is
``tests/conf/demand/at_least_one.yaml``; ``tests/test_toy_demand.py`` trains
a Sinkhorn auction on it and checks it against its definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from mechanisms.demand import Demand, per_agent


@dataclass(frozen=True)
class AtLeastOne(Demand):
    """At most ``k_i`` items for bidder ``i`` (``k`` an int or one per bidder), at least one item sold."""

    name = "at_least_one"

    def limits(self, n_agents: int, n_items: int) -> list[int]:
        return per_agent(self.k, n_agents)

    def disposal(self, capacities: Sequence[int]) -> int:
        return sum(capacities) - 1  # every capacity slot but one may stay empty
