"""The demand-type contract: what a bidder may receive, and everything that follows from it.

A demand type is a frozen dataclass subclass of :class:`Demand` with a class attribute ``name`` (defining it
registers the name for ``Demand(name, k)`` and the config group ``demand/``).  It states :meth:`Demand.limits` (the
most items each agent may receive, ``k_i``) and :meth:`Demand.disposal` (how many of the ``S = sum_i k_i`` slots
may stay empty); the base class derives the rest (docs/extending.md#a-new-demand-type).
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from utils.checks import check_positive_int, is_int

__all__ = ["Demand", "KSpec", "SoftmaxHead", "make_demand", "marginals", "per_agent"]

KSpec = Union[int, Sequence[int]]  # a demand's k: one int for every agent, or one int per agent
SoftmaxHead = Literal["additive", "unit", "exactly_one"]  # the softmax output layers of RegretNet

_REGISTRY: dict[str, type["Demand"]] = {}


class _DemandMeta(ABCMeta):
    """Makes ``Demand(name, k)`` build the registered type ``name`` (:func:`make_demand`)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return make_demand(*args, **kwargs) if cls is Demand else super().__call__(*args, **kwargs)


@dataclass(frozen=True)
class Demand(metaclass=_DemandMeta):
    """A demand type, e.g. ``Demand("exactly_k", k=1)`` or ``Demand("k_demand", k=[1, 2])``; ``k`` is an int or one
    int per agent (a list becomes a tuple: the type is hashable), ignored by types that do not use it."""

    name: ClassVar[str]
    exact: ClassVar[bool] = False
    """True for a type whose agents receive exactly their capacity in every setting (exactly_k)."""

    k: KSpec = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _register(cls)

    def __post_init__(self) -> None:
        ks = list(self.k) if isinstance(self.k, Sequence) and not isinstance(self.k, str) else [self.k]
        if not ks or not all(is_int(k) for k in ks):
            raise ValueError(f"k must be a positive integer or a list of them, got {self.k!r}")
        if not isinstance(self.k, int):
            object.__setattr__(self, "k", tuple(ks))

    @abstractmethod
    def limits(self, n_agents: int, n_items: int) -> list[int]:
        """The most items each agent may receive (valid sizes): one int per agent; ``ValueError`` for a bad setting."""

    @abstractmethod
    def disposal(self, capacities: Sequence[int]) -> int:
        """How many of the ``sum(capacities)`` slots of agents with ``capacities`` (any subset of the agents too, for
        VCG) may stay empty in all."""

    @property
    def description(self) -> str:
        """The type for people, e.g. ``exactly_k demand (k=1)``."""
        return f"{self.name} demand (k={self.k})"

    def capacities(self, n_agents: int, n_items: int) -> list[int]:
        """Items each agent may (with :meth:`fixed_totals`: must) receive: one int per agent; checks the setting."""
        return self._slots(n_agents, n_items)[0]

    def free_disposal(self, n_agents: int, n_items: int) -> bool:
        """Whether any slot may stay empty: the zero allocation, and every part of a feasible one, is feasible."""
        capacities, empty = self._slots(n_agents, n_items)
        return empty >= sum(capacities)

    def fixed_totals(self, n_agents: int, n_items: int) -> bool:
        """Whether no slot may stay empty: every agent receives exactly its capacity."""
        return self._slots(n_agents, n_items)[1] == 0

    def _slots(self, n_agents: int, n_items: int) -> tuple[list[int], int]:
        """Capacities and disposal of a setting, checked: ``0 <= disposal`` and at most ``n_items`` items must sell."""
        check_positive_int(n_agents, "agents")
        check_positive_int(n_items, "items")
        capacities = self.limits(n_agents, n_items)
        if len(capacities) != n_agents:
            raise ValueError(f"{self.name} gave {len(capacities)} capacities for {n_agents} agents")
        empty = self.disposal(capacities)
        if empty < 0:
            raise ValueError(f"{self.name}: disposal gave {empty} empty slots for capacities {capacities}; "
                             "it must be >= 0")
        if sum(capacities) - empty > n_items:
            raise ValueError(f"{self.description} needs at least {sum(capacities) - empty} items sold, "
                             f"there are {n_items}")
        return capacities, empty

    def marginals(self, n_agents: int, n_items: int, *, dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """Row marginals ``a = (k_1, ..., k_n, items + disposal - S)`` ``(n_agents + 1,)`` (the dummy agent holds the
        unsold items) and column marginals ``b = (1, ..., 1, disposal)`` ``(n_items + 1,)``."""
        capacities, empty = self._slots(n_agents, n_items)
        a = torch.tensor([*capacities, n_items + empty - sum(capacities)], dtype=dtype, device=device)
        b = torch.tensor([1] * n_items + [empty], dtype=dtype, device=device)
        return a, b

    def cost(self, scores: Tensor) -> Tensor:
        """Sinkhorn cost ``(batch, agents + 1, items + 1)`` of scores ``(batch, agents, items)``: zero dummies."""
        return F.pad(scores, (0, 1, 0, 1))

    def fold(self, plan: Tensor) -> Tensor:
        """The allocation ``(batch, agents, items)`` of a plan ``(batch, agents + 1, items + 1)``: dummies cut off."""
        return plan[:, :-1, :-1]

    def violation(self, allocation: Tensor) -> Tensor:
        """Largest constraint violation ``(batch,)`` of an allocation ``(batch, agents, items)`` (``x < 0``, ``x > 1``,
        item totals above 1, the agents' totals: :meth:`_total_violation`); 0 when feasible."""
        if not isinstance(allocation, Tensor) or allocation.dim() != 3 or not allocation.is_floating_point():
            shape = tuple(allocation.shape) if isinstance(allocation, Tensor) else type(allocation).__name__
            raise ValueError(f"allocation must be a floating-point (batch, agents, items) tensor, got {shape}")
        if not bool(torch.isfinite(allocation).all()):
            raise ValueError("allocation contains NaN or Inf")
        _, n_agents, n_items = allocation.shape
        capacities, _ = self._slots(n_agents, n_items)
        terms = ((-allocation).amax((1, 2)), (allocation - 1).amax((1, 2)), (allocation.sum(1) - 1).amax(-1),
                 self._total_violation(allocation.sum(-1), capacities))
        worst = torch.stack(terms, -1).amax(-1)
        return torch.where(worst > 0, worst, 0.0)  # not clamp_min: it keeps -0.0

    def _total_violation(self, totals: Tensor, capacities: list[int]) -> Tensor:
        """Violation ``(batch,)`` of the agents' totals ``(batch, agents)``: above ``k_i``, or too few items sold."""
        excess = (totals - torch.tensor(capacities, dtype=totals.dtype, device=totals.device)).amax(-1)
        minimum_sold = sum(capacities) - self.disposal(capacities)
        return excess if minimum_sold <= 0 else torch.maximum(excess, minimum_sold - totals.sum(-1))

    def max_welfare(self, values: np.ndarray, capacities: Sequence[int]) -> tuple[np.ndarray, float]:
        """A welfare-maximizing 0/1 allocation ``(agents, items)`` of ``values`` ``(agents, items)`` for agents with
        ``capacities``, and its welfare: an assignment problem with agent ``i`` as ``k_i`` rows and :meth:`disposal`
        zero-value "no item" columns."""
        n_agents, n_items = values.shape
        owner = np.repeat(np.arange(n_agents), capacities)  # agent of each row (slot)
        gains = values[owner]
        empty = self.disposal(capacities)
        if empty:
            gains = np.hstack([gains, np.zeros((len(owner), empty), dtype=values.dtype)])
        rows, cols = linear_sum_assignment(gains, maximize=True)
        allocation = np.zeros((n_agents, n_items), dtype=values.dtype)
        real = cols < n_items
        allocation[owner[rows[real]], cols[real]] = 1.0
        return allocation, float(gains[rows, cols].sum())

    def softmax_head(self, n_agents: int, n_items: int) -> SoftmaxHead:
        """The RegretNet softmax output layer that makes exactly this type's allocations (``unit``, ``additive``,
        ``exactly_one``: paper section 4.4); ``ValueError`` if none does."""
        capacities, empty = self._slots(n_agents, n_items)
        if empty == 0:
            if n_agents == 1 and capacities[0] == 1:
                return "exactly_one"
            raise ValueError(f"RegretNet cannot represent {self.name} demand with {n_agents} agents and k={self.k}: "
                             "min-of-softmax outputs cannot force every agent's total to equal k (paper section 4.4; "
                             "only one agent with k=1 works); use SinkhornMechanism")
        if empty >= sum(capacities):
            if max(capacities) == 1:
                return "unit"
            if min(capacities) >= n_items:
                return "additive"  # a capacity of at least all items is no constraint
        raise ValueError(f"RegretNet cannot represent {self.name} with k={self.k}: its softmax outputs only enforce "
                         "agent totals <= 1 or none at all (paper section 4.4); use SinkhornMechanism")


def per_agent(k: KSpec, n_agents: int) -> list[int]:
    """``k`` as one int per agent: an int repeated, or a sequence of ``n_agents`` ints (``ValueError`` otherwise)."""
    if isinstance(k, int):
        return [k] * n_agents
    ks = list(k)
    if len(ks) != n_agents:
        raise ValueError(f"k has {len(ks)} entries but there are {n_agents} agents")
    return ks


def _register(cls: type[Demand]) -> None:
    """Register ``cls`` under ``cls.name``; a name taken by a class of another module or name is an error."""
    taken = _REGISTRY.get(cls.name)
    if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"demand name {cls.name!r} is taken by {taken.__module__}.{taken.__qualname__}")
    _REGISTRY[cls.name] = cls


def make_demand(name: str, k: KSpec = 1) -> Demand:
    """The demand type ``name`` (registered, or defined in the module ``mechanisms.demand.<name>``) with ``k``."""
    if not isinstance(name, str):
        raise ValueError(f"demand must be a demand type's name, got {name!r}")
    if name not in _REGISTRY and name.isidentifier():
        module = f"{__package__}.{name}"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    if name not in _REGISTRY:
        raise ValueError(f"unknown demand {name!r}; valid demand types: {', '.join(_REGISTRY)}")
    return _REGISTRY[name](k)


def marginals(demand: str, n_agents: int, n_items: int, k: KSpec = 1, *, dtype: torch.dtype = torch.float32,
              device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Sinkhorn marginals ``(a, b)`` of shapes ``(n_agents + 1,)``, ``(n_items + 1,)`` for a demand type."""
    return make_demand(demand, k).marginals(n_agents, n_items, dtype=dtype, device=device)
