"""Demand types to Sinkhorn marginals (section 4.1 of the paper).

The marginals are checked against the paper's table written out by hand, and
their meaning against brute force: the transport LP with these marginals
(scipy's exact assignment solver) reaches the same best welfare as enumerating
every feasible allocation of the demand type.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from mechanisms.demand import DEMAND_TYPES, Demand, marginals
from tests.brute_force import best_welfare

# (demand, k, agents, items, a, b): section 4.1 with the dummy agent last in a and the dummy item last in b.
PAPER_TABLE = [
    ("additive", 1, 2, 3, [3, 3, 3], [1, 1, 1, 6]),
    ("unit", 1, 2, 3, [1, 1, 3], [1, 1, 1, 2]),
    ("unit", 1, 3, 2, [1, 1, 1, 2], [1, 1, 3]),
    ("k_demand", 2, 2, 3, [2, 2, 3], [1, 1, 1, 4]),
    ("k_demand", (1, 2), 2, 3, [1, 2, 3], [1, 1, 1, 3]),
    ("exactly_k", 1, 2, 3, [1, 1, 1], [1, 1, 1, 0]),
    ("exactly_k", (1, 2), 2, 3, [1, 2, 0], [1, 1, 1, 0]),
    ("exactly_k", 2, 1, 5, [2, 3], [1, 1, 1, 1, 1, 0]),
]


@pytest.mark.parametrize(("demand", "k", "n", "m", "a", "b"), PAPER_TABLE)
def test_marginals_follow_the_paper(demand: str, k, n: int, m: int, a: list, b: list) -> None:
    got_a, got_b = marginals(demand, n, m, k, dtype=torch.float64)
    assert got_a.tolist() == a and got_b.tolist() == b
    assert got_a.dtype == got_b.dtype == torch.float64
    assert got_a.sum() == got_b.sum()  # a transport problem needs equal totals
    assert Demand(demand, k).exact == (demand == "exactly_k")
    assert Demand(demand, k).capacities(n, m) == a[:-1]  # the agents' marginals are their capacities


def _lp_welfare(values: np.ndarray, a: list, b: list) -> float:
    """Max welfare of the transport LP: cost -values, zero-cost dummy row and column, expanded to an assignment."""
    n, m = values.shape
    cost = np.zeros((n + 1, m + 1))
    cost[:n, :m] = -values
    rows = np.repeat(np.arange(n + 1), np.asarray(a, dtype=int))
    cols = np.repeat(np.arange(m + 1), np.asarray(b, dtype=int))
    expanded = cost[np.ix_(rows, cols)]
    r, c = linear_sum_assignment(expanded)
    return float(-expanded[r, c].sum())


@pytest.mark.parametrize(("demand", "k", "n", "m"), [(d, k, n, m) for d, k, n, m, _, _ in PAPER_TABLE])
def test_marginals_encode_the_demand_constraint(demand: str, k, n: int, m: int) -> None:
    """LP welfare with the marginals == brute-force welfare over allocations feasible for the demand."""
    a, b = (x.long().tolist() for x in marginals(demand, n, m, k))
    capacities = Demand(demand, k).capacities(n, m)
    rng = np.random.default_rng(0)
    for _ in range(10):
        values = rng.normal(size=(n, m))  # negative values too: free disposal matters
        brute, _ = best_welfare(values.tolist(), list(range(n)), capacities, exact=demand == "exactly_k")
        assert _lp_welfare(values, a, b) == pytest.approx(brute, abs=1e-9)


def test_demand_is_hashable_and_k_list_normalised() -> None:
    assert Demand("k_demand", [1, 2]) == Demand("k_demand", (1, 2))
    assert hash(Demand("k_demand", [1, 2])) == hash(Demand("k_demand", (1, 2)))


def test_unknown_demand_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown demand 'single'") as info:
        marginals("single", 2, 3)
    assert all(name in str(info.value) for name in DEMAND_TYPES)


@pytest.mark.parametrize(
    ("demand", "k", "n", "m", "message"),
    [
        ("exactly_k", 2, 2, 3, r"exactly_k needs items >= sum\(k\)"),
        ("exactly_k", (1, 3), 2, 3, r"exactly_k needs items >= sum\(k\)"),
        ("k_demand", (1, 2, 1), 2, 3, "k has 3 entries but there are 2 agents"),
        ("exactly_k", (1,), 2, 3, "k has 1 entries but there are 2 agents"),
        ("k_demand", 0, 2, 3, "k must be a positive integer"),
        ("k_demand", 1.5, 2, 3, "k must be a positive integer"),
        ("k_demand", True, 2, 3, "k must be a positive integer"),
        ("k_demand", (), 2, 3, "k must be a positive integer"),
        ("unit", 1, 0, 3, "agents must be a positive integer"),
        ("unit", 1, 2, -1, "items must be a positive integer"),
        ("unit", 1, 2.0, 3, "agents must be a positive integer"),
    ],
)
def test_invalid_settings_raise(demand: str, k, n, m, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        marginals(demand, n, m, k)
    assert "\n" not in str(info.value)
