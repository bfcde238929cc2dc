"""Regret of found misreports, its statistics, and the test-time measurement of a mechanism.

Agent ``i``'s regret at ``v`` is ``max(0, u_i(v; (v'_i, v_-i)) - u_i(v; v))`` for its misreport ``v'_i``.  Two
conventions are reported: RegretNet's mean over the agents (``regret_mean_over_agents``) and the paper's
tables' sum over them (``regret_sum_over_agents``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from adversary.deviation import check_domain, check_valuations, prepared
from adversary.search import TEST_SEARCH, MisreportSearch, find_misreports
from mechanisms.base import utility
from utils.checks import Bounds, check_positive_int
from mechanisms.demand import Demand
from mechanisms.prepared import PreparedCall

__all__ = ["Measurement", "RegretSummary", "RegretTerms", "measure", "regret", "regret_statistics", "regret_terms"]


class RegretTerms(NamedTuple):
    """What :func:`regret` returns.

    regret:     ``(batch, agents)`` per-sample, per-agent regret (>= 0).
    allocation: ``(batch, agents, items)`` allocation of the truthful bids.
    payment:    ``(batch, agents)`` payments of the truthful bids.
    """

    regret: Tensor
    allocation: Tensor
    payment: Tensor


def regret_terms(call: PreparedCall, misreports: Tensor) -> RegretTerms:
    """:func:`regret` without input checks (no host synchronization), for ``call`` bound to the valuations."""
    allocation, payment = call.truthful()
    truthful = utility(call.valuations, allocation, payment)  # (B, n)
    rows = misreports.detach().transpose(0, 1).unsqueeze(0)  # (1, n, B, m)
    deviated = call.utilities(rows)[0]  # (B, n)
    return RegretTerms(F.relu(deviated - truthful), allocation, payment)


def regret(mechanism: nn.Module, valuations: Tensor, misreports: Tensor) -> RegretTerms:
    """Per-sample, per-agent regret ``(batch, agents)`` of ``misreports`` and the truthful outcome.

    ``misreports`` ``(batch, agents, items)`` (row ``i``: agent ``i``'s report; detached here), as
    :func:`find_misreports` returns.  Differentiable in the mechanism's parameters (prepared in the current grad mode).
    """
    check_valuations(valuations)
    if not isinstance(misreports, Tensor) or misreports.shape != valuations.shape:
        shape = tuple(misreports.shape) if isinstance(misreports, Tensor) else type(misreports).__name__
        raise ValueError(f"misreports must have the valuations' shape {tuple(valuations.shape)}, got {shape}")
    return regret_terms(prepared(mechanism, valuations), misreports)


@dataclass(frozen=True)
class RegretSummary:
    """Regret over a set of profiles (``std``: population standard deviation over the profiles).

    regret_mean_over_agents_*:  per-profile regret averaged over the agents (RegretNet's convention).
    regret_sum_over_agents_*:   per-profile regret summed over the agents (the paper's tables).
    regret_per_agent:           mean regret of each agent.
    """

    regret_mean_over_agents_mean: float
    regret_mean_over_agents_std: float
    regret_mean_over_agents_max: float
    regret_sum_over_agents_mean: float
    regret_sum_over_agents_std: float
    regret_sum_over_agents_max: float
    regret_per_agent: list[float]

    def to_dict(self) -> dict[str, float | int | list[float]]:
        """The fields as a plain dict (JSON-serializable)."""
        return asdict(self)


@dataclass(frozen=True)
class Measurement(RegretSummary):
    """Test-time metrics of a mechanism: :class:`RegretSummary` and (``std`` over samples)

    revenue_*:                  sum of the agents' payments per sample.
    ir_violation_max:           largest ``max(0, -u_i)`` of a truthful utility.
    ir_violation_fraction:      fraction of samples where some agent's truthful utility is below -1e-6.
    allocation_violation_max:   largest demand-constraint violation (:meth:`Demand.violation`).
    """

    n_samples: int
    revenue_mean: float
    revenue_std: float
    ir_violation_max: float
    ir_violation_fraction: float
    allocation_violation_max: float


def regret_statistics(regret: Tensor) -> dict[str, float | list[float]]:
    """Mean, std (population) and max over the profiles of per-profile regret ``(samples, agents)``,
    averaged and summed over the agents, and each agent's mean: the fields of :class:`RegretSummary`."""
    regret = regret.double()
    stats: dict[str, float | list[float]] = {}
    for convention, per_profile in (("mean_over_agents", regret.mean(1)), ("sum_over_agents", regret.sum(1))):
        stats[f"regret_{convention}_mean"] = per_profile.mean().item()
        stats[f"regret_{convention}_std"] = per_profile.std(correction=0).item()
        stats[f"regret_{convention}_max"] = per_profile.max().item()
    stats["regret_per_agent"] = regret.mean(0).tolist()
    return stats


def measure(mechanism: nn.Module, valuations: Tensor, search: MisreportSearch = TEST_SEARCH, low: Bounds | Tensor = 0.0,
            high: Bounds | Tensor = 1.0, batch_size: int = 1024, generator: torch.Generator | None = None,
            progress: bool = False, demand: Demand | str | None = None) -> Measurement:
    """Revenue, regret, IR and feasibility of ``mechanism`` on ``valuations`` ``(samples, agents, items)``.

    Misreports are searched with :func:`find_misreports` (default: the paper's test search) in batches of
    ``batch_size`` samples.  Feasibility is checked against ``demand`` (default: ``mechanism.demand``).
    """
    check_valuations(valuations)
    demand = demand if demand is not None else getattr(mechanism, "demand", None)
    if demand is None:
        raise ValueError("the mechanism has no .demand: pass demand=... to check its allocations")
    demand = demand if isinstance(demand, Demand) else Demand(demand)
    check_positive_int(batch_size, "batch_size")
    check_domain(valuations, low, high)
    revenue, regrets, utilities, violations = [], [], [], []
    for chunk in tqdm(valuations.split(batch_size), desc="measure", disable=not progress):
        misreports = find_misreports(mechanism, chunk, search, low, high, generator)
        with torch.no_grad():
            terms = regret(mechanism, chunk, misreports)
            revenue.append(terms.payment.sum(-1))
            regrets.append(terms.regret)
            utilities.append(utility(chunk, terms.allocation, terms.payment))
            violations.append(demand.violation(terms.allocation))
    revenue_all = torch.cat(revenue).double()
    utility_all = torch.cat(utilities).double()
    return Measurement(n_samples=len(revenue_all), revenue_mean=revenue_all.mean().item(),
                       revenue_std=revenue_all.std(correction=0).item(), **regret_statistics(torch.cat(regrets)),
                       ir_violation_max=max(0.0, (-utility_all).max().item()),
                       ir_violation_fraction=(utility_all < -1e-6).any(1).double().mean().item(),
                       allocation_violation_max=torch.cat(violations).max().item())
