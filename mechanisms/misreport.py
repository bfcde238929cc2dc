"""The misreport search and regret engine, shared by training and evaluation.

Agent ``i``'s regret at a valuation profile ``v`` is what it gains by reporting
``v'_i`` instead of ``v_i`` while everybody else reports truthfully:
``rgt_i = max(0, u_i(v; (v'_i, v_-i)) - u_i(v; v))``.  The best ``v'_i`` is
found by gradient ascent on the reported row, for every agent and sample at
once: with ``S = restarts + 1`` starts, each step is ONE mechanism call on
``S * agents * batch`` bid profiles, each equal to the truth except for one
agent's row.

* :func:`find_misreports` runs the search (few steps in training, many in evaluation);
* :func:`regret` turns misreports into regrets, differentiably in the mechanism's parameters;
* :func:`evaluate` reports revenue, regret (both conventions), IR and feasibility.

Two regret conventions are in use: RegretNet (Duetting et al.) averages the
per-agent regrets of a sample over the agents (``regret_mean_over_agents``),
the paper's tables sum them (``regret_sum_over_agents``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import math
from typing import Callable, NamedTuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechanisms.base import check_bids, utility
from mechanisms.checks import check_int, check_positive_int
from mechanisms.demand import Demand

__all__ = [
    "Evaluation",
    "MisreportSearch",
    "TEST_SAMPLES",
    "TEST_SEARCH",
    "TRAIN_SEARCH",
    "VAL_SEARCH",
    "RegretSummary",
    "RegretTerms",
    "ascend",
    "checked_forward",
    "domain_bounds",
    "evaluate",
    "find_misreports",
    "regret",
    "regret_statistics",
    "regret_terms",
    "trusted_forward",
    "truthful_starts",
]

Bound = Union[float, Tensor]
OPTIMIZERS = ("adam", "sgd")  # written out in ascend()


@dataclass(frozen=True)
class MisreportSearch:
    """Settings of the gradient-ascent misreport search.

    steps:     gradient steps per start (0: only compare the starts).
    lr:        optimizer learning rate (the paper: 0.1).
    restarts:  uniform random starts in addition to the truthful start.
    optimizer: ``"adam"`` (the paper) or ``"sgd"``.
    """

    steps: int = 25
    lr: float = 0.1
    restarts: int = 0
    optimizer: str = "adam"

    def __post_init__(self) -> None:
        for name in ("steps", "restarts"):
            value = getattr(self, name)
            check_int(value, f"MisreportSearch.{name}", minimum=0)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"MisreportSearch.lr must be positive, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"MisreportSearch.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")


# The one source of the searches' defaults (conf/model/augmented_lagrangian.yaml repeats them; a test compares).
TRAIN_SEARCH = MisreportSearch(25, 0.1, 0)
"""The paper's training search: 25 Adam steps at lr 0.1 from the truth."""
VAL_SEARCH = MisreportSearch(100, 0.1, 2)
"""Validation: stronger than training, 100 steps from the truth and 2 random starts."""
TEST_SEARCH = MisreportSearch(1000, 0.1, 10)
"""The paper's test protocol: 1000 Adam steps at lr 0.1 from the truth and 10 random starts ..."""
TEST_SAMPLES = 1000
"""... on 1000 test profiles."""


class RegretTerms(NamedTuple):
    """What :func:`regret` returns.

    regret:     ``(batch, agents)`` per-sample, per-agent regret (>= 0).
    allocation: ``(batch, agents, items)`` allocation of the truthful bids.
    payment:    ``(batch, agents)`` payments of the truthful bids.
    """

    regret: Tensor
    allocation: Tensor
    payment: Tensor


def _check_valuations(valuations: Tensor) -> None:
    if not isinstance(valuations, Tensor) or valuations.dim() != 3:
        shape = tuple(valuations.shape) if isinstance(valuations, Tensor) else type(valuations).__name__
        raise ValueError(f"valuations must have shape (batch, agents, items), got {shape}")
    check_bids(valuations, valuations.shape[1], valuations.shape[2])


def domain_bounds(low: Bound, high: Bound, valuations: Tensor) -> tuple[Tensor, Tensor]:
    """Report domain bounds as ``(agents, items)`` tensors.

    Each bound is a float, a list/tuple with one float per agent (the data
    config's form), or a tensor broadcastable to ``(agents, items)`` (e.g. the
    ``(agents, 1)`` buffers of the training module).
    """
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
            raise ValueError(
                f"low and high must be floats, one float per agent, or tensors broadcastable to (agents, items) = ({n}, {m})"
            ) from error
    lo, hi = bounds
    if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()) or bool((lo > hi).any()):
        raise ValueError("low and high must be finite with low <= high")
    return lo, hi


def _bounds(low: Bound, high: Bound, valuations: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`domain_bounds` as ``(1, agents, 1, items)`` tensors, the layout of the misreport rows."""
    _, n, m = valuations.shape
    lo, hi = domain_bounds(low, high, valuations)
    return lo.reshape(1, n, 1, m), hi.reshape(1, n, 1, m)


Forward = Callable[[Tensor], tuple[Tensor, Tensor]]


def _check_domain(valuations: Tensor, low: Bound, high: Bound) -> None:
    """Raise ``ValueError`` unless every valuation lies in ``[low, high]`` (the domain misreports are searched in)."""
    lo, hi = (x.reshape(1, *x.shape[1::2]) for x in _bounds(low, high, valuations))  # (1, agents, items)
    slack = 1e-6 * float((hi - lo).abs().max().clamp(min=1.0))
    outside = (valuations.detach() < lo - slack) | (valuations.detach() > hi + slack)
    if bool(outside.any()):
        value = valuations.detach()[outside][0].item()
        raise ValueError(
            f"valuations must lie in the value domain [low, high] (here [{lo.min().item():g}, {hi.max().item():g}]); "
            f"got {value:g}: pass the domain as low=/high=, or rescale the valuations"
        )


def checked_forward(mechanism: nn.Module) -> Forward:
    """``mechanism(bids)``, checked against the contract ``(allocation, payment)`` (shapes only)."""

    def forward(bids: Tensor) -> tuple[Tensor, Tensor]:
        output = mechanism(bids)
        if not (isinstance(output, tuple) and len(output) == 2):
            raise ValueError(f"a mechanism must return (allocation, payment), got {type(output).__name__}")
        allocation, payment = output
        if tuple(allocation.shape) != tuple(bids.shape) or tuple(payment.shape) != tuple(bids.shape[:2]):
            raise ValueError(
                f"a mechanism must return allocation {tuple(bids.shape)} and payment {tuple(bids.shape[:2])}, "
                f"got {tuple(allocation.shape)} and {tuple(payment.shape)}"
            )
        return allocation, payment

    return forward


def trusted_forward(mechanism: nn.Module) -> Forward:
    """The mechanism's forward without input checks (no host synchronization), for captured hot loops."""
    return getattr(mechanism, "allocate_and_pay", mechanism)


def _deviation_utility(forward: Forward, valuations: Tensor, rows: Tensor) -> Tensor:
    """Each agent's true utility when it alone reports its row of ``rows``.

    ``valuations`` is ``(batch, agents, items)``; ``rows`` is ``(starts, agents,
    batch, items)``, ``rows[s, i, b]`` being agent ``i``'s report in sample ``b``.
    One mechanism call on ``starts * agents * batch`` profiles; returns
    ``(starts, batch, agents)``.
    """
    starts, n, batch, m = rows.shape
    own = torch.eye(n, dtype=torch.bool, device=rows.device).view(1, n, 1, n, 1)
    profiles = torch.where(own, rows.unsqueeze(3), valuations.view(1, 1, batch, n, m))  # (S, n, B, n, m)
    allocation, payment = forward(profiles.reshape(starts * n * batch, n, m))
    own_allocation = allocation.view(starts, n, batch, n, m).diagonal(dim1=1, dim2=3)  # (S, B, m, n)
    own_payment = payment.view(starts, n, batch, n).diagonal(dim1=1, dim2=3)  # (S, B, n)
    return (own_allocation * valuations.transpose(1, 2)).sum(2) - own_payment


_BETAS, _ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


def ascend(forward: Forward, truth: Tensor, rows: Tensor, search: MisreportSearch, low: Tensor, high: Tensor) -> Tensor:
    """Projected gradient ascent from every start; the best row of each agent and sample ``(agents, batch, items)``.

    ``truth`` is ``(batch, agents, items)``; ``rows`` ``(starts, agents, batch,
    items)`` the starts (``rows[0]`` is kept if nothing beats it); ``low`` and
    ``high`` ``(1, agents, 1, items)``.  The optimizer is written out (Adam with
    torch's defaults and bias correction, or plain SGD) so that every step
    count is a Python constant: no host synchronization, no data-dependent
    branch, hence safe to capture in a CUDA graph once the inputs are checked.
    """
    starts, n, batch, m = rows.shape
    best_rows = rows[0].detach().clone()  # (n, B, m)
    best_utility = torch.full((n, batch), -torch.inf, dtype=truth.dtype, device=truth.device)
    first = torch.zeros_like(rows) if search.optimizer == "adam" else None
    second = torch.zeros_like(rows) if search.optimizer == "adam" else None
    rows = rows.detach()
    for step in range(search.steps + 1):
        last = step == search.steps
        rows = rows.requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            gains = _deviation_utility(forward, truth, rows).permute(0, 2, 1)  # (S, n, B)
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
                rows = rows + search.lr * grad
            else:
                t = step + 1
                first = first.mul(_BETAS[0]).add_(grad, alpha=1 - _BETAS[0])
                second = second.mul(_BETAS[1]).addcmul_(grad, grad, value=1 - _BETAS[1])
                denom = (second.sqrt() / math.sqrt(1 - _BETAS[1] ** t)).add_(_ADAM_EPS)
                rows = rows.addcdiv(first, denom, value=search.lr / (1 - _BETAS[0] ** t))
            rows = torch.maximum(torch.minimum(rows, high), low)
    return best_rows


def truthful_starts(valuations: Tensor, init: Tensor | None, low: Tensor, high: Tensor) -> Tensor:
    """The search's starts ``(starts, agents, batch, items)``: the truth, then ``init`` clamped to ``[low, high]``.

    ``valuations`` and ``init`` are ``(batch, agents, items)`` (``init``: a warm start, e.g. the
    misreports found on the same profiles earlier); ``low``/``high`` ``(1, agents, 1, items or 1)``.
    """
    truth = valuations.transpose(0, 1).unsqueeze(0)
    if init is None:
        return truth
    return torch.cat([truth, torch.minimum(torch.maximum(init.transpose(0, 1).unsqueeze(0), low), high)])


def find_misreports(
    mechanism: nn.Module,
    valuations: Tensor,
    search: MisreportSearch = MisreportSearch(),
    low: Bound = 0.0,
    high: Bound = 1.0,
    generator: torch.Generator | None = None,
    init: Tensor | None = None,
) -> Tensor:
    """Best misreport of every agent in every sample, by projected gradient ascent.

    Starts from the truth, from ``init`` when given (e.g. the misreports found
    on the same profiles earlier: a warm start), and from ``search.restarts``
    uniform random reports in ``[low, high]``; after every optimizer step the reports are clamped to
    ``[low, high]`` (floats or tensors broadcastable to ``(agents, items)``).
    Every iterate of every start is scored, the truth included, and the best one
    is kept per agent and sample, so the result is never worse than the truth.

    Gradients are taken with ``torch.autograd.grad`` with respect to the reports
    only: the mechanism's parameter ``.grad`` is never touched, its train/eval
    mode is left as is, and the search runs even when called under ``no_grad``
    or ``inference_mode``.  A mechanism whose output does not depend
    differentiably on the bids (VCG, posted prices) is compared on its starts only.

    Args:
        mechanism: any module mapping bids ``(batch, agents, items)`` to ``(allocation, payment)``.
        valuations: true valuations ``(batch, agents, items)``.
        search: steps, learning rate, restarts and optimizer.
        low, high: the valuation domain.
        generator: random generator for the random starts.
        init: optional extra start ``(batch, agents, items)``, row ``i`` of sample ``b`` being
            agent ``i``'s starting report; detached and clamped to ``[low, high]``.

    Returns:
        Detached ``(batch, agents, items)`` tensor whose row ``i`` is agent ``i``'s best report.
    """
    _check_valuations(valuations)
    if generator is not None and generator.device.type != valuations.device.type:
        raise ValueError(f"generator is on {generator.device} but valuations on {valuations.device}; create it there")
    _check_domain(valuations, low, high)
    with torch.inference_mode(False), torch.enable_grad():
        low_t, high_t = _bounds(low, high, valuations)
        truth = valuations.detach().clone()  # a normal tensor even if created in inference mode
        batch, n, m = truth.shape
        if init is not None:
            if not isinstance(init, Tensor) or init.shape != truth.shape:
                shape = tuple(init.shape) if isinstance(init, Tensor) else type(init).__name__
                raise ValueError(f"init must have the valuations' shape {tuple(truth.shape)}, got {shape}")
            init = init.detach().to(dtype=truth.dtype, device=truth.device)
        starts = [truthful_starts(truth, init, low_t, high_t)]  # (1 or 2, n, B, m)
        if search.restarts:
            noise = torch.rand(
                (search.restarts, n, batch, m), generator=generator, dtype=truth.dtype, device=truth.device
            )
            starts.append(low_t + (high_t - low_t) * noise)
        best = ascend(checked_forward(mechanism), truth, torch.cat(starts), search, low_t, high_t)
        return best.transpose(0, 1).contiguous()


def regret_terms(forward: Forward, valuations: Tensor, misreports: Tensor) -> RegretTerms:
    """:func:`regret` without input checks (no host synchronization)."""
    allocation, payment = forward(valuations)
    truthful = utility(valuations, allocation, payment)  # (B, n)
    rows = misreports.detach().transpose(0, 1).unsqueeze(0)  # (1, n, B, m)
    deviated = _deviation_utility(forward, valuations, rows)[0]  # (B, n)
    return RegretTerms(F.relu(deviated - truthful), allocation, payment)


def regret(mechanism: nn.Module, valuations: Tensor, misreports: Tensor) -> RegretTerms:
    """Per-sample, per-agent regret ``(batch, agents)`` of ``misreports`` and the truthful outcome.

    ``misreports`` is ``(batch, agents, items)``, row ``i`` being agent ``i``'s
    report (as returned by :func:`find_misreports`; it is detached here).  Uses
    one truthful forward and one forward on the ``agents * batch`` deviation
    profiles; the result is differentiable in the mechanism's parameters.
    """
    _check_valuations(valuations)
    if not isinstance(misreports, Tensor) or misreports.shape != valuations.shape:
        shape = tuple(misreports.shape) if isinstance(misreports, Tensor) else type(misreports).__name__
        raise ValueError(f"misreports must have the valuations' shape {tuple(valuations.shape)}, got {shape}")
    return regret_terms(checked_forward(mechanism), valuations, misreports)


@dataclass(frozen=True)
class RegretSummary:
    """Regret over a set of profiles (``std``: population standard deviation over the profiles).

    regret_mean_over_agents_*:  per-profile regret averaged over the agents (RegretNet's convention).
    regret_sum_over_agents_*:   per-profile regret summed over the agents (the paper's tables).
    regret_per_agent:           mean regret of each agent.

    Built with :func:`regret_statistics`; :class:`Evaluation` and the audit's report extend it.
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
class Evaluation(RegretSummary):
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


def evaluate(
    mechanism: nn.Module,
    valuations: Tensor,
    search: MisreportSearch = TEST_SEARCH,
    low: Bound = 0.0,
    high: Bound = 1.0,
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
    progress: bool = False,
    demand: Demand | str | None = None,
) -> Evaluation:
    """Revenue, regret, IR and feasibility of ``mechanism`` on ``valuations`` ``(samples, agents, items)``.

    Misreports are searched with :func:`find_misreports` (default: the paper's
    1000 Adam steps at lr 0.1 from the truth and 10 random starts) in batches of
    ``batch_size`` samples (tqdm bar if ``progress``).  Feasibility is checked
    against ``demand`` or, by default, ``mechanism.demand``.  The mechanism's
    train/eval mode is left as is.
    """
    _check_valuations(valuations)
    demand = demand if demand is not None else getattr(mechanism, "demand", None)
    if demand is None:
        raise ValueError("the mechanism has no .demand: pass demand=... to check its allocations")
    demand = demand if isinstance(demand, Demand) else Demand(demand)
    check_positive_int(batch_size, "batch_size")
    _check_domain(valuations, low, high)
    revenue, regrets, utilities, violations = [], [], [], []
    for chunk in tqdm(valuations.split(batch_size), desc="evaluate", disable=not progress):
        misreports = find_misreports(mechanism, chunk, search, low, high, generator)
        with torch.no_grad():
            terms = regret(mechanism, chunk, misreports)
            revenue.append(terms.payment.sum(-1))
            regrets.append(terms.regret)
            utilities.append(utility(chunk, terms.allocation, terms.payment))
            violations.append(demand.violation(terms.allocation))
    revenue_all = torch.cat(revenue).double()
    utility_all = torch.cat(utilities).double()
    return Evaluation(
        n_samples=len(revenue_all),
        revenue_mean=revenue_all.mean().item(),
        revenue_std=revenue_all.std(correction=0).item(),
        **regret_statistics(torch.cat(regrets)),
        ir_violation_max=max(0.0, (-utility_all).max().item()),
        ir_violation_fraction=(utility_all < -1e-6).any(1).double().mean().item(),
        allocation_violation_max=torch.cat(violations).max().item(),
    )
