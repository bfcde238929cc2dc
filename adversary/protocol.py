"""The paper's test protocol, with VCG, the optimal mechanism and the truthful baselines on the same profiles.

:func:`run_protocol` runs the test search (:data:`PAPER_PROTOCOL`) on :func:`test_profiles`, adds
:func:`reference_revenues` and runs every further adversary beside the search (:func:`against_search`);
docs/evaluation.md describes the report.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from adversary.base import REGRET_KEYS, Adversary
from adversary.gradient import GradientSearch
from baselines import baseline_revenues, best_truthful_baseline
from baselines.references import optimal_mechanism
from baselines.vcg import VCG
from datamodules import ValuationDataModule
from distributions import Setting, ValuationDistribution

__all__ = ["PAPER_PROTOCOL", "against_search", "reference_revenues", "run_protocol", "test_profiles"]

PAPER_PROTOCOL = GradientSearch()
"""The paper's test search: 1000 Adam steps at lr 0.1 from the truth and 10 random starts (on 1000 profiles,
:data:`adversary.search.TEST_SAMPLES`)."""


def test_profiles(distribution: ValuationDistribution, samples: int, seed: int,
                  device: torch.device | str = "cpu") -> Tensor:
    """The test split ``(samples, agents, items)`` of ``ValuationDataModule(seed=seed, test_size=samples)``: with
    the run's distribution, seed, size and device type, the profiles ``train.py`` tested on."""
    data = ValuationDataModule(distribution.n_agents, distribution.n_items, train_size=1, val_size=1, test_size=samples,
                               batch_size=1, seed=seed, device=str(device), distribution=distribution)
    return next(iter(data.test_dataloader()))


def _mean_std(values: Tensor) -> tuple[float, float]:
    values = values.double()
    return values.mean().item(), values.std(correction=0).item()


def reference_revenues(valuations: Tensor, setting: Setting) -> dict[str, Any]:
    """VCG's, the known optimum's (else ``None``) and the truthful baselines' revenue on ``valuations``
    ``(samples, agents, items)`` of ``setting``, with the optimum's closed form and the best baseline."""
    baselines = baseline_revenues(valuations, setting)
    best = best_truthful_baseline(baselines)
    with torch.inference_mode():
        values = valuations.cpu().double()
        vcg_mean, vcg_std = _mean_std(VCG(setting.agents, setting.items, setting.demand)(values)[1].sum(-1))
        optimum = optimal_mechanism(setting)
        result: dict[str, Any] = {
            "vcg_revenue_mean": vcg_mean, "vcg_revenue_std": vcg_std,
            "baselines": {name: found.to_dict() for name, found in baselines.items()},
            "best_truthful_baseline": None if best is None else best[0],
            "best_truthful_baseline_revenue_mean": None if best is None else best[1]}
        if optimum is None:
            return {**result, "optimal_revenue_mean": None, "optimal_revenue_std": None,
                    "optimal_revenue_closed_form": None, "optimal_mechanism": None}
        opt_mean, opt_std = _mean_std(optimum(values)[1].sum(-1))
    return {**result, "optimal_revenue_mean": opt_mean, "optimal_revenue_std": opt_std,
            "optimal_revenue_closed_form": optimum.expected_revenue, "optimal_mechanism": optimum.name}


def run_protocol(mechanism: nn.Module, valuations: Tensor, setting: Setting, protocol: GradientSearch = PAPER_PROTOCOL,
                 *, seed: int = 0, progress: bool = False, adversaries: Sequence[Adversary] = ()) -> dict[str, Any]:
    """Test ``mechanism`` on ``valuations`` ``(samples, agents, items)`` of ``setting`` with ``protocol``'s search.

    ``seed`` seeds the random misreport starts.  Returns ``{"metrics": Measurement.to_dict(), "references":
    reference_revenues(...), "protocol": ..., "evaluation_time_s": ...}`` and, for every adversary,
    ``<adversary.name>``: :func:`against_search`'s report.
    """
    for adversary in adversaries:
        adversary.check(setting)
    start = time.perf_counter()
    metrics = protocol.regret(mechanism, valuations, setting, seed=seed, progress=progress).to_dict()
    elapsed = time.perf_counter() - start
    metrics["ir_violations"] = int(round(metrics["ir_violation_fraction"] * metrics["n_samples"]))
    report = {"metrics": metrics, "references": reference_revenues(valuations, setting),
              "protocol": {**asdict(protocol), "samples": len(valuations), "seed": seed}, "evaluation_time_s": elapsed}
    for adversary in adversaries:
        report[adversary.name] = against_search(adversary, mechanism, valuations, setting, search_metrics=metrics,
                                                protocol=protocol, seed=seed, progress=progress)
    return report


def against_search(adversary: Adversary, mechanism: nn.Module, valuations: Tensor, setting: Setting, *,
                   search_metrics: dict[str, Any] | None = None, protocol: GradientSearch = PAPER_PROTOCOL,
                   seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """``adversary`` (seeded by ``seed``) on the first ``adversary.samples`` profiles (``None``: all), with the
    protocol's search on the same profiles.

    Returns the adversary's report (:meth:`Adversary.regret` as a dict, with ``n_samples``) plus, under its
    ``comparison_key``, the gradient search's regret (:data:`REGRET_KEYS`) on those profiles:
    ``search_metrics`` (a :class:`~adversary.regret.Measurement` dict of all of ``valuations``)
    when every profile is attacked, else a search with ``protocol`` (seeded by ``seed``) on the subset.
    """
    adversary.check(setting)
    count = len(valuations) if adversary.samples is None else min(adversary.samples, len(valuations))
    subset = valuations[:count]
    report = adversary.regret(mechanism, subset, setting, seed=seed, progress=progress).to_dict()
    report.setdefault("n_samples", count)
    if search_metrics is None or count < len(valuations):
        search_metrics = protocol.regret(mechanism, subset, setting, seed=seed).to_dict()
    report[adversary.comparison_key] = {key: search_metrics[key] for key in REGRET_KEYS}
    return report
