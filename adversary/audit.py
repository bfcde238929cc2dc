"""An exhaustive regret audit for settings where every bidder reports at most 3 numbers (docs/regret_audit.md).

The gradient search (:mod:`adversary.search`) is a lower bound that misses best responses gradient ascent does
not reach.  The audit uses no gradients: for every agent and profile, with the others truthful, the agent's
utility on a regular grid over its report domain, then a shrinking local search (``3^m`` points ``x + h d``,
``d`` in ``{-1, 0, 1}^m``, halving ``h``) from the best grid points; the audited regret is
``max(0, best utility - truthful utility)``.  Exhaustive up to the grid's resolution: a jump of the allocation
or payment anywhere in the domain cannot be missed.  Mechanism calls hold at most ``max_profiles`` profiles.
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

__all__ = ["MAX_ITEMS", "AuditReport", "AuditResult", "AuditSettings", "audit", "audit_misreports"]

MAX_ITEMS = 3
"""The audit grids every reported number: at most 3 per bidder (31^3 = 29,791 points)."""


@dataclass(frozen=True)
class AuditSettings:
    """Settings of the exhaustive audit.

    points:         grid points per reported number (``None``: 101 for 1 or 2 items, 31 for 3).
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
        return (101 if n_items <= 2 else 31) if self.points is None else self.points


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


def _check(mechanism: nn.Module, valuations: Tensor) -> None:
    if not isinstance(valuations, Tensor) or valuations.dim() != 3 or 0 in valuations.shape:
        shape = tuple(valuations.shape) if isinstance(valuations, Tensor) else type(valuations).__name__
        raise ValueError(f"valuations must have a non-empty shape (samples, agents, items), got {shape}")
    _, n, m = valuations.shape
    if m > MAX_ITEMS:
        raise ValueError(f"the audit grids each bidder's report: at most {MAX_ITEMS} items, got {m} (use a search)")
    if not valuations.is_floating_point():
        raise ValueError(f"valuations must be a floating-point tensor, got {valuations.dtype}")
    if not bool(torch.isfinite(valuations).all()):
        raise ValueError("valuations contain NaN or Inf")
    for name, size in (("n_agents", n), ("n_items", m)):
        expected = getattr(mechanism, name, None)
        if isinstance(expected, int) and expected != size:
            raise ValueError(f"the mechanism has {name}={expected} but the valuations have {size}")


def audit_misreports(mechanism: nn.Module, valuations: Tensor, settings: AuditSettings = AuditSettings(),
                     low: Bounds | Tensor = 0.0, high: Bounds | Tensor = 1.0, progress: bool = False) -> AuditResult:
    """Audited regret and best report of every agent in every profile of ``valuations`` ``(samples, agents, items)``.

    ``low``/``high``: the report domain (floats, one per agent, or ``(agents, items)`` tensors).  Runs on the
    mechanism's device (its first parameter or buffer's; else the valuations'), without autograd.
    """
    if not isinstance(settings, AuditSettings):
        raise ValueError(f"settings must be an AuditSettings, got {type(settings).__name__}")
    _check(mechanism, valuations)
    device = next((t.device for t in itertools.chain(mechanism.parameters(), mechanism.buffers())), valuations.device)
    valuations = valuations.detach().to(device)
    lo, hi = domain_bounds(low, high, valuations)  # (n, m)
    samples, n, m = valuations.shape
    points = settings.grid_points(m)
    axis = torch.linspace(0.0, 1.0, points, dtype=valuations.dtype, device=device)
    grid = torch.cartesian_prod(*([axis] * m)).reshape(-1, m)  # (P, m): the regular grid over [0, 1]^m
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

        def deviation_utility(agent: int, reports: Tensor, begin: int = 0) -> Tensor:
            """``reports`` ``(b, P, m)`` in the profiles ``begin, ..., begin + b - 1`` -> utilities ``(b, P)``."""
            b, p, _ = reports.shape
            own = valuations[begin : begin + b, agent]  # (b, m)
            flat_reports, sample = reports.reshape(b * p, m), torch.arange(b, device=device).repeat_interleave(p)
            out = torch.empty(b * p, dtype=own.dtype, device=own.device)
            for first in range(0, b * p, settings.max_profiles):
                stop = min(first + settings.max_profiles, b * p)
                index = sample[first:stop]
                allocation, payment = call.deviate(agent, begin + index, flat_reports[first:stop])
                out[first:stop] = (allocation * own[index]).sum(-1) - payment
                bar.update(1)
            return out.view(b, p)

        allocation, payment = call.truthful()
        truthful = utility(valuations, allocation, payment)  # (samples, n)
        for agent in range(n):
            span = hi[agent] - lo[agent]  # (m,): unit coordinates x -> reports lo + span * x
            reports_grid = lo[agent] + span * grid  # (P, m) in the agent's domain
            # The grid, a few profiles at a time: the best `starts` grid points of every profile.
            parts = [deviation_utility(agent, reports_grid.expand(min(chunk, samples - begin), size, m), begin)
                     .topk(starts, dim=1) for begin in range(0, samples, chunk)]
            best = torch.cat([part.values for part in parts])  # (samples, K)
            x = grid[torch.cat([part.indices for part in parts])]  # (samples, K, m) unit coordinates
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


def audit(mechanism: nn.Module, valuations: Tensor, settings: AuditSettings = AuditSettings(),
          low: Bounds | Tensor = 0.0, high: Bounds | Tensor = 1.0, progress: bool = False) -> AuditReport:
    """:func:`audit_misreports` summarized: mean, std and max of the audited regret in both conventions."""
    start = time.perf_counter()
    result = audit_misreports(mechanism, valuations, settings, low, high, progress)
    m = valuations.shape[2]
    points = settings.grid_points(m)
    return AuditReport(n_samples=result.regret.shape[0], grid_points=points, grid_size=points**m,
                       refine_starts=min(settings.refine_starts, points**m), refine_rounds=settings.refine_rounds,
                       **regret_statistics(result.regret), time_s=time.perf_counter() - start)
