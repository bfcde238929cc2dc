"""The gradient misreport search: every agent's best report, by projected gradient ascent.

With ``S`` starts (the truth, a warm start if given, the shaded truths, the random restarts), each step is ONE
mechanism call on ``S * agents * batch`` bid profiles, each the truth except for one agent's row, through the
mechanism's prepared call (:func:`adversary.deviation.prepared`).
:func:`find_misreports` checks its inputs; :func:`ascend`, :func:`truthful_starts` and :func:`step_scale` are its
check-free core, shared with the fast training step.

Every step is relative to the width of the report domain (``lr * (high - low)`` times the optimizer's
direction), so the search is scale-invariant, and on the unit domain bit for bit the paper's absolute step
(docs/regret_audit.md, "Scale invariance of the search"); a width of 0 pins the report.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import torch
from torch import Tensor, nn

from adversary.deviation import check_domain, check_valuations, prepared
from utils.checks import Bounds, check_fractions, check_int
from mechanisms.prepared import PreparedCall

__all__ = ["MisreportSearch", "TEST_SAMPLES", "TEST_SEARCH", "TRAIN_SEARCH", "VAL_SEARCH", "ascend", "find_misreports",
           "step_scale", "truthful_starts"]

OPTIMIZERS = ("adam", "sgd")  # written out in ascend()


@dataclass(frozen=True)
class MisreportSearch:
    """Settings of the gradient-ascent misreport search (defaults: the paper's training search, :data:`TRAIN_SEARCH`).

    steps:     gradient steps per start (0: only compare the starts).
    lr:        optimizer learning rate, relative to the width of the report domain (the paper: 0.1 on [0, 1]).
    restarts:  uniform random starts in addition to the truthful start.
    optimizer: ``"adam"`` (the paper) or ``"sgd"``.
    shading:   factors ``f`` in [0, 1] of further starts ``low + f (v - low)``, the truth shaded (empty: none).
    """

    steps: int = 25
    lr: float = 0.1
    restarts: int = 0
    optimizer: str = "adam"
    shading: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "shading", tuple(self.shading))  # a list from the configuration, hashable here
        check_fractions(self.shading, "MisreportSearch.shading")
        for name in ("steps", "restarts"):
            check_int(getattr(self, name), f"MisreportSearch.{name}", minimum=0)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"MisreportSearch.lr must be positive, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"MisreportSearch.optimizer must be one of {', '.join(OPTIMIZERS)}, "
                             f"got {self.optimizer!r}")


# The one source of the searches' defaults: the configuration takes them from here (runs/config_store.py).
TRAIN_SEARCH = MisreportSearch()
"""The paper's training search: 25 Adam steps at lr 0.1 from the truth."""
VAL_SEARCH = MisreportSearch(100, 0.1, 2)
"""Validation: stronger than training, 100 steps from the truth and 2 random starts."""
TEST_SEARCH = MisreportSearch(1000, 0.1, 10)
"""The paper's test protocol: 1000 Adam steps at lr 0.1 from the truth and 10 random starts ..."""
TEST_SAMPLES = 1000
"""... on 1000 test profiles."""


_BETAS, _ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


def step_scale(low: Tensor, high: Tensor) -> Tensor | None:
    """The width ``high - low`` that scales every search step, or ``None`` on the unit domain (every width 1).

    Reads one flag from the device: call it outside captured regions (it is what :func:`ascend` takes as ``scale``).
    """
    width = high - low
    return None if bool((width == 1).all()) else width


def ascend(call: PreparedCall, rows: Tensor, search: MisreportSearch, low: Tensor, high: Tensor,
           scale: Tensor | None = None) -> Tensor:
    """Projected gradient ascent from every start; the best row of each agent and sample ``(agents, batch, items)``.

    ``call`` is the mechanism bound to the truth ``(batch, agents, items)``
    (:func:`adversary.deviation.prepared`); ``rows`` ``(starts, agents, batch,
    items)`` the starts (``rows[0]`` is kept if nothing beats it); ``low`` and
    ``high`` ``(1, agents, 1, items)``; ``scale`` :func:`step_scale` of them (each
    step is ``search.lr * scale`` times the optimizer's direction; ``None``: ``search.lr``
    times it, the unit domain).  The optimizer is written out (Adam with
    torch's defaults and bias correction, or plain SGD) so that every step
    count is a Python constant: no host synchronization, no data-dependent
    branch, hence safe to capture in a CUDA graph once the inputs are checked.
    """
    starts, n, batch, m = rows.shape
    truth = call.valuations
    best_rows = rows[0].detach().clone()  # (n, B, m)
    best_utility = torch.full((n, batch), -torch.inf, dtype=truth.dtype, device=truth.device)
    first = torch.zeros_like(rows) if search.optimizer == "adam" else None
    second = torch.zeros_like(rows) if search.optimizer == "adam" else None
    rows = rows.detach()
    for step in range(search.steps + 1):
        last = step == search.steps
        rows = rows.requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            gains = call.utilities(rows).permute(0, 2, 1)  # (S, n, B)
        with torch.no_grad():
            top, index = gains.max(0)
            better = top > best_utility
            best_utility = torch.where(better, top, best_utility)
            chosen = rows.gather(0, index.view(1, n, batch, 1).expand(1, n, batch, m))[0]
            best_rows = torch.where(better.unsqueeze(-1), chosen, best_rows)
        if last or not gains.requires_grad:
            break
        (grad,) = torch.autograd.grad(gains.sum(), rows, allow_unused=True)
        if grad is None:  # the output does not depend on the bids: the reports cannot move
            break
        with torch.no_grad():
            if first is None:
                rows = rows + search.lr * (grad if scale is None else scale * grad)
            else:
                t = step + 1
                first = first.mul(_BETAS[0]).add_(grad, alpha=1 - _BETAS[0])
                second = second.mul(_BETAS[1]).addcmul_(grad, grad, value=1 - _BETAS[1])
                denom = (second.sqrt() / math.sqrt(1 - _BETAS[1] ** t)).add_(_ADAM_EPS)
                moment = first if scale is None else scale * first
                rows = rows.addcdiv(moment, denom, value=search.lr / (1 - _BETAS[0] ** t))
            rows = torch.maximum(torch.minimum(rows, high), low)
    return best_rows


def truthful_starts(valuations: Tensor, init: Tensor | None, low: Tensor, high: Tensor) -> Tensor:
    """The search's starts ``(starts, agents, batch, items)``: the truth, then ``init`` clamped to ``[low, high]``.

    ``valuations`` is ``(batch, agents, items)``; ``init`` ``(batch, agents, items)`` (a warm start, e.g. the
    misreports found on the same profiles earlier) or ``(starts, batch, agents, items)`` (several starts,
    e.g. :mod:`adversary.strong`'s); ``low``/``high`` ``(1, agents, 1, items or 1)``.
    """
    truth = valuations.transpose(0, 1).unsqueeze(0)
    if init is None:
        return truth
    init = init.unsqueeze(0) if init.dim() == 3 else init
    return torch.cat([truth, torch.minimum(torch.maximum(init.transpose(1, 2), low), high)])


def find_misreports(mechanism: nn.Module, valuations: Tensor, search: MisreportSearch = TRAIN_SEARCH,
                    low: Bounds | Tensor = 0.0, high: Bounds | Tensor = 1.0, generator: torch.Generator | None = None,
                    init: Tensor | None = None) -> Tensor:
    """Best misreport ``(batch, agents, items)`` (detached; row ``i``: agent ``i``'s) of every agent and sample.

    Starts from the truth ``valuations`` ``(batch, agents, items)``, from ``init`` when given (a warm start
    ``(batch, agents, items)`` or several ``(starts, batch, agents, items)``, clamped to the domain) and from
    ``search.restarts`` uniform random reports (drawn with ``generator``) in ``[low, high]`` (floats or tensors
    broadcastable to ``(agents, items)``); after every step the reports are clamped to it.  Every iterate of
    every start is scored, the truth included, so the result is never worse than the truth.

    Gradients are taken with respect to the reports only (``torch.autograd.grad``: parameter ``.grad`` is never
    touched), also under ``no_grad`` or ``inference_mode``.  A mechanism whose output does not depend
    differentiably on the bids (VCG, posted prices) is compared on its starts only.
    """
    check_valuations(valuations)
    if generator is not None and generator.device.type != valuations.device.type:
        raise ValueError(f"generator is on {generator.device} but valuations on {valuations.device}; create it there")
    with torch.inference_mode(False), torch.enable_grad():
        low_t, high_t = check_domain(valuations, low, high)  # normal tensors even under inference mode
        truth = valuations.detach().clone()  # a normal tensor even if created in inference mode
        batch, n, m = truth.shape
        if init is not None:
            if not isinstance(init, Tensor) or init.shape[-3:] != truth.shape or init.dim() not in (3, 4):
                shape = tuple(init.shape) if isinstance(init, Tensor) else type(init).__name__
                raise ValueError(f"init must have the valuations' shape {tuple(truth.shape)} "
                                 f"(or (starts, *that)), got {shape}")
            init = init.detach().to(dtype=truth.dtype, device=truth.device)
        starts = [truthful_starts(truth, init, low_t, high_t)]  # (1 + init's starts, n, B, m)
        rows = starts[0][:1]  # the truth (1, n, B, m)
        starts.extend(low_t + f * (rows - low_t) for f in search.shading)
        if search.restarts:
            noise = torch.rand((search.restarts, n, batch, m), generator=generator, dtype=truth.dtype,
                               device=truth.device)
            starts.append(low_t + (high_t - low_t) * noise)
        scale = step_scale(low_t, high_t)
        with torch.no_grad():  # the reports' gradients do not go through the parameter-only work
            call = prepared(mechanism, truth)
        best = ascend(call, torch.cat(starts), search, low_t, high_t, scale)
        return best.transpose(0, 1).contiguous()
