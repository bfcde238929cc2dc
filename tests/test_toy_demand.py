"""A demand type added as one file and one YAML (tests/toy_demand.py, tests/conf/demand/at_least_one.yaml).

``at_least_one``: at most ``k_i`` items for bidder ``i``, at least one item sold.  The truth here is the
definition itself, enumerated (tests/brute_force.py with ``minimum_sold=1``): the Sinkhorn marginals reach
the same best welfare, VCG picks the same allocation and charges the Clarke payments of the definition, and
a Sinkhorn auction trained on it in-process makes allocations inside the convex hull of the definition's
0/1 allocations (an LP).  docs/extending.md shows the file and runs the example.
"""

from __future__ import annotations

import copy
import itertools
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from baselines import applicable_baselines
from distributions import Setting
from mechanisms.demand import Demand
from baselines.references import optimal_mechanism
from mechanisms.regretnet import RegretNet
from baselines.vcg import VCG
from runs.checkpoints import load_checkpoint
from tests.brute_force import best_welfare, clarke_payments, owners_allocation
from tests.test_config import make_config
from tests.test_demand import _lp_welfare
from tests.test_training import TINY
from tests.toy_demand import AtLeastOne
from runs.config import build_components
from runs.run import run

ROOT = Path(__file__).resolve().parents[1]
SEARCH_PATH = f"hydra.searchpath=[file://{ROOT / 'tests' / 'conf'}]"  # adds tests/conf/demand/at_least_one.yaml
# (agents, items, k): one bidder taking one or two items, per-bidder k, more bidders than items
SETTINGS = [(1, 2, 2), (1, 3, 2), (2, 3, 1), (2, 3, (1, 2)), (3, 2, 1)]


def _allocations(n: int, m: int, capacities: list[int]) -> np.ndarray:
    """Every 0/1 allocation ``(V, n, m)`` of the definition: at most ``capacities[i]`` items each, at least one sold."""
    found = []
    for owners in itertools.product([None, *range(n)], repeat=m):
        counts = [owners.count(i) for i in range(n)]
        if all(c <= k for c, k in zip(counts, capacities)) and sum(counts) >= 1:
            found.append(owners_allocation(owners, n).numpy())
    return np.stack(found)


def _hull_distance(allocation: np.ndarray, vertices: np.ndarray) -> float:
    """Max-norm distance of ``allocation`` ``(n, m)`` to the convex hull of ``vertices`` ``(V, n, m)`` (an LP)."""
    count, size = len(vertices), allocation.size
    points = vertices.reshape(count, size).T  # (n m, V)
    x = allocation.reshape(size)
    slack = -np.ones((size, 1))
    result = linprog(
        c=[0.0] * count + [1.0],  # variables: the weights of the vertices, then the distance t
        A_ub=np.block([[-points, slack], [points, slack]]), b_ub=np.concatenate([-x, x]),  # |x - points @ w| <= t
        A_eq=[[1.0] * count + [0.0]], b_eq=[1.0], bounds=(0, None), method="highs",
    )
    assert result.status == 0, result.message
    return float(result.fun)


def test_the_docs_show_the_file() -> None:
    page = (ROOT / "docs" / "extending.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", page, flags=re.S | re.M)
    assert (ROOT / "tests" / "toy_demand.py").read_text() in blocks


@pytest.mark.parametrize("n, m, k", SETTINGS)
def test_the_marginals_encode_the_definition(n: int, m: int, k) -> None:
    """The transport LP with the toy's marginals reaches the definition's best welfare (negative values too)."""
    demand = Demand("at_least_one", k)
    assert isinstance(demand, AtLeastOne)
    a, b = (x.long().tolist() for x in demand.marginals(n, m))
    rng = np.random.default_rng(0)
    for _ in range(10):
        values = rng.normal(size=(n, m))
        brute, _ = best_welfare(values.tolist(), list(range(n)), demand.capacities(n, m), exact=False, minimum_sold=1)
        assert _lp_welfare(values, a, b) == pytest.approx(brute, abs=1e-9)


@pytest.mark.parametrize("n, m, k", SETTINGS)
def test_vcg_matches_brute_force(n: int, m: int, k) -> None:
    vcg = VCG(n, m, AtLeastOne(k))
    bids = torch.randn(8, n, m, dtype=torch.float64)
    bids[0] = -bids[0].abs()  # nobody wants anything: an item is sold all the same
    allocation, payment = vcg(bids)
    assert float(allocation[0].sum()) == 1.0
    for b in range(len(bids)):
        values = bids[b].tolist()
        _, owners = best_welfare(values, list(range(n)), vcg.capacities, exact=False, minimum_sold=1)
        assert len(owners) == 1  # continuous bids: the optimum is unique
        torch.testing.assert_close(allocation[b], owners_allocation(owners[0], n))
        brute = clarke_payments(values, allocation[b], vcg.capacities, exact=False, minimum_sold=1)
        torch.testing.assert_close(payment[b], torch.tensor(brute, dtype=torch.float64), rtol=0, atol=1e-12)


def test_the_references_and_baselines_read_what_the_toy_allows() -> None:
    """No free disposal: no Myerson for one item, no posted price or reserve; one bidder with k = 1 must take
    exactly one of two items, the exactly-one setting, whose optimum applies."""
    assert optimal_mechanism(Setting.uniform(2, 1, "unit")) is not None  # Myerson: the item may stay unsold
    assert optimal_mechanism(Setting.uniform(2, 1, AtLeastOne(1))) is None
    assert applicable_baselines(2, 3, AtLeastOne(1)) == ()
    assert sorted(_allocations(1, 2, [1]).tolist()) == [[[0.0, 1.0]], [[1.0, 0.0]]]  # exactly one of the two items
    exactly_one = optimal_mechanism(Setting.uniform(1, 2, "exactly_k"))
    assert optimal_mechanism(Setting.uniform(1, 2, AtLeastOne(1))).name == exactly_one.name
    assert optimal_mechanism(Setting.uniform(1, 2, AtLeastOne(2))) is None


def test_regretnet_takes_the_toy_only_where_a_softmax_head_fits() -> None:
    with pytest.raises(ValueError, match="RegretNet cannot represent at_least_one"):
        RegretNet(2, 3, AtLeastOne(1))
    mechanism = RegretNet(1, 2, AtLeastOne(1))  # exactly one item: the softmax over the items
    allocation, _ = mechanism(torch.rand(16, 1, 2))
    assert float(mechanism.demand.violation(allocation).max()) <= 1e-6


def _toy_config(*overrides: str, output_dir: Path | str = "unused"):
    return make_config(*TINY, SEARCH_PATH, "demand=at_least_one", "agents=2", "items=3", "demand.k=[1,2]",
                       *overrides, output_dir=output_dir)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """The tiny run (4 steps) of a Sinkhorn auction on the toy with 2 bidders, 3 items, k = (1, 2)."""
    directory = tmp_path_factory.mktemp("toy")
    run(_toy_config(output_dir=directory))
    return load_checkpoint(directory / "checkpoints" / "last.ckpt").mechanism


def test_a_sinkhorn_auction_trained_on_the_toy_is_feasible(trained) -> None:
    initial = build_components(_toy_config()).mechanism  # seeded: the run's initial weights
    assert trained.demand == AtLeastOne((1, 2))
    assert not torch.equal(trained.allocation_net.state_dict()["0.weight"], initial.allocation_net.state_dict()["0.weight"])
    vertices = _allocations(2, 3, [1, 2])
    tolerance = trained.settings.tol * 2  # the Sinkhorn stopping rule: row totals within tol of their marginal (<= 2)
    assert _hull_distance(np.zeros((2, 3)), vertices) > 0.1  # the LP sees an infeasible allocation
    reluctant = copy.deepcopy(trained)  # its allocation network scores every item as costly: it would sell nothing
    with torch.no_grad():
        reluctant.allocation_net[-1].bias += 5.0
    bids = torch.cat([torch.rand(32, 2, 3), 0.01 * torch.rand(32, 2, 3)])  # ordinary bids, and bids worth ~nothing
    with torch.no_grad():
        allocation = torch.cat([trained(bids)[0], reluctant(bids)[0]])
    assert float(allocation.sum((1, 2)).min()) >= 1 - tolerance  # an item is sold
    distances = [_hull_distance(x.double().numpy(), vertices) for x in allocation]
    assert max(distances) <= tolerance, max(distances)
    assert float(trained.demand.violation(allocation).max()) <= tolerance


def test_a_type_in_the_package_needs_one_file_and_one_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mechanisms/demand/<name>.py`` and ``conf/demand/<name>.yaml``: the override ``demand=<name>`` builds the run,
    nothing imports the module first (here the package's search path gains a temporary folder)."""
    import mechanisms.demand
    from mechanisms.demand import base
    from runs.config import validate_config

    name = "at_least_one_again"
    source = (ROOT / "tests" / "toy_demand.py").read_text()
    (tmp_path / f"{name}.py").write_text(source.replace('name = "at_least_one"', f'name = "{name}"'))
    (tmp_path / "conf" / "demand").mkdir(parents=True)
    (tmp_path / "conf" / "demand" / f"{name}.yaml").write_text(f"name: {name}\nk: 2\n")
    monkeypatch.setattr(mechanisms.demand, "__path__", [*mechanisms.demand.__path__, str(tmp_path)])
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # forget the type after the test
    cfg = make_config(*TINY, f"hydra.searchpath=[file://{tmp_path / 'conf'}]", f"demand={name}", "agents=2", "items=3")
    try:
        mechanism = validate_config(cfg).mechanism
    finally:
        sys.modules.pop(f"mechanisms.demand.{name}", None)
    assert type(mechanism.demand).__module__ == f"mechanisms.demand.{name}" and mechanism.demand.name == name
    # k = 2 for both bidders, 3 items, one empty slot fewer than the 4: a = (2, 2, 3 + 3 - 4), b = (1, 1, 1, 3)
    assert mechanism.row_marginals.tolist() == [2.0, 2.0, 2.0] and mechanism.col_marginals.tolist() == [1.0, 1.0, 1.0, 3.0]


def test_a_taken_name_is_refused() -> None:
    with pytest.raises(ValueError, match="demand name 'unit' is taken by mechanisms.demand.unit.Unit"):
        class Clash(AtLeastOne):  # noqa: F841 - defining it is the test
            name = "unit"
