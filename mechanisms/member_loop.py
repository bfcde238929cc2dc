"""K mechanisms whose state is not all in ``nn.Linear`` layers, stacked as one and run member by member.

:func:`stack_by_member` (for :func:`mechanisms.ensemble.stack_members`) stacks every parameter ``(K, ...)`` under its
single state-dict key; each call of :data:`LOOPED` then runs the class's own code once per member, on its profiles
``bids[k::K]`` with its parameters (:func:`as_member`), and interleaves the outputs back (docs/ensembles.md).
"""

from __future__ import annotations

import contextlib
import copy
import types
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from mechanisms.prepared import PreparedCall
from mechanisms.sinkhorn import Calibration

__all__ = ["LOOP", "LOOPED", "as_member", "set_child", "stack_by_member"]

LOOP = "_ensemble_members"
"""Attribute of a member-by-member stack: K."""
LOOPED = ("allocate_and_pay", "calibrate", "prepare")
"""The calls a member-by-member stack runs once per member (those its class has)."""


def set_child(module: nn.Module, name: str, value: nn.Module | nn.Parameter) -> None:
    """Set the submodule or parameter of dotted ``name`` in ``module`` to ``value``."""
    owner, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(owner) if owner else module, leaf, value)


def stack_by_member(members: Sequence[nn.Module], keys: set[str]) -> nn.Module:
    """A copy of ``members[0]`` with every parameter stacked ``(K, ...)`` and :data:`LOOPED` run per member (``keys``:
    the state-dict keys, all parameters)."""
    first = members[0]
    parameters = dict(first.named_parameters())
    if keys != set(parameters):
        raise ValueError(f"{type(first).__name__} has state that is not a parameter "
                         f"({sorted(keys - set(parameters))}): it cannot be stacked into an ensemble")
    stacked = copy.deepcopy(first)
    for name in parameters:
        set_child(stacked, name, nn.Parameter(torch.stack([m.get_parameter(name).detach() for m in members]).clone()))
    setattr(stacked, LOOP, len(members))
    for call in LOOPED:
        if callable(getattr(type(stacked), call, None)):
            setattr(stacked, call, types.MethodType(_METHODS[call], stacked))
    return stacked


class _Run(nn.Module):
    """``forward(fn, *args)`` is ``fn(*args)``: the module ``functional_call`` reparametrizes around a call."""

    def __init__(self, mechanism: nn.Module) -> None:
        super().__init__()
        self.mechanism = mechanism

    def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


@contextlib.contextmanager
def _single(stacked: nn.Module) -> Iterator[None]:
    """The stack's per-member calls hidden: inside, its methods are its class's (one member's code)."""
    hidden = {name: stacked.__dict__.pop(name) for name in (LOOP, *LOOPED) if name in stacked.__dict__}
    try:
        yield
    finally:
        stacked.__dict__.update(hidden)


def as_member(stacked: nn.Module, k: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with ``stacked`` as member ``k``: parameters the views ``p[k]``, methods its class's."""
    parameters = {f"mechanism.{name}": value[k] for name, value in stacked.named_parameters()}
    with _single(stacked):
        return torch.func.functional_call(_Run(stacked), parameters, (fn, *args))


def _size(stacked: nn.Module, rows: int) -> int:
    size = getattr(stacked, LOOP)
    if rows % size:
        raise ValueError(f"a folded batch of {size} members needs a multiple of {size} rows, got {rows}")
    return size


def _interleave(parts: Sequence[Tensor], dim: int) -> Tensor:
    """Member outputs ``parts[k]`` with ``batch`` at ``dim`` -> the folded ``batch * K`` there (member innermost)."""
    return torch.stack(list(parts), dim + 1).flatten(dim, dim + 1)


def _per_member(self: nn.Module, call: Callable[..., Any], bids: Tensor, *args: Any, **kwargs: Any) -> list[Any]:
    """``call(self, bids[k::K], ...)`` as each member ``k``."""
    size = _size(self, bids.shape[0])
    return [as_member(self, k, lambda b: call(self, b, *args, **kwargs), bids[k::size]) for k in range(size)]


def _allocate_and_pay(self: nn.Module, bids: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, ...]:
    outputs = _per_member(self, type(self).allocate_and_pay, bids, *args, **kwargs)
    return tuple(_interleave(parts, 0) for parts in zip(*outputs))


def _calibrate(self: nn.Module, bids: Tensor, *args: Any, **kwargs: Any) -> Calibration:
    """Every member's calibration on its profiles; one fixed schedule for all: the longest."""
    outputs = _per_member(self, type(self).calibrate, bids, *args, **kwargs)
    return Calibration(*(tuple(map(max, zip(*field))) if isinstance(field[0], tuple) else max(field)
                         for field in zip(*outputs)))


def _prepare(self: nn.Module, valuations: Tensor, solver: Any = None) -> PreparedCall:
    return _MemberCalls(self, valuations, solver)


_METHODS = {"allocate_and_pay": _allocate_and_pay, "calibrate": _calibrate, "prepare": _prepare}


class _MemberCalls(PreparedCall):
    """Every member's own prepared call on its profiles of the folded ``valuations``, run as that member."""

    def __init__(self, stacked: nn.Module, valuations: Tensor, solver: Any) -> None:
        super().__init__(stacked, valuations)
        self.stacked, self.size = stacked, _size(stacked, valuations.shape[0])
        self.parts = _per_member(stacked, type(stacked).prepare, valuations, solver)

    def _each(self, call: Callable[[PreparedCall, int], Any]) -> list[Any]:
        return [as_member(self.stacked, k, lambda part: call(part, k), self.parts[k]) for k in range(self.size)]

    def truthful(self) -> tuple[Tensor, Tensor]:
        outputs = self._each(lambda part, k: part.truthful())
        return tuple(_interleave(parts, 0) for parts in zip(*outputs))

    def deviations(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        outputs = self._each(lambda part, k: part.deviations(rows[:, :, k::self.size]))
        return tuple(_interleave(parts, 2) for parts in zip(*outputs))

    def utilities(self, rows: Tensor) -> Tensor:
        return _interleave(self._each(lambda part, k: part.utilities(rows[:, :, k::self.size])), 1)

    def deviate(self, agent: int, sources: Tensor, reports: Tensor) -> tuple[Tensor, Tensor]:
        members = sources % self.size
        allocation, payment = reports.new_empty(reports.shape), reports.new_empty(reports.shape[:1])
        for k, (alloc, pay) in enumerate(self._each(lambda part, k: part.deviate(
                agent, sources[members == k] // self.size, reports[members == k]))):
            allocation[members == k], payment[members == k] = alloc, pay
        return allocation, payment
