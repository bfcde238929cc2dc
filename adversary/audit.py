"""An exhaustive regret audit for settings where every bidder reports at most 3 numbers.

The gradient misreport search (:mod:`adversary.search`) is a lower bound on
the true regret, and can be far too low where a mechanism's best response is a
jump that gradient ascent does not find from its starts (a posted price, a
menu, a learned mechanism on a plateau).  The audit does not rely on
gradients: for every agent ``i`` and profile ``v``, with the others truthful,

1. **grid**: agent ``i``'s utility ``u_i(v; (r, v_-i))`` is evaluated at every
   point ``r`` of a regular grid over its report domain ``[low_i, high_i]^m``
   (``points`` per dimension, both ends included: 101 x 101 for 2 items,
   31^3 for 3 items by default);
2. **local refinement**: from each of the ``refine_starts`` best grid points, a
   derivative-free shrinking local search: each round evaluates the ``3^m``
   points ``x + h d`` (``d`` in ``{-1, 0, 1}^m``), moves to the best and halves
   ``h`` (from half the grid spacing), ``refine_rounds`` times;
3. the audited regret is ``max(0, best utility - truthful utility)``.

Every evaluation is one mechanism call on a batch of bid profiles (on the
mechanism's device, without autograd, through its prepared call:
:func:`adversary.deviation.prepared`), in chunks of at most ``max_profiles``
profiles, so memory stays bounded whatever the grid; a tqdm bar counts the
chunks.  The audit is exhaustive up to the grid's resolution: a best response
confined to a region narrower than the grid spacing can still be missed, but
a jump of the allocation or payment anywhere in the domain cannot.

* :class:`AuditSettings` - grid points, refinement, chunk size;
* :func:`audit_misreports` - the best report per agent and profile and its regret;
* :func:`audit` - the summary (mean, std, max in both conventions) as :class:`AuditReport`.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from adversary.deviation import domain_bounds, prepared
from adversary.regret import RegretSummary, regret_statistics
from mechanisms.base import utility
from utils.checks import Bounds, check_int, is_int
from mechanisms.prepared import PreparedCall

__all__ = ["MAX_ITEMS", "AuditReport", "AuditResult", "AuditSettings", "audit", "audit_misreports", "default_points"]

MAX_ITEMS = 3
"""The audit grids every reported number: at most 3 per bidder (31^3 = 29,791 points)."""

def default_points(n_items: int) -> int:
    """Default grid points per dimension: 101 for 1 or 2 items (101^2 = 10,201), 31 for 3 (29,791)."""
    return 101 if n_items <= 2 else 31


@dataclass(frozen=True)
class AuditSettings:
    """Settings of the exhaustive audit.

    points:         grid points per reported number (``None``: :func:`default_points`).
    refine_starts:  best grid points refined per agent and profile (capped at the grid size).
    refine_rounds:  rounds of the shrinking local search (0: the grid only).
    max_profiles:   bid profiles per mechanism call (bounds the memory).
    """

    points: int | None = None
    refine_starts: int = 4
    refine_rounds: int = 10
    max_profiles: int = 65536

    def __post_init__(self) -> None:
        if self.points is not None and not is_int(self.points, 2):
            raise ValueError(f"AuditSettings.points must be an integer >= 2 or None, got {self.points!r}")
        for name, minimum in (("refine_starts", 1), ("refine_rounds", 0), ("max_profiles", 1)):
            check_int(getattr(self, name), f"AuditSettings.{name}", minimum)

    def grid_points(self, n_items: int) -> int:
        """Grid points per dimension for ``n_items`` items."""
        return default_points(n_items) if self.points is None else self.points


class AuditResult(NamedTuple):
    """What :func:`audit_misreports` returns (on the mechanism's device).

    regret:     ``(samples, agents)`` audited regret, ``>= 0``.
    misreports: ``(samples, agents, items)``, row ``i`` agent ``i``'s best report found.
    truthful:   ``(samples, agents)`` truthful utilities.
    """

    regret: Tensor
    misreports: Tensor
    truthful: Tensor


@dataclass(frozen=True)
class AuditReport(RegretSummary):
    """Summary of an audit: the audited regret (:class:`adversary.regret.RegretSummary`) and the grid."""

    n_samples: int
    grid_points: int
    grid_size: int
    refine_starts: int
    refine_rounds: int
    time_s: float


def _device(mechanism: nn.Module, fallback: torch.device) -> torch.device:
    for tensor in itertools.chain(mechanism.parameters(), mechanism.buffers()):
        return tensor.device
    return fallback


def _check(mechanism: nn.Module, valuations: Tensor) -> None:
    if not isinstance(valuations, Tensor) or valuations.dim() != 3:
        shape = tuple(valuations.shape) if isinstance(valuations, Tensor) else type(valuations).__name__
        raise ValueError(f"valuations must have shape (samples, agents, items), got {shape}")
    samples, n, m = valuations.shape
    if samples == 0 or n == 0 or m == 0:
        raise ValueError(f"valuations must be non-empty, got shape {tuple(valuations.shape)}")
    if m > MAX_ITEMS:
        raise ValueError(f"the audit grids each bidder's report: at most {MAX_ITEMS} items, got {m} (use the gradient search)")
    if not valuations.is_floating_point():
        raise ValueError(f"valuations must be a floating-point tensor, got {valuations.dtype}")
    if not bool(torch.isfinite(valuations).all()):
        raise ValueError("valuations contain NaN or Inf")
    for name, size in (("n_agents", n), ("n_items", m)):
        expected = getattr(mechanism, name, None)
        if isinstance(expected, int) and expected != size:
            raise ValueError(f"the mechanism has {name}={expected} but the valuations have {size}")


def _unit_grid(points: int, m: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """All ``points^m`` points of the regular grid over ``[0, 1]^m``, ``(points^m, m)``."""
    axis = torch.linspace(0.0, 1.0, points, dtype=dtype, device=device)
    return torch.cartesian_prod(*([axis] * m)).reshape(-1, m)


class _DeviationUtility:
    """Agent ``agent``'s utility at many reports, in calls of at most ``max_profiles`` profiles."""

    def __init__(self, call: PreparedCall, max_profiles: int, bar: tqdm) -> None:
        self.call, self.max_profiles, self.bar = call, max_profiles, bar

    def __call__(self, agent: int, reports: Tensor, begin: int = 0) -> Tensor:
        """``reports`` ``(b, P, m)`` in the profiles ``begin, ..., begin + b - 1`` -> utilities ``(b, P)``."""
        b, p, m = reports.shape
        own = self.call.valuations[begin : begin + b, agent]  # (b, m)
        flat_reports = reports.reshape(b * p, m)
        sample = torch.arange(b, device=reports.device).repeat_interleave(p)
        out = torch.empty(b * p, dtype=own.dtype, device=own.device)
        for start in range(0, b * p, self.max_profiles):
            stop = min(start + self.max_profiles, b * p)
            index = sample[start:stop]
            allocation, payment = self.call.deviate(agent, begin + index, flat_reports[start:stop])
            out[start:stop] = (allocation * own[index]).sum(-1) - payment
            self.bar.update(1)
        return out.view(b, p)


def audit_misreports(
    mechanism: nn.Module,
    valuations: Tensor,
    settings: AuditSettings = AuditSettings(),
    low: Bounds | Tensor = 0.0,
    high: Bounds | Tensor = 1.0,
    progress: bool = False,
) -> AuditResult:
    """Audited regret and best report of every agent in every profile of ``valuations`` ``(samples, agents, items)``.

    ``low``/``high``: the report domain (floats, one per agent, or ``(agents,
    items)`` tensors).  Runs on the mechanism's device (the first parameter or
    buffer's; else the valuations'), without autograd; the mechanism's
    train/eval mode is left as is.  Raises ``ValueError`` before any work on
    bad input: not ``(samples, agents, items)``, more than :data:`MAX_ITEMS`
    items, NaN/Inf, sizes that differ from the mechanism's, bad bounds.
    """
    if not isinstance(settings, AuditSettings):
        raise ValueError(f"settings must be an AuditSettings, got {type(settings).__name__}")
    _check(mechanism, valuations)
    device = _device(mechanism, valuations.device)
    valuations = valuations.detach().to(device)
    lo, hi = domain_bounds(low, high, valuations)  # (n, m)
    samples, n, m = valuations.shape
    points = settings.grid_points(m)
    grid = _unit_grid(points, m, valuations.dtype, device)  # (P, m)
    size = grid.shape[0]
    starts = min(settings.refine_starts, size)
    offsets = torch.cartesian_prod(*([torch.tensor([-1.0, 0.0, 1.0], dtype=valuations.dtype, device=device)] * m))
    offsets = offsets.reshape(-1, m)  # (3^m, m), the centre included
    chunk = max(1, settings.max_profiles // size)  # profiles per grid pass
    calls_grid = math.ceil(samples / chunk) * math.ceil(chunk * size / settings.max_profiles)
    calls_refine = math.ceil(samples * starts * len(offsets) / settings.max_profiles) * settings.refine_rounds
    bar = tqdm(total=n * (calls_grid + calls_refine), desc="audit", disable=not progress)

    regret = torch.zeros(samples, n, dtype=valuations.dtype, device=device)
    misreports = valuations.clone()
    with torch.no_grad():
        call = prepared(mechanism, valuations)
        deviation_utility = _DeviationUtility(call, settings.max_profiles, bar)
        allocation, payment = call.truthful()
        truthful = utility(valuations, allocation, payment)  # (samples, n)
        for agent in range(n):
            span = hi[agent] - lo[agent]  # (m,): unit coordinates x -> reports lo + span * x
            reports_grid = lo[agent] + span * grid  # (P, m) in the agent's domain
            # The grid, a few profiles at a time: the best `starts` grid points of every profile.
            best_parts, index_parts = [], []
            for begin in range(0, samples, chunk):
                count = min(chunk, samples - begin)
                gains = deviation_utility(agent, reports_grid.unsqueeze(0).expand(count, size, m), begin)
                top, index = gains.topk(starts, dim=1)  # (b, K)
                best_parts.append(top)
                index_parts.append(index)
            best = torch.cat(best_parts)  # (samples, K)
            x = grid[torch.cat(index_parts)]  # (samples, K, m) unit coordinates
            # The refinement, every profile at once: few, large mechanism calls.
            step = 0.5 / (points - 1)
            for _ in range(settings.refine_rounds):
                candidates = (x.unsqueeze(2) + step * offsets).clamp(0.0, 1.0)  # (samples, K, 3^m, m)
                reports = lo[agent] + span * candidates
                found = deviation_utility(agent, reports.reshape(samples, -1, m)).view(samples, starts, -1)
                top, which = found.max(-1)  # (samples, K)
                better = top > best
                chosen = candidates.gather(2, which.view(samples, starts, 1, 1).expand(samples, starts, 1, m))[:, :, 0]
                x = torch.where(better.unsqueeze(-1), chosen, x)
                best = torch.where(better, top, best)
                step /= 2
            top, which = best.max(1)  # (samples,)
            x_best = x.gather(1, which.view(samples, 1, 1).expand(samples, 1, m))[:, 0]
            regret[:, agent] = (top - truthful[:, agent]).clamp(min=0.0)
            misreports[:, agent] = lo[agent] + span * x_best
    bar.close()
    return AuditResult(regret, misreports, truthful)


def audit(
    mechanism: nn.Module,
    valuations: Tensor,
    settings: AuditSettings = AuditSettings(),
    low: Bounds | Tensor = 0.0,
    high: Bounds | Tensor = 1.0,
    progress: bool = False,
) -> AuditReport:
    """:func:`audit_misreports` summarized: mean, std and max of the audited regret in both conventions."""
    start = time.perf_counter()
    result = audit_misreports(mechanism, valuations, settings, low, high, progress)
    m = valuations.shape[2]
    points = settings.grid_points(m)
    return AuditReport(
        n_samples=result.regret.shape[0],
        grid_points=points,
        grid_size=points**m,
        refine_starts=min(settings.refine_starts, points**m),
        refine_rounds=settings.refine_rounds,
        **regret_statistics(result.regret),
        time_s=time.perf_counter() - start,
    )
