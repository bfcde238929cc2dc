"""Fit a baseline's prices to the setting's value distribution, and pick the best baseline (docs/baselines.md).

The prices maximize the mean revenue on a fixed seeded float32 sample (common random numbers): coordinate ascent
over the prices (:data:`SWEEPS` sweeps), each by a zooming grid search (:data:`GRID` points over its range, then
:data:`ZOOM` points around the best, :data:`LEVELS` times in all), unless :data:`_KNOWN` gives them in closed
form.  The revenue reported is measured on an independent sample of the same size, with its standard error.
Results are cached in memory, keyed on the :class:`~distributions.Setting`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from distributions import Setting, ValuationDistribution
from baselines.grand_bundle import GrandBundle
from baselines.itemwise_myerson import ItemwiseMyerson, myerson_reserves
from baselines.pay_to_choose import PayToChoose
from baselines.posted_price import PostedPrice
from baselines.vcg_reserve import VCGReserve
from utils.checks import check_int
from mechanisms.demand import Demand

__all__ = ["BASELINE_NAMES", "BASELINE_SAMPLES", "FittedBaseline", "applicable_baselines", "baseline_mechanism",
           "best_baseline", "fit_baseline"]

BASELINE_NAMES = ("posted_price", "vcg_reserve", "pay_to_choose", "itemwise_myerson", "grand_bundle")
BASELINE_SAMPLES = 10_000
"""Default profiles of the fitting sample (and of the independent revenue sample)."""
GRID, ZOOM, LEVELS, SWEEPS = 21, 9, 3, 2
SLOW_SAMPLES = 2_000
"""Fitting-sample cap for ``vcg_reserve`` where it needs the assignment solver (a Python loop over profiles)."""

_CLASSES = dict(zip(BASELINE_NAMES, (PostedPrice, VCGReserve, PayToChoose, ItemwiseMyerson, GrandBundle)))
_KNOWN: dict[str, Callable[[ValuationDistribution], tuple[float, ...] | None]] = {"itemwise_myerson": myerson_reserves}
"""Baselines whose optimal prices may have a closed form: the prices for a distribution, or ``None`` (then fitted)."""


@dataclass(frozen=True)
class FittedBaseline:
    """A baseline with fitted prices and its revenue.

    name:           one of :data:`BASELINE_NAMES`.
    mechanism:      the truthful mechanism (an ``nn.Module``: bids ``(batch, agents, items)`` -> allocation, payment).
    prices:         one price per bidder (posted_price, pay_to_choose), one reserve per item (itemwise_myerson)
                    or ``(reserve,)`` (vcg_reserve, grand_bundle).
    revenue:        mean revenue (sum over agents) on an independent sample of ``samples`` profiles.
    revenue_stderr: its standard error.
    samples:        profiles of the fitting sample (and of the revenue sample).
    """

    name: str
    mechanism: nn.Module
    prices: tuple[float, ...]
    revenue: float
    revenue_stderr: float
    samples: int

    def to_dict(self) -> dict[str, object]:
        """Name, prices, revenue, standard error and sample size (JSON-serialisable)."""
        return {"name": self.name, "prices": list(self.prices), "revenue": self.revenue,
                "revenue_stderr": self.revenue_stderr, "samples": self.samples}


def _demand(demand: Demand | str) -> Demand:
    return demand if isinstance(demand, Demand) else Demand(demand)


def applicable_baselines(agents: int, items: int, demand: Demand | str) -> tuple[str, ...]:
    """The baselines defined for the setting, each by its own ``applies``: posted_price and vcg_reserve with free
    disposal, pay_to_choose where every bidder's total is fixed (exactly_k), itemwise_myerson and grand_bundle where
    every bidder may take any subset of the items (additive)."""
    demand = _demand(demand)
    demand.capacities(agents, items)  # validates the setting
    return tuple(name for name in BASELINE_NAMES if _CLASSES[name].applies(demand, agents, items))


def baseline_mechanism(name: str, agents: int, items: int, demand: Demand | str, prices: Sequence[float]) -> nn.Module:
    """The baseline ``name`` with the given prices (see :class:`FittedBaseline` for their meaning)."""
    demand = _demand(demand)
    _check_name(name, agents, items, demand)
    return _CLASSES[name](agents, items, prices, demand)


def _check_name(name: str, agents: int, items: int, demand: Demand) -> None:
    if name not in BASELINE_NAMES:
        raise ValueError(f"unknown baseline {name!r}; baselines: {', '.join(BASELINE_NAMES)}")
    applicable = applicable_baselines(agents, items, demand)
    if name not in applicable:
        raise ValueError(f"baseline {name} does not apply to {agents}x{items} {demand.name} demand; "
                         f"applicable: {', '.join(applicable) or 'none'}")


def _maximize(objective: Callable[[float], float], low: float, high: float, start: float | None = None) -> float:
    """The best point of a zooming grid search of ``objective`` on ``[low, high]`` (ties: the smallest point);
    with ``start`` (a later sweep of the coordinate ascent) the zoom starts around it."""
    coarse = (high - low) / (GRID - 1)
    if start is None:
        lo, hi, points = low, high, GRID
    else:
        lo, hi, points = max(low, start - 2 * coarse), min(high, start + 2 * coarse), ZOOM
    best = lo
    for _ in range(LEVELS):
        grid = torch.linspace(lo, hi, points, dtype=torch.float64).tolist()
        values = [objective(x) for x in grid]
        best = grid[max(range(len(grid)), key=lambda j: (values[j], -j))]
        step = (hi - lo) / (points - 1)
        lo, hi, points = max(low, best - step), min(high, best + step), ZOOM
    return best


def _ranges(name: str, demand: Demand, distribution: ValuationDistribution) -> list[tuple[float, float]]:
    """The search interval of each price, from the support (``low_i``/``high_i``: agent ``i``'s extremes)."""
    lows, highs = distribution.agent_ranges()
    low, high = distribution.support  # (agents, items)
    if name == "itemwise_myerson":
        return list(zip(low.min(0).values.tolist(), high.max(0).values.tolist()))
    if name == "grand_bundle":
        return [(low.sum(-1).min().item(), high.sum(-1).max().item())]
    if name == "vcg_reserve":
        return [(min(lows), max(highs))]
    if name == "posted_price":
        return list(zip(lows, highs))
    capacities = demand.capacities(distribution.n_agents, distribution.n_items)
    return [(0.0, k * (hi - lo)) for k, lo, hi in zip(capacities, lows, highs)]


def _revenues(mechanism: nn.Module, values: Tensor) -> Tensor:
    with torch.inference_mode():
        return mechanism(values)[1].sum(-1).double()


@lru_cache(maxsize=None)
def _fit(name: str, setting: Setting, samples: int, seed: int) -> FittedBaseline:
    agents, items, demand, distribution = setting.agents, setting.items, setting.demand, setting.distribution
    ranges = _ranges(name, demand, distribution)
    known = _KNOWN[name](distribution) if name in _KNOWN else None
    prices = list(known) if known is not None else [(a + b) / 2 for a, b in ranges]
    make = _CLASSES[name]
    probe = make(agents, items, prices, demand)
    if isinstance(probe, VCGReserve) and probe.maps is None and not probe.vcg.per_item:
        samples = min(samples, SLOW_SAMPLES)
    fitting = distribution.sample(samples, torch.Generator().manual_seed(seed))

    def revenue_at(index: int, price: float) -> float:
        trial = list(prices)
        trial[index] = price
        return float(_revenues(make(agents, items, trial, demand), fitting).mean())

    sweeps = 0 if known is not None else SWEEPS if len(prices) > 1 else 1
    for sweep in range(sweeps):
        for index, (low, high) in enumerate(ranges):
            prices[index] = _maximize(lambda p: revenue_at(index, p), low, high, prices[index] if sweep else None)
    mechanism = make(agents, items, prices, demand)
    revenue = _revenues(mechanism, distribution.sample(samples, torch.Generator().manual_seed(seed + 1)))
    stderr = float(revenue.std()) / math.sqrt(samples) if samples > 1 else math.nan
    return FittedBaseline(name, mechanism, tuple(prices), float(revenue.mean()), stderr, samples)


def fit_baseline(name: str, setting: Setting, *, samples: int = BASELINE_SAMPLES, seed: int = 0) -> FittedBaseline:
    """Baseline ``name`` with prices fitted to values from ``setting``'s distribution (cached in memory)."""
    _check_name(name, setting.agents, setting.items, setting.demand)
    check_int(samples, "samples", 2)
    check_int(seed, "seed", 0)
    return _fit(name, setting, samples, seed)


def best_baseline(setting: Setting, *, samples: int = BASELINE_SAMPLES, seed: int = 0) -> FittedBaseline:
    """The applicable baseline with the highest fitted revenue (ties: the first in :data:`BASELINE_NAMES`)."""
    names = applicable_baselines(setting.agents, setting.items, setting.demand)
    if not names:
        raise ValueError(f"no truthful baseline applies to {setting.agents}x{setting.items} "
                         f"{setting.demand.name} demand")
    return max((fit_baseline(n, setting, samples=samples, seed=seed) for n in names), key=lambda f: f.revenue)
