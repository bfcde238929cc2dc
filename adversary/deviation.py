"""One agent deviating from the truth: the report domain and the mechanism call.

Misreport rows are laid out ``(starts, agents, batch, items)``: ``rows[s, i, b]`` is agent ``i``'s report in
sample ``b`` from start ``s``.  The engines call the mechanism through :func:`prepared`, whose
``utilities(rows)`` are the deviating agents' true utilities ``(starts, batch, agents)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mechanisms.base import check_bids
from utils.checks import Bounds
from mechanisms.prepared import Forward, PreparedCall
from mechanisms.sinkhorn import Sinkhorn

__all__ = ["Forward", "check_domain", "check_valuations", "checked_forward", "domain_bounds", "prepared",
           "trusted_forward"]


def check_valuations(valuations: Tensor) -> None:
    """Raise ``ValueError`` unless ``valuations`` is a valid ``(batch, agents, items)`` bid tensor."""
    if not isinstance(valuations, Tensor) or valuations.dim() != 3:
        shape = tuple(valuations.shape) if isinstance(valuations, Tensor) else type(valuations).__name__
        raise ValueError(f"valuations must have shape (batch, agents, items), got {shape}")
    check_bids(valuations, valuations.shape[1], valuations.shape[2])


def domain_bounds(low: Bounds | Tensor, high: Bounds | Tensor, valuations: Tensor) -> tuple[Tensor, Tensor]:
    """Report domain bounds as ``(agents, items)`` tensors, from floats, one float per agent (a list or tuple) or
    tensors broadcastable to ``(agents, items)``."""
    _, n, m = valuations.shape
    bounds = []
    for x in (low, high):
        try:
            t = torch.as_tensor(x, dtype=valuations.dtype, device=valuations.device)
            if isinstance(x, (list, tuple)):
                if t.dim() != 1 or len(t) != n:
                    raise RuntimeError("one bound per agent expected")
                t = t.view(n, 1)
            bounds.append(t.broadcast_to(n, m).contiguous())
        except (RuntimeError, TypeError, ValueError) as error:
            raise ValueError(f"low and high must be floats, one float per agent, or tensors broadcastable to "
                             f"(agents, items) = ({n}, {m})") from error
    lo, hi = bounds
    if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()) or bool((lo > hi).any()):
        raise ValueError("low and high must be finite with low <= high")
    return lo, hi


def check_domain(valuations: Tensor, low: Bounds | Tensor, high: Bounds | Tensor) -> tuple[Tensor, Tensor]:
    """Raise ``ValueError`` unless every valuation lies in ``[low, high]`` (the domain misreports are searched in).

    Returns the bounds it checked against, ``(1, agents, 1, items)``: the layout of the misreport rows.
    """
    _, n, m = valuations.shape
    lo, hi = (bound.unsqueeze(0) for bound in domain_bounds(low, high, valuations))  # (1, agents, items)
    slack = 1e-6 * float((hi - lo).abs().max().clamp(min=1.0))
    outside = (valuations.detach() < lo - slack) | (valuations.detach() > hi + slack)
    if bool(outside.any()):
        value = valuations.detach()[outside][0].item()
        raise ValueError(f"valuations must lie in the value domain [low, high] (here [{lo.min().item():g}, "
                         f"{hi.max().item():g}]); got {value:g}: pass the domain as low=/high=, "
                         "or rescale the valuations")
    return lo.reshape(1, n, 1, m), hi.reshape(1, n, 1, m)


def checked_forward(mechanism: nn.Module) -> Forward:
    """``mechanism(bids)``, checked against the contract ``(allocation, payment)`` (shapes only)."""

    def forward(bids: Tensor) -> tuple[Tensor, Tensor]:
        output = mechanism(bids)
        if not (isinstance(output, tuple) and len(output) == 2):
            raise ValueError(f"a mechanism must return (allocation, payment), got {type(output).__name__}")
        allocation, payment = output
        if tuple(allocation.shape) != tuple(bids.shape) or tuple(payment.shape) != tuple(bids.shape[:2]):
            raise ValueError(f"a mechanism must return allocation {tuple(bids.shape)} and payment "
                             f"{tuple(bids.shape[:2])}, got {tuple(allocation.shape)} and {tuple(payment.shape)}")
        return allocation, payment

    return forward


def trusted_forward(mechanism: nn.Module) -> Forward:
    """The mechanism's forward without input checks (no host synchronization), for captured hot loops."""
    return getattr(mechanism, "allocate_and_pay", mechanism)


def prepared(mechanism: nn.Module, valuations: Tensor, forward: Forward | None = None,
             solver: Sinkhorn | None = None) -> PreparedCall:
    """``mechanism`` bound to valuations ``(batch, agents, items)`` (checked by the caller) for the engines' calls.

    ``mechanism.prepare(valuations, solver)`` where the mechanism offers it (its parameter-only work done once,
    in the current grad mode: call it under ``torch.no_grad()`` where no parameter gradient is wanted) and
    its ``prepared_calls`` is not ``False``; else plain calls of ``forward`` (``None``: :func:`checked_forward`
    of ``mechanism``).  ``solver``: the Sinkhorn layer's solver for a preparing mechanism (``None``: its own),
    as ``forward`` is for the others.
    """
    prepare = getattr(mechanism, "prepare", None)
    if prepare is not None and getattr(mechanism, "prepared_calls", True):
        return prepare(valuations, solver)
    return PreparedCall(checked_forward(mechanism) if forward is None else forward, valuations)
