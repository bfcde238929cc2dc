"""Correlated values: each bidder's two item values uniform on the triangle ``v1, v2 >= 0, v1 + v2 <= size``.

Dütting et al.'s RegretNet/RochetNet benchmark additive_1x2_uniform_triangle (github.com/saisrivatsan/
deep-opt-auctions; its notebook ``rochetNet/visualize_additive_1x2_uniform_triangle.ipynb`` draws the optimum's only
boundary, ``v1 + v2 = sqrt(1/3)``).  The optimal mechanism (Haghpanah and Hartline, "When is pure bundling
optimal?") sells the grand bundle at ``p = size / sqrt(3)``: ``v1 + v2`` has density ``2 s / size^2``, so the
revenue ``p (1 - p^2 / size^2)`` peaks there at ``2 size / (3 sqrt 3) = 0.3849 size`` (tests/test_distributions.py
checks it with Rochet's linear program).  A point is two U[0, 1] numbers, reflected through ``(1/2, 1/2)`` when
their sum exceeds 1, times ``size``; the report domain is the box ``[0, size]^2``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from distributions.base import Support, ValuationDistribution, unit_uniform
from mechanisms.base import Mechanism
from mechanisms.demand import Demand
from mechanisms.menu import MenuMechanism

__all__ = ["Triangle", "triangle_bundle_revenue"]


def triangle_bundle_revenue(size: float = 1.0) -> float:
    """Revenue ``2 size / (3 sqrt 3)`` of the grand bundle at ``size / sqrt 3`` for values uniform on the triangle."""
    return 2.0 * size / (3.0 * math.sqrt(3.0))


class Triangle(ValuationDistribution):
    """Every bidder's ``(v1, v2)`` uniform on ``{v >= 0, v1 + v2 <= size}``, independently across bidders."""

    name = "triangle"

    def __init__(self, n_agents: int, n_items: int = 2, size: float = 1.0) -> None:
        super().__init__(n_agents, n_items)
        if n_items != 2:
            raise ValueError(f"the triangle distribution is over two items: set items=2, got {n_items}")
        if not (isinstance(size, (int, float)) and math.isfinite(size) and size > 0):
            raise ValueError(f"triangle size (the largest value) must be a positive finite number, got {size!r}")
        self.size = float(size)

    def parameters(self) -> dict[str, Any]:
        return {"size": self.size}

    @property
    def support(self) -> Support:
        shape = (self.n_agents, 2)
        return Support(torch.zeros(shape, dtype=torch.float64), torch.full(shape, self.size, dtype=torch.float64))

    def _sample(self, n: int, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype) -> Tensor:
        unit = unit_uniform((n, self.n_agents, 2), generator, device, dtype)
        outside = unit.sum(-1, keepdim=True) > 1
        return self.size * torch.where(outside, 1 - unit, unit)

    def optimal_mechanism(self, demand: Demand) -> Mechanism | None:
        """The grand bundle at ``size / sqrt 3`` for one bidder who can take both items (free disposal), or ``None``."""
        if self.n_agents != 1 or not demand.free_disposal(1, 2) or demand.capacities(1, 2)[0] < 2:
            return None
        name = "grand bundle at 1/sqrt(3) (Haghpanah and Hartline; Dütting et al.'s triangle setting)"
        return MenuMechanism([[0.0, 0.0], [1.0, 1.0]], [0.0, self.size / math.sqrt(3.0)], demand,
                             expected_revenue=triangle_bundle_revenue(self.size), name=name)
