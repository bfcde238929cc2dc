"""K mechanisms of one architecture as one batched mechanism (an ensemble; docs/ensembles.md).

:func:`stack_members` makes ONE mechanism whose every ``nn.Linear`` is a :class:`BatchedLinear` (other state:
:mod:`mechanisms.member_loop`).  It takes the *folded* batch, member innermost: profile ``j`` belongs to member
``j % K`` (:func:`fold`: ``(batch, K, ...) -> (batch * K, ...)``; :func:`unfold` undoes it).
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import Tensor, nn

from mechanisms.member_loop import LOOP, LOOPED, set_child, stack_by_member

__all__ = [
    "BatchedLinear", "ensemble_size", "fold", "fold_shared", "member_mechanism", "member_state_dict", "members_of",
    "set_member_state", "stack_members", "unfold",
]  # fmt: skip


class BatchedLinear(nn.Module):
    """K linear layers: ``weight`` ``(K, out, in)``, ``bias`` ``(K, out)``; ``forward`` maps the folded
    ``(batch * K, in)`` to ``(batch * K, out)`` with one batched matrix product."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        if not layers or any(layer.bias is None for layer in layers):
            raise ValueError("BatchedLinear needs at least one nn.Linear, each with a bias")
        shapes = {tuple(layer.weight.shape) for layer in layers}
        if len(shapes) != 1:
            raise ValueError(f"the members' linear layers differ in shape: {sorted(shapes)}")
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]).clone())
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]).clone())

    @property
    def members(self) -> int:
        """K, the number of stacked layers."""
        return self.weight.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        members, rows = self.members, x.shape[0]
        if rows % members:
            raise ValueError(f"a folded batch of {members} members needs a multiple of {members} rows, got {rows}")
        per_member = x.view(rows // members, members, -1).transpose(0, 1)  # (K, batch, in)
        out = torch.baddbmm(self.bias.unsqueeze(1), per_member, self.weight.transpose(1, 2))  # (K, batch, out)
        return out.transpose(0, 1).reshape(rows, -1)

    def member(self, k: int) -> nn.Linear:
        """Layer ``k`` as an ordinary ``nn.Linear`` (a copy of its weights)."""
        out_features, in_features = self.weight.shape[1:]
        layer = nn.Linear(in_features, out_features, device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.weight[k])
            layer.bias.copy_(self.bias[k])
        return layer

    def extra_repr(self) -> str:
        return f"members={self.members}, in_features={self.weight.shape[2]}, out_features={self.weight.shape[1]}"


def stack_members(members: Sequence[nn.Module]) -> nn.Module:
    """One mechanism computing all ``members`` (one class, same state-dict keys and shapes) on a folded batch: a
    copy of ``members[0]`` whose linear layers are :class:`BatchedLinear` when every parameter belongs to one, else
    one whose parameters are stacked ``(K, ...)`` and whose calls run member by member.  The members are unchanged."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    first = members[0]
    kinds = {type(m).__name__ for m in members}
    if len(kinds) != 1:
        raise ValueError(f"ensemble members must be of one class, got {sorted(kinds)}")
    shapes = {name: tuple(value.shape) for name, value in first.state_dict().items()}
    for k, member in enumerate(members):
        if {name: tuple(value.shape) for name, value in member.state_dict().items()} != shapes:
            raise ValueError(f"ensemble member {k} has another architecture than member 0")
    names = [name for name, child in first.named_modules() if isinstance(child, nn.Linear)]
    linear_keys = {f"{name}.{p}" for name in names for p in ("weight", "bias")}
    if set(shapes) != linear_keys:
        return stack_by_member(members, set(shapes))
    stacked = copy.deepcopy(first)
    for name in names:
        set_child(stacked, name, BatchedLinear([m.get_submodule(name) for m in members]))
    return stacked


def ensemble_size(mechanism: nn.Module) -> int:
    """K of a :func:`stack_members` mechanism (1 for an ordinary mechanism)."""
    batched = (m.members for m in mechanism.modules() if isinstance(m, BatchedLinear))
    return getattr(mechanism, LOOP, None) or next(batched, 1)


def _check_member(mechanism: nn.Module, k: int) -> None:
    size = ensemble_size(mechanism)
    if not (isinstance(k, int) and 0 <= k < size):
        raise ValueError(f"member must be an integer in [0, {size}), got {k!r}")


def member_state_dict(mechanism: nn.Module, k: int) -> dict[str, Tensor]:
    """Member ``k``'s weights under the single mechanism's state-dict keys (copies)."""
    _check_member(mechanism, k)
    return {name: value[k].clone() for name, value in mechanism.state_dict().items()}


def member_mechanism(mechanism: nn.Module, k: int) -> nn.Module:
    """Member ``k`` of a stacked mechanism as an ordinary mechanism of its class (a copy)."""
    _check_member(mechanism, k)
    single = copy.deepcopy(mechanism)
    if getattr(single, LOOP, None) is not None:
        for name, value in list(single.named_parameters()):
            set_child(single, name, nn.Parameter(value.detach()[k].clone()))
        for attribute in (LOOP, *LOOPED):
            single.__dict__.pop(attribute, None)
        return single
    for name, child in list(single.named_modules()):
        if isinstance(child, BatchedLinear):
            set_child(single, name, child.member(k))
    return single


def set_member_state(mechanism: nn.Module, k: int, state: dict[str, Tensor]) -> None:
    """Load the single mechanism's weights ``state`` into member ``k`` of a stacked mechanism (in place)."""
    _check_member(mechanism, k)
    stacked = mechanism.state_dict()
    if set(state) != set(stacked):
        raise ValueError(f"member {k}'s state has other keys than the ensemble's mechanism")
    with torch.no_grad():
        for name, value in state.items():
            stacked[name][k].copy_(value)


def members_of(mechanism: nn.Module) -> list[nn.Module]:
    """The members of a stacked mechanism as ordinary mechanisms (copies); ``[mechanism]`` for an ordinary one."""
    size = ensemble_size(mechanism)
    return [mechanism] if size == 1 else [member_mechanism(mechanism, k) for k in range(size)]


def fold(x: Tensor) -> Tensor:
    """``(batch, K, ...) -> (batch * K, ...)``: the folded batch, member innermost."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def fold_shared(x: Tensor, members: int) -> Tensor:
    """Profiles ``(batch, ...)`` shared by every member, folded: ``(batch * K, ...)``; ``x`` itself for one member."""
    return x if members == 1 else fold(x.unsqueeze(1).expand(-1, members, *x.shape[1:]))


def unfold(x: Tensor, members: int) -> Tensor:
    """``(batch * K, ...) -> (batch, K, ...)``, the inverse of :func:`fold`."""
    return x.view(x.shape[0] // members, members, *x.shape[1:])
