"""The valuation distributions (distributions/): sampling, support, errors, references, config and training.

Independent truths: the sampler the data module used before the package (re-implemented here), scipy's
distributions (Kolmogorov-Smirnov), the published benchmark revenues and closed forms (integrated
numerically with scipy, a second implementation).
"""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from scipy import integrate, stats

from adversary.search import MisreportSearch, find_misreports
from datamodules import ValuationDataModule
from datamodules.valuations import derive_seed
from distributions import (
    Exponential, Setting, Triangle, Uniform, distribution_node, exponential_bundle_price, exponential_myerson_revenue,
    named_distribution, triangle_bundle_revenue,
)
from mechanisms.demand import Demand
from baselines.optimal import manelli_vincent_revenue
from baselines.references import optimal_mechanism, references
from tests.test_config import make_config
from tests.test_training import TINY
from runs.config import validate_config
from runs.resume_checks import resume_differences
from runs.run import run

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [Uniform(2, 3, [0.0, 2.0], [1.0, 5.0]), Uniform(1, 2, [[4, 4]], [[16, 7]]), Exponential(3, 1, 3.0), Triangle(2)]


def _old_sampler(n, agents, items, low, high, generator):
    """The data module's sampler before the distributions package (datamodules/valuations.py at f5c13b8)."""
    values = [low] * agents if isinstance(low, (int, float)) else list(low)
    tops = [high] * agents if isinstance(high, (int, float)) else list(high)
    lo = torch.tensor(values, dtype=torch.float32).unsqueeze(-1)
    hi = torch.tensor(tops, dtype=torch.float32).unsqueeze(-1)
    return lo + (hi - lo) * torch.rand(n, agents, items, generator=generator)


@pytest.mark.parametrize("distribution", SHIPPED, ids=repr)
def test_samples_have_the_shape_dtype_and_support_and_repeat_with_the_seed(distribution) -> None:
    agents, items = distribution.n_agents, distribution.n_items
    first = distribution.sample(500, torch.Generator().manual_seed(1))
    assert first.shape == (500, agents, items) and first.dtype == torch.float32
    assert torch.equal(first, distribution.sample(500, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, distribution.sample(500, torch.Generator().manual_seed(2)))
    double = distribution.sample(500, torch.Generator().manual_seed(1), dtype=torch.float64)
    assert double.dtype == torch.float64
    assert torch.equal(double, distribution.sample(500, torch.Generator().manual_seed(1), dtype=torch.float64))
    low, high = distribution.support
    assert low.shape == high.shape == (agents, items) and bool((low < high).all())
    for values in (first.double(), double):
        assert bool((values >= low).all() and (values <= high).all())


def test_supports() -> None:
    assert Uniform(2, 3, [0.0, 2.0], [1.0, 5.0]).support.high.tolist() == [[1.0] * 3, [5.0] * 3]
    assert Uniform(1, 2, [[4, 4]], [[16, 7]]).support.high.tolist() == [[16.0, 7.0]]
    assert Exponential(1, 2, 2.0, 0.99).support.high.flatten().tolist() == pytest.approx([2 * math.log(100)] * 2, rel=1e-12)
    assert Triangle(1, size=3.0).support.low.tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("low, high", [(0.0, 1.0), ([0.0, 2.0], [1.0, 5.0]), (0.5, [1.0, 3.0])])
def test_uniform_is_bit_identical_to_the_old_sampler(low, high) -> None:
    new = Uniform(2, 3, low, high).sample(4096, torch.Generator().manual_seed(7))
    assert torch.equal(new, _old_sampler(4096, 2, 3, low, high, torch.Generator().manual_seed(7)))
    # the data module's splits: the old sampler on the derived streams
    data = ValuationDataModule(2, 3, low, high, train_size=64, val_size=16, test_size=16, batch_size=8, device="cpu")
    data.setup()
    for stream, split in enumerate(("train", "val", "test")):
        generator = torch.Generator().manual_seed(derive_seed(0, stream))
        expected = _old_sampler(data.sizes[split], 2, 3, low, high, generator)
        assert torch.equal(data.splits[split].valuations, expected)


def test_uniform_per_item_bounds_follow_scipy() -> None:
    values = Uniform(1, 2, [[4, 4]], [[16, 7]]).sample(20000, torch.Generator().manual_seed(0)).double()
    for item, (a, b) in enumerate(((4, 16), (4, 7))):
        assert stats.kstest(values[:, 0, item], stats.uniform(loc=a, scale=b - a).cdf).pvalue > 1e-3


def test_exponential_is_the_truncated_exponential() -> None:
    scale, quantile = 2.0, 0.99
    cap = -scale * math.log(1 - quantile)
    values = Exponential(1, 3, scale, quantile).sample(20000, torch.Generator().manual_seed(0)).double().flatten()
    truncated = stats.truncexpon(b=cap / scale, scale=scale)
    assert stats.kstest(values, truncated.cdf).pvalue > 1e-3
    assert float(values.max()) <= cap


def test_triangle_is_uniform_on_the_triangle() -> None:
    values = Triangle(1, 2, size=2.0).sample(20000, torch.Generator().manual_seed(0)).double()[:, 0] / 2.0
    total = values.sum(-1)
    assert float(total.max()) <= 1.0
    assert stats.kstest(total, lambda t: t**2).pvalue > 1e-3  # P(v1 + v2 <= t) = t^2 on the unit triangle
    assert stats.kstest(values[:, 0], lambda v: 1 - (1 - v) ** 2).pvalue > 1e-3  # marginal density 2 (1 - v)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Uniform(2, 2, 1.0, 1.0), "low < high"),
        (lambda: Uniform(2, 2, 0.0, [1.0, 2.0, 3.0]), "high has 3 entries but there are 2 agents"),
        (lambda: Uniform(1, 2, [[0.0, 0.0, 0.0]], 1.0), "one row of 2 numbers"),
        (lambda: Uniform(1, 2, float("nan")), "finite"),
        (lambda: Uniform(0, 2), "n_agents"),
        (lambda: Exponential(1, 1, scale=0.0), "scale"),
        (lambda: Exponential(1, 1, quantile=1.0), "quantile"),
        (lambda: Triangle(1, 3), "two items"),
        (lambda: Triangle(1, 2, size=-1.0), "size"),
        (lambda: Uniform(1, 2).sample(0), "number of profiles"),
        (lambda: Uniform(1, 2).sample(3, dtype=torch.int64), "dtype"),
        (lambda: named_distribution("beta", 1, 2), "unknown distribution 'beta'"),
    ],
)
def test_bad_arguments_raise_one_line(build, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        build()
    assert "\n" not in str(error.value)


def _monte_carlo(mechanism, distribution, samples: int = 200_000) -> tuple[float, float]:
    values = distribution.sample(samples, torch.Generator().manual_seed(0), dtype=torch.float64)
    revenue = mechanism(values)[1].sum(-1)
    return float(revenue.mean()), float(revenue.std()) / math.sqrt(samples)


def test_exponential_myerson_matches_the_closed_form_and_the_published_benchmark() -> None:
    for agents, scale in ((1, 1.0), (3, 3.0)):
        # the closed form against its integral E[(max v - scale)^+] = int_scale^inf 1 - (1 - e^(-t/scale))^n dt
        integral = integrate.quad(lambda t: 1 - (1 - math.exp(-t / scale)) ** agents, scale, math.inf)[0]
        assert exponential_myerson_revenue(agents, scale) == pytest.approx(integral, rel=1e-9)
    assert exponential_myerson_revenue(1, 2.0) == pytest.approx(2.0 / math.e)  # reserve 1/lambda, revenue e^-1/lambda
    values = Exponential(3, 1, scale=3.0, quantile=1 - 1e-9)  # truncation negligible here
    mechanism = optimal_mechanism(Setting(3, 1, Demand("unit"), values))
    mean, stderr = _monte_carlo(mechanism, values)
    assert abs(mean - mechanism.expected_revenue) < 4 * stderr
    # Dütting et al.'s MyersonNet benchmark (3 bidders, Exp(mean 3)): optimal revenue 2.749 (their Monte Carlo)
    assert abs(mean - 2.749) < 4 * stderr + 0.01


def test_exponential_bundle_matches_the_closed_form_and_is_the_best_bundle_price() -> None:
    golden = (1 + math.sqrt(5)) / 2
    assert exponential_bundle_price(2, 2.0) == pytest.approx((2 * golden, 2 * golden**3 * math.exp(-golden)), rel=1e-9)
    for items in (2, 3, 5):  # the bundle's value is Gamma(items, scale): scipy's tail, a grid of prices
        price, revenue = exponential_bundle_price(items, 1.5)
        grid = [price * (0.5 + j / 100) for j in range(101)]
        best = max(p * stats.gamma(items, scale=1.5).sf(p) for p in grid)
        assert revenue == pytest.approx(price * stats.gamma(items, scale=1.5).sf(price), rel=1e-9) and best <= revenue + 1e-12
    values = Exponential(1, 2, quantile=1 - 1e-9)
    mechanism = optimal_mechanism(Setting(1, 2, Demand("additive", 2), values))
    mean, stderr = _monte_carlo(mechanism, values)
    assert abs(mean - golden**3 * math.exp(-golden)) < 4 * stderr  # 0.8399: more than selling apart, 2/e = 0.7358
    assert optimal_mechanism(Setting(1, 2, Demand("unit"), values)) is None  # unit demand: unknown


def test_triangle_bundle_matches_the_closed_form() -> None:
    values = Triangle(1)
    mechanism = optimal_mechanism(Setting(1, 2, Demand("additive", 2), values))
    assert mechanism.expected_revenue == pytest.approx(0.3849, abs=1e-4)
    mean, stderr = _monte_carlo(mechanism, values)
    assert abs(mean - triangle_bundle_revenue()) < 4 * stderr
    # the bundle price maximizes p P(v1 + v2 >= p) = p (1 - p^2): no other bundle price earns more
    prices = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    assert float((prices * (1 - prices**2)).max()) <= triangle_bundle_revenue()


def _menu_lp_revenue(types: torch.Tensor) -> float:
    """The optimal revenue (lotteries allowed) for one additive bidder whose two values are uniform on ``types``
    ``(T, 2)``: Rochet's linear program, allocations in [0, 1]^2, pairwise IC and IR (scipy's HiGHS)."""
    import numpy as np
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    v = types.numpy()
    count = len(v)
    t, u = (a.ravel() for a in np.meshgrid(np.arange(count), np.arange(count), indexing="ij"))
    t, u = t[t != u], u[t != u]
    rows = np.arange(len(t))
    # IC of type t against u: v_t . x_u - p_u <= v_t . x_t - p_t; IR: p_t <= v_t . x_t (variables x1, x2, p per type)
    ic = [(rows, 3 * u, v[t, 0]), (rows, 3 * u + 1, v[t, 1]), (rows, 3 * u + 2, -np.ones(len(t))),
          (rows, 3 * t, -v[t, 0]), (rows, 3 * t + 1, -v[t, 1]), (rows, 3 * t + 2, np.ones(len(t)))]
    last = len(t) + np.arange(count)
    ir = [(last, 3 * np.arange(count), -v[:, 0]), (last, 3 * np.arange(count) + 1, -v[:, 1]), (last, 3 * np.arange(count) + 2, np.ones(count))]
    i, j, x = (np.concatenate(parts) for parts in zip(*ic, *ir))
    matrix = coo_matrix((x, (i, j)), shape=(len(t) + count, 3 * count)).tocsr()
    cost = np.zeros(3 * count)
    cost[2::3] = -1.0 / count
    result = linprog(cost, A_ub=matrix, b_ub=np.zeros(matrix.shape[0]), bounds=[(0, 1), (0, 1), (None, None)] * count,
                     method="highs")
    assert result.status == 0
    return -result.fun


def test_no_menu_beats_the_triangle_bundle() -> None:
    """Rochet's LP on cell-centre grids of the triangle, extrapolated in the grid size (error ~ c / N): the best
    mechanism, lotteries included, earns the bundle's 2 / (3 sqrt 3) (a menu beating it by 0.005 would show)."""
    def extrapolated(triangle: bool) -> float:
        revenues = []
        for n in (10, 14):
            centres = (torch.arange(n, dtype=torch.float64) + 0.5) / n
            points = torch.cartesian_prod(centres, centres)
            revenues.append(_menu_lp_revenue(points[points.sum(-1) <= 1] if triangle else points))
        return (14 * revenues[1] - 10 * revenues[0]) / 4

    # the same procedure on the square recovers Manelli and Vincent's known optimum (0.5467 vs 0.5492)
    assert abs(extrapolated(triangle=False) - manelli_vincent_revenue()) < 0.005
    assert abs(extrapolated(triangle=True) - triangle_bundle_revenue()) < 0.005  # 0.3877 vs 0.3849


def test_references_use_the_distribution() -> None:
    found = references(Setting(3, 1, Demand("unit"), Exponential(3, 1, 3.0)), samples=2000)
    assert found.optimal == pytest.approx(exponential_myerson_revenue(3, 3.0))
    assert 2.3 < found.vcg < 2.7  # E[second highest of 3 Exp(mean 3)] = 3 (1/2 + 1/3) = 2.5
    assert references(Setting(1, 2, Demand("unit"), Triangle(1)), samples=200).optimal is None  # unit demand: unknown
    assert Triangle(2).optimal_mechanism(Demand("additive", 2)) is None  # two bidders: unknown
    # U[0, 1] through the distribution or through low/high: the same references
    uniform = Setting(1, 2, Demand("unit"), Uniform(1, 2))
    assert references(Setting.uniform(1, 2, "unit", [0.0], [1.0]), samples=300) == references(uniform, samples=300)


def test_the_misreport_search_stays_in_the_report_domain() -> None:
    values = Exponential(2, 1, 1.0, 0.9)
    support = values.support
    valuations = values.sample(16, torch.Generator().manual_seed(0))

    class PayNothing(torch.nn.Module):  # the more you bid, the more you get: misreports run to the top
        n_agents, n_items = 2, 1

        def forward(self, bids):
            return torch.sigmoid(bids), torch.zeros(bids.shape[:2])

    found = find_misreports(PayNothing(), valuations, MisreportSearch(steps=50, lr=1.0, restarts=2),
                            support.low, support.high)
    assert float(found.max()) <= values.cap + 1e-5 and float(found.min()) >= 0.0


@pytest.mark.parametrize("overrides, kind", [
    (["data.high=[1.0,2.0]", "agents=2"], Uniform),
    (["distribution=exponential", "items=1", "distribution.scale=2"], Exponential),
    (["distribution=triangle", "demand=additive"], Triangle),
])
def test_the_config_group_builds_the_distribution(overrides: list[str], kind: type) -> None:
    parts = validate_config(make_config(*TINY, *overrides))
    assert isinstance(parts.datamodule.distribution, kind) and parts.model.distribution == parts.datamodule.distribution
    assert torch.equal(parts.model.high, parts.datamodule.distribution.support.high.float())


def test_resume_compares_the_distribution_and_accepts_runs_from_before_it() -> None:
    current = OmegaConf.to_container(make_config(*TINY), resolve=True)
    legacy = {key: value for key, value in current.items() if key != "distribution"}
    assert resume_differences(legacy, current) == []
    assert distribution_node(legacy)["high"] == current["distribution"]["high"]
    other = OmegaConf.to_container(make_config(*TINY, "distribution=triangle"), resolve=True)
    assert any(key.startswith("distribution.") for key, _, _ in resume_differences(current, other))


@pytest.mark.parametrize("overrides, optimum", [
    (["distribution=exponential", "agents=3", "items=1", "distribution.scale=3"], exponential_myerson_revenue(3, 3.0)),
    (["distribution=triangle", "demand=additive"], triangle_bundle_revenue()),
])
def test_a_short_training_run_on_each_new_distribution(overrides: list[str], optimum: float, tmp_path: Path) -> None:
    metrics = run(make_config(*TINY, *overrides, output_dir=tmp_path))
    assert math.isfinite(metrics["fit"]["train/loss"]) and math.isfinite(metrics["test"]["revenue_mean"])
    assert metrics["references"]["reference/optimal_revenue"] == pytest.approx(optimum)


def _doc_block(language: str) -> str:
    text = (ROOT / "docs" / "extending.md").read_text()
    section = text.split("## A new valuation distribution", 1)[1].split("\n## ", 1)[0]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_the_extending_example_trains_through_its_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/extending.md's distribution: its Python block as the module its YAML names, then a short run."""
    node = OmegaConf.create(_doc_block("yaml"))
    module_name, _ = node._target_.rsplit(".", 1)
    module = types.ModuleType(module_name)
    exec(compile(_doc_block("python"), "docs/extending.md", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module_name, module)
    cfg = make_config(*TINY, "items=1", output_dir=tmp_path)
    cfg.distribution = node  # what `python train.py distribution=power items=1` composes from conf/distribution/power.yaml
    metrics = run(cfg)
    assert math.isfinite(metrics["test"]["revenue_mean"])
    assert metrics["references"]["reference/optimal_revenue"] == pytest.approx(module.power_posted_price_revenue(2.0))


def test_evaluate_takes_the_distribution(tmp_path: Path) -> None:
    """``evaluate.py --distribution exponential``: its profiles, its report domain and its optimum (Myerson)."""
    import json

    import evaluate

    argv = ["--mechanism", "optimal", "--distribution", "exponential", "--agents", "2", "--items", "1",
            "--samples", "2000", "--steps", "3", "--restarts", "2", "--seed", "4", "--out", str(tmp_path), "--no-progress"]
    assert evaluate.main(argv) == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    values = Exponential(2, 1).sample(2000, torch.Generator().manual_seed(derive_seed(4, 2))).double()[..., 0]
    top, second = values.max(-1).values, values.min(-1).values
    revenue = torch.where(top >= 1.0, second.clamp(min=1.0), torch.zeros_like(top))  # second price, reserve 1
    assert report["metrics"]["revenue_mean"] == pytest.approx(revenue.mean().item(), abs=1e-6)
    assert report["references"]["optimal_revenue_closed_form"] == pytest.approx(exponential_myerson_revenue(2))
    assert report["setting"]["distribution"] == {"name": "exponential", "scale": 1.0, "quantile": 0.9999}
    assert report["metrics"]["regret_sum_over_agents_max"] <= 1e-6
