"""The reference-revenue registry: known optima, VCG estimates, caching, bad settings."""

from __future__ import annotations

import math

import pytest

from baselines.optimal import MenuMechanism, Myerson
from baselines.references import _vcg_revenue, optimal_mechanism, references, vcg_revenue
from distributions import Setting
from mechanisms.demand import Demand


def _setting(demand: str = "unit", k: int = 1, agents: int = 1, items: int = 2, low: float = 0.0, high: float = 1.0) -> Setting:
    return Setting.uniform(agents, items, Demand(demand, k), low, high)


# (demand, k, agents, items, high) -> optimal revenue derived by hand (see baselines/optimal.py)
KNOWN = [
    ("unit", 1, 1, 2, 1.0, 2 / (3 * math.sqrt(3))),
    ("k_demand", 1, 1, 2, 1.0, 2 / (3 * math.sqrt(3))),
    ("exactly_k", 1, 1, 2, 1.0, 2 / 27),
    ("additive", 1, 1, 2, 1.0, 4 / 9 + 2 * math.sqrt(2) / 27),
    ("k_demand", 2, 1, 2, 2.0, 2 * (4 / 9 + 2 * math.sqrt(2) / 27)),
    ("unit", 1, 2, 1, 1.0, 5 / 12),
    ("additive", 1, 4, 1, 1.0, (3 + 1 / 16) / 5),
]


@pytest.mark.parametrize("demand,k,agents,items,high,optimum", KNOWN)
def test_known_optimal_revenues(demand: str, k: int, agents: int, items: int, high: float, optimum: float) -> None:
    result = references(_setting(demand, k, agents, items, high=high), samples=200)
    assert result.optimal == pytest.approx(optimum, rel=1e-12)
    mechanism = optimal_mechanism(_setting(demand, k, agents, items, high=high))
    assert mechanism is not None and mechanism.name == result.optimal_name
    assert (mechanism.n_agents, mechanism.n_items) == (agents, items)
    assert isinstance(mechanism, Myerson if items == 1 else MenuMechanism)


@pytest.mark.parametrize(
    "demand,k,agents,items,low",
    [("unit", 1, 2, 3, 0.0), ("exactly_k", 1, 2, 2, 0.0), ("exactly_k", 2, 1, 2, 0.0), ("unit", 1, 1, 2, 2.0)],
)
def test_unknown_optimum_is_none(demand: str, k: int, agents: int, items: int, low: float) -> None:
    setting = _setting(demand, k, agents, items, low=low, high=low + 1)
    result = references(setting, samples=100)
    assert result.optimal is None and result.optimal_name is None
    assert optimal_mechanism(setting) is None


@pytest.mark.parametrize("agents", [2, 3])
def test_vcg_single_item_is_expected_second_highest_value(agents: int) -> None:
    result = references(_setting("unit", 1, agents, 1))
    assert result.vcg_samples == 10_000
    assert abs(result.vcg - (agents - 1) / (agents + 1)) < 4 * result.vcg_stderr


def test_vcg_single_bidder_pays_nothing() -> None:
    assert references(_setting("additive", 1, 1, 2)).vcg == 0.0


@pytest.mark.parametrize("demand,items,paper", [("unit", 3, 0.048), ("exactly_k", 3, 0.049), ("unit", 15, 0.002)])
def test_vcg_agrees_with_paper_table_2(demand: str, items: int, paper: float) -> None:
    """Table 2 reports VCG revenue to three decimals on its own test set; allow rounding plus 4 standard errors."""
    result = references(_setting(demand, 1, 2, items))
    assert abs(result.vcg - paper) < 0.0005 + 4 * result.vcg_stderr


def test_vcg_estimate_is_seeded_and_cached() -> None:
    first = vcg_revenue(_setting("unit", 1, 2, 2), samples=500, seed=3)
    hits = _vcg_revenue.cache_info().hits
    assert vcg_revenue(_setting("unit", 1, 2, 2), samples=500, seed=3) == first
    assert _vcg_revenue.cache_info().hits == hits + 1
    assert vcg_revenue(_setting("unit", 1, 2, 2), samples=500, seed=4) != first


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"low": 1.0, "high": 1.0}, "low < high"),
        ({"demand": "bogus"}, "unknown demand"),
        ({"demand": "exactly_k", "k": 2, "agents": 2, "items": 3}, "exactly_k"),
        ({"samples": 0}, "samples"),
    ],
)
def test_bad_settings_raise(kwargs: dict, match: str) -> None:
    kwargs = dict(kwargs)
    samples = kwargs.pop("samples", 100)
    with pytest.raises(ValueError, match=match):
        references(_setting(**kwargs), samples=samples)
