"""Independent uniform values: agent ``i``'s value for item ``j`` is ``U[low_ij, high_ij]``.

``low`` and ``high`` are one number (every agent and item), one number per agent (``data.low``/``data.high``,
e.g. ``[1.0, 2.0]``), or one row per agent, one number per item (e.g. ``[[4, 4]]``/``[[16, 7]]``: Daskalakis,
Deckelbaum and Tzamos' asymmetric one-bidder setting, a benchmark of Dütting et al.'s RegretNet, README of
github.com/saisrivatsan/deep-opt-auctions).  Samples are ``low + (high - low) * U`` with ``U`` from
``torch.rand``'s stream (what the data module drew before this package existed).
"""

from __future__ import annotations

import math
from typing import Any, Sequence, Union

import torch
from torch import Tensor

from distributions.base import Support, ValuationDistribution, unit_uniform

__all__ = ["Uniform"]

Bound = Union[float, Sequence[float], Sequence[Sequence[float]]]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _normalized(value: Bound, name: str, agents: int, items: int) -> float | tuple:
    """``value`` as a float, a tuple per agent, or a tuple of per-item tuples; ``ValueError`` if malformed."""
    nested = False
    if _is_number(value):
        rows = [[value]]
    else:
        rows = list(value)
        if len(rows) != agents:
            raise ValueError(f"{name} has {len(rows)} entries but there are {agents} agents")
        nested = all(isinstance(row, (list, tuple)) for row in rows)
        if nested and any(len(row) != items for row in rows):
            raise ValueError(f"{name} needs one row of {items} numbers (one per item) per agent, got {value!r}")
        rows = rows if nested else [rows]
    if not all(_is_number(v) and math.isfinite(v) for row in rows for v in row):
        raise ValueError(f"{name} must be finite numbers, got {value!r}")
    if _is_number(value):
        return float(value)
    return tuple(tuple(float(v) for v in row) for row in rows) if nested else tuple(float(v) for v in rows[0])


class Uniform(ValuationDistribution):
    """Values ``U[low, high]`` independently per agent and item (bounds per agent, per agent and item, or shared)."""

    name = "uniform"

    def __init__(self, n_agents: int, n_items: int, low: Bound = 0.0, high: Bound = 1.0) -> None:
        super().__init__(n_agents, n_items)
        self.low = _normalized(low, "low", n_agents, n_items)
        self.high = _normalized(high, "high", n_agents, n_items)
        lo, hi = self.support
        if not bool((lo < hi).all()):
            raise ValueError(f"every agent needs low < high, got low={low!r}, high={high!r}")

    def parameters(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high}

    def _bounds(self, dtype: torch.dtype, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        """``(low, high)`` as ``(agents, 1)`` (shared or per agent) or ``(agents, items)`` tensors of ``dtype``."""
        def tensor(bound: float | tuple) -> Tensor:
            bound = (bound,) * self.n_agents if isinstance(bound, float) else bound
            t = torch.tensor(bound, dtype=dtype, device=device)
            return t if t.dim() == 2 else t.unsqueeze(-1)
        return tensor(self.low), tensor(self.high)

    @property
    def support(self) -> Support:
        lo, hi = self._bounds(torch.float64)
        shape = (self.n_agents, self.n_items)
        return Support(lo.expand(shape).contiguous(), hi.expand(shape).contiguous())

    def shared_range(self) -> tuple[float, float] | None:
        """``(low, high)`` when every agent and item has the same range (values i.i.d.), else ``None``."""
        lo, hi = self.support
        if bool((lo == lo[0, 0]).all()) and bool((hi == hi[0, 0]).all()):
            return float(lo[0, 0]), float(hi[0, 0])
        return None

    def _sample(self, n: int, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype) -> Tensor:
        lo, hi = self._bounds(dtype, device)
        return lo + (hi - lo) * unit_uniform((n, self.n_agents, self.n_items), generator, device, dtype)
