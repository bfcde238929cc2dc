"""The paper's test protocol, with VCG and the optimal mechanism evaluated on the same test profiles.

:func:`test_profiles` draws the test split of :class:`datamodules.ValuationDataModule`
(for a checkpoint, with the run's seed: the profiles ``train.py`` tested on);
:func:`run_protocol` runs the misreport engine (:func:`adversary.regret.measure`)
on them and adds :func:`reference_revenues`: the revenue of VCG, of the
known optimal mechanism (where one is known) and of every applicable truthful
baseline (:mod:`baselines`, prices fitted to the value
distribution) on the very same profiles, next to the optimum's closed form.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from adversary.audit import MAX_ITEMS, AuditSettings, audit
from adversary.regret import measure
from adversary.search import TEST_SAMPLES, TEST_SEARCH, MisreportSearch
from adversary.strong import StrongSettings, strong_regret
from datamodules import ValuationDataModule
from baselines import baseline_revenues, best_truthful_baseline
from mechanisms.demand import Demand
from distributions import Uniform, ValuationDistribution
from utils.checks import Bounds, check_positive_int, is_int
from baselines.references import optimal_mechanism
from baselines.vcg import VCG

__all__ = [
    "PAPER_PROTOCOL", "Protocol", "audit_against_search", "reference_revenues", "run_protocol", "strong_against_search",
    "test_profiles",
]



@dataclass(frozen=True)
class Protocol:
    """How a mechanism is tested (the defaults are the paper's).

    samples:    test valuation profiles.
    steps, lr:  Adam steps and learning rate of the misreport search.
    restarts:   random starts besides the truthful one.
    batch_size: profiles per chunk of the search (one progress-bar tick each).
    """

    samples: int = TEST_SAMPLES
    steps: int = TEST_SEARCH.steps
    lr: float = TEST_SEARCH.lr
    restarts: int = TEST_SEARCH.restarts
    batch_size: int = 100

    def __post_init__(self) -> None:
        for name in ("samples", "batch_size"):
            check_positive_int(getattr(self, name), name)
        MisreportSearch(self.steps, self.lr, self.restarts)  # raises ValueError on bad search settings

    @property
    def search(self) -> MisreportSearch:
        """The misreport search of this protocol."""
        return MisreportSearch(steps=self.steps, lr=self.lr, restarts=self.restarts)


PAPER_PROTOCOL = Protocol()


def test_profiles(
    distribution: ValuationDistribution, samples: int, seed: int, device: torch.device | str = "cpu"
) -> Tensor:
    """The test split ``(samples, agents, items)`` of ``ValuationDataModule(seed=seed, test_size=samples)`` on ``device``,
    drawn from ``distribution``.

    With the run's distribution, seed, size and device type these are the profiles ``train.py`` tested on.
    """
    data = ValuationDataModule(
        distribution.n_agents, distribution.n_items, train_size=1, val_size=1, test_size=samples, batch_size=1,
        seed=seed, device=str(device), distribution=distribution,
    )
    return next(iter(data.test_dataloader()))


def _mean_std(values: Tensor) -> tuple[float, float]:
    values = values.double()
    return values.mean().item(), values.std(correction=0).item()


def reference_revenues(valuations: Tensor, demand: Demand, distribution: ValuationDistribution) -> dict[str, Any]:
    """VCG's, the known optimal mechanism's and the truthful baselines' revenue on ``valuations`` ``(samples, agents, items)``
    drawn from ``distribution``.

    Returns ``vcg_revenue_mean``/``_std``; ``baselines``: for every applicable
    baseline (prices fitted to ``distribution``) its ``revenue_mean``/``_std`` on
    the same profiles, prices and fitted revenue; ``best_truthful_baseline``
    (the name of the highest-earning one, or ``None``) and its
    ``best_truthful_baseline_revenue_mean``; and, where an optimum is known for
    ``distribution`` (else ``None``), ``optimal_revenue_mean``/``_std``
    on the same profiles, ``optimal_revenue_closed_form`` and ``optimal_mechanism`` (its name).
    """
    _, n_agents, n_items = valuations.shape
    baselines = baseline_revenues(valuations, demand, distribution=distribution)
    best = best_truthful_baseline(baselines)
    with torch.inference_mode():
        vcg_mean, vcg_std = _mean_std(VCG(n_agents, n_items, demand)(valuations.cpu().double())[1].sum(-1))
        optimum = optimal_mechanism(demand.name, demand.k, n_agents, n_items, distribution=distribution)
        result: dict[str, Any] = {
            "vcg_revenue_mean": vcg_mean, "vcg_revenue_std": vcg_std,
            "baselines": {name: found.to_dict() for name, found in baselines.items()},
            "best_truthful_baseline": None if best is None else best[0],
            "best_truthful_baseline_revenue_mean": None if best is None else best[1],
        }
        if optimum is None:
            return {**result, "optimal_revenue_mean": None, "optimal_revenue_std": None,
                    "optimal_revenue_closed_form": None, "optimal_mechanism": None}
        opt_mean, opt_std = _mean_std(optimum(valuations.cpu().double())[1].sum(-1))
    return {**result, "optimal_revenue_mean": opt_mean, "optimal_revenue_std": opt_std,
            "optimal_revenue_closed_form": optimum.expected_revenue, "optimal_mechanism": optimum.name}


def _search(
    mechanism: nn.Module,
    valuations: Tensor,
    protocol: Protocol,
    low: Bounds | Tensor,
    high: Bounds | Tensor,
    seed: int,
    demand: Demand | None,
    progress: bool = False,
) -> dict[str, Any]:
    """:func:`adversary.regret.measure` with ``protocol``'s search, its random starts seeded by ``seed``, as a dict."""
    generator = torch.Generator(device=valuations.device).manual_seed(seed)
    return measure(
        mechanism, valuations, protocol.search, low=low, high=high, batch_size=protocol.batch_size,
        generator=generator, progress=progress, demand=demand,
    ).to_dict()


def run_protocol(
    mechanism: nn.Module,
    valuations: Tensor,
    protocol: Protocol = PAPER_PROTOCOL,
    *,
    distribution: ValuationDistribution | None = None,
    seed: int = 0,
    demand: Demand | None = None,
    progress: bool = False,
    audit_settings: AuditSettings | None = None,
    audit_samples: int | None = None,
) -> dict[str, Any]:
    """Test ``mechanism`` on ``valuations`` ``(samples, agents, items)`` with ``protocol``.

    ``distribution`` is the valuations' (default i.i.d. U[0, 1]): its support is the report domain, and it
    gives the references.  ``seed`` seeds the random misreport starts (a generator on the valuations'
    device).  Returns ``{"metrics": Measurement.to_dict(), "references":
    reference_revenues(...), "protocol": ..., "evaluation_time_s": ...}``;
    with ``audit_settings``, also ``"audit"``: :func:`adversary.audit.audit`'s
    report on the first ``audit_samples`` profiles (``None``: all) and, on
    those same profiles, the gradient search's regret (``"search_on_audited"``)
    for a like-for-like comparison.
    """
    demand = demand if demand is not None else getattr(mechanism, "demand", None)
    if demand is None:
        raise ValueError("the mechanism has no .demand: pass demand=...")
    if audit_samples is not None and not is_int(audit_samples):
        raise ValueError(f"audit_samples must be a positive integer or None, got {audit_samples!r}")
    if audit_settings is not None and valuations.shape[2] > MAX_ITEMS:
        raise ValueError(f"the regret audit covers at most {MAX_ITEMS} items per bidder, got {valuations.shape[2]}")
    if distribution is None:
        distribution = Uniform(valuations.shape[1], valuations.shape[2])
    lo, hi = (bound.to(valuations.device) for bound in distribution.support)  # (agents, items) each
    start = time.perf_counter()
    metrics = _search(mechanism, valuations, protocol, lo, hi, seed, demand, progress)
    elapsed = time.perf_counter() - start
    metrics["ir_violations"] = int(round(metrics["ir_violation_fraction"] * metrics["n_samples"]))
    report = {
        "metrics": metrics,
        "references": reference_revenues(valuations, demand, distribution),
        "protocol": {**asdict(protocol), "samples": len(valuations), "seed": seed},
        "evaluation_time_s": elapsed,
    }
    if audit_settings is not None:
        report["audit"] = audit_against_search(
            mechanism, valuations, audit_settings, audit_samples, search_metrics=metrics, protocol=protocol,
            low=lo, high=hi, seed=seed, demand=demand, progress=progress,
        )
    return report


REGRET_KEYS = tuple(
    f"regret_{convention}_over_agents_{stat}" for convention in ("mean", "sum") for stat in ("mean", "std", "max")
)


def audit_against_search(
    mechanism: nn.Module,
    valuations: Tensor,
    settings: AuditSettings,
    samples: int | None = None,
    *,
    search_metrics: dict[str, Any] | None = None,
    protocol: Protocol = PAPER_PROTOCOL,
    low: Bounds | Tensor = 0.0,
    high: Bounds | Tensor = 1.0,
    seed: int = 0,
    demand: Demand | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The audit on the first ``samples`` profiles (``None``: all), with the search's regret on the same profiles.

    Returns :meth:`adversary.audit.AuditReport.to_dict` plus
    ``search_on_audited``: the gradient search's regret (mean, std, max, both
    conventions) on the audited profiles: ``search_metrics`` (an
    :class:`~adversary.regret.Measurement` dict of all of ``valuations``)
    when every profile is audited, else a search with ``protocol`` on the subset.
    """
    count = len(valuations) if samples is None else min(samples, len(valuations))
    subset = valuations[:count]
    report = audit(mechanism, subset, settings, low=low, high=high, progress=progress).to_dict()
    report["search_on_audited"] = _search_regret(mechanism, valuations, count, search_metrics, protocol, low, high, seed, demand)
    return report


def _search_regret(
    mechanism: nn.Module,
    valuations: Tensor,
    count: int,
    search_metrics: dict[str, Any] | None,
    protocol: Protocol,
    low: Bounds | Tensor,
    high: Bounds | Tensor,
    seed: int,
    demand: Demand | None,
) -> dict[str, float]:
    """The gradient search's regret (:data:`REGRET_KEYS`) on the first ``count`` profiles: ``search_metrics``
    (a :class:`~adversary.regret.Measurement` dict of all of ``valuations``) when ``count`` is all, else searched."""
    if search_metrics is None or count < len(valuations):
        search_metrics = _search(mechanism, valuations[:count], protocol, low, high, seed, demand)
    return {key: search_metrics[key] for key in REGRET_KEYS}


def strong_against_search(
    mechanism: nn.Module,
    valuations: Tensor,
    settings: StrongSettings,
    samples: int | None = None,
    *,
    search_metrics: dict[str, Any] | None = None,
    protocol: Protocol = PAPER_PROTOCOL,
    low: Bounds | Tensor = 0.0,
    high: Bounds | Tensor = 1.0,
    seed: int = 0,
    demand: Demand | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The strong adversary (:func:`adversary.strong.strong_regret`, seeded by ``seed``) on the first ``samples``
    profiles (``None``: all), with the gradient search's regret on the same profiles (``search_on_same_profiles``,
    as :func:`audit_against_search`)."""
    count = len(valuations) if samples is None else min(samples, len(valuations))
    report = strong_regret(mechanism, valuations[:count], settings, low, high, seed=seed, progress=progress).to_dict()
    report["search_on_same_profiles"] = _search_regret(
        mechanism, valuations, count, search_metrics, protocol, low, high, seed, demand
    )
    return report
