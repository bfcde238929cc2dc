"""The valuation distribution of a setting: what every profile is drawn from and the domain reports live in.

A :class:`ValuationDistribution` draws profiles ``(n, agents, items)``, names its report domain (``support``, where
the misreport search clamps) and may know its revenue-optimal mechanism (a reference line); docs/extending.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import torch
from torch import Tensor

from mechanisms.base import Mechanism
from utils.checks import check_int, check_positive_int
from mechanisms.demand import Demand

__all__ = ["DTYPES", "Support", "ValuationDistribution", "unit_uniform"]

DTYPES = (torch.float32, torch.float64)


class Support(NamedTuple):
    """The report domain: agent ``i`` reports item ``j`` in ``[low[i, j], high[i, j]]`` (``(agents, items)``)."""

    low: Tensor
    high: Tensor


def unit_uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device,
                 dtype: torch.dtype) -> Tensor:
    """Draws U[0, 1) of ``shape`` from ``generator`` (``None``: torch's default one), as ``torch.rand`` would."""
    return torch.empty(shape, dtype=dtype, device=device).uniform_(0.0, 1.0, generator=generator)


class ValuationDistribution(ABC):
    """Valuation profiles of ``n_agents`` bidders over ``n_items`` items.

    Two distributions are equal when their class and :meth:`parameters` are (references are cached on them).
    """

    name: str = "distribution"

    def __init__(self, n_agents: int, n_items: int) -> None:
        check_int(n_agents, "distribution n_agents (bidders)")
        check_int(n_items, "distribution n_items")
        self.n_agents, self.n_items = n_agents, n_items

    @property
    @abstractmethod
    def support(self) -> Support:
        """The report domain, ``low``/``high`` of shape ``(agents, items)`` (float64)."""

    @abstractmethod
    def _sample(self, n: int, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype) -> Tensor:
        """``n`` profiles ``(n, agents, items)`` of ``dtype`` on ``device``, inside :attr:`support`."""

    def parameters(self) -> dict[str, Any]:
        """The constructor's arguments besides the shape (hashable values), e.g. ``{"scale": 1.0}``."""
        return {}

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
        """``n`` valuation profiles ``(n, agents, items)`` drawn from ``generator`` (on its device; ``None``:
        torch's default generator on ``device``, default the CPU)."""
        check_positive_int(n, "number of profiles")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        where = generator.device if generator is not None else torch.device(device if device is not None else "cpu")
        return self._sample(n, generator, where, dtype)

    def check_setting(self, n_agents: int, n_items: int, what: str = "the setting") -> None:
        """``ValueError`` unless the distribution is over ``n_agents`` x ``n_items`` (``what`` names the other side)."""
        if (self.n_agents, self.n_items) != (n_agents, n_items):
            raise ValueError(f"the distribution is over {self.n_agents} agent(s) x {self.n_items} item(s) "
                             f"but {what} over {n_agents} x {n_items}")

    def agent_ranges(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(lows, highs)``, one float per agent: its smallest and largest report in :attr:`support`."""
        low, high = self.support
        return tuple(low.min(-1).values.tolist()), tuple(high.max(-1).values.tolist())

    def identical_bidders(self) -> bool:
        """Whether every bidder's values have the same law (VCG and optimum references assume it); by default,
        whether their report domains agree (a distribution whose bidders differ within them overrides this)."""
        low, high = self.support
        return bool((low == low[0]).all() and (high == high[0]).all())

    def optimal_mechanism(self, demand: Demand) -> Mechanism | None:
        """The known revenue-optimal mechanism for ``demand`` (``expected_revenue``, source ``name``), or ``None``."""
        return None

    def _key(self) -> tuple:
        return type(self), self.n_agents, self.n_items, tuple(sorted(self.parameters().items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValuationDistribution) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.parameters().items())
        return f"{type(self).__name__}({self.n_agents}, {self.n_items}{', ' if arguments else ''}{arguments})"
