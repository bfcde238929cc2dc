"""The misreport search and regret engine, on toy mechanisms whose regret is derived by hand."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from adversary.regret import measure, regret
from adversary.search import MisreportSearch, find_misreports
from mechanisms.networks import MLP
from mechanisms.regretnet import RegretNet
from mechanisms.sinkhorn_auction import SinkhornMechanism


class PayYourBid(nn.Module):
    """Every agent gets 1/n of every item and pays its total bid / n.

    ``u_i = sum_j (v_ij - b_ij) / n``: the best report is the lowest one allowed,
    so ``regret_i = sum_j (v_ij - low_ij) / n`` (with one bidder and one item: ``v - low``).
    """

    def forward(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        n = bids.shape[1]
        return torch.full_like(bids, 1 / n), bids.sum(-1) / n


class QuadraticToy(nn.Module):
    """``x_ij = b_ij / n`` and ``p_i = sum_j b_ij^2 / (4n) + c * (sum of the other agents' bids)``.

    With the others truthful, ``u_i = sum_j (v_ij b_ij - b_ij^2 / 4) / n - c * S_-i``
    is maximized at ``b_ij = min(2 v_ij, 1)``, so per item ``n * regret`` is
    ``v^2 / 4`` for ``v <= 1/2`` and ``(3v - 1)(1 - v) / 4`` above.  The ``c`` term
    does not change the regret: it catches a search that moves the others' bids.
    """

    def __init__(self, c: float = 0.1) -> None:
        super().__init__()
        self.c = c

    def forward(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        n = bids.shape[1]
        totals = bids.sum(-1)
        others = totals.sum(-1, keepdim=True) - totals
        return bids / n, (bids**2).sum(-1) / (4 * n) + self.c * others


class TruthfulToy(nn.Module):
    """``x_ij = b_ij / n`` with the Myerson payment ``sum_j b_ij^2 / (2n)`` minus a Groves-style term.

    ``u_i = sum_j (v_ij b_ij - b_ij^2 / 2) / n + c * S_-i`` is maximized at ``b = v``: truthful.
    """

    def forward(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        n = bids.shape[1]
        totals = bids.sum(-1)
        return bids / n, (bids**2).sum(-1) / (2 * n) - 0.1 * (totals.sum(-1, keepdim=True) - totals)


class DetachedThreshold(nn.Module):
    """One bidder, one item, always allocated; pays 1/2 if she bids at least 1/2 (no gradient)."""

    def forward(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        bids = bids.detach()
        return torch.ones_like(bids), 0.5 * (bids[..., 0] >= 0.5).to(bids.dtype)


class PostedPrice(nn.Module):
    """One bidder, one item at a learnable price; the output requires grad but not through the bids."""

    def __init__(self) -> None:
        super().__init__()
        self.price = nn.Parameter(torch.tensor(0.5))

    def forward(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        buys = (bids[..., 0] >= self.price).to(bids.dtype)
        return buys.unsqueeze(-1), buys * self.price


class Counting(nn.Module):
    """Records the batch size of every call to the wrapped mechanism."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        self.calls.append(len(bids))
        return self.inner(bids)


def quadratic_regret(valuations: Tensor) -> Tensor:
    """Closed-form regret ``(batch, agents)`` of :class:`QuadraticToy` on the domain [0, 1]."""
    v = valuations.double()
    per_item = torch.where(v <= 0.5, v**2 / 4, (3 * v - 1) * (1 - v) / 4)
    return per_item.sum(-1) / v.shape[1]


@pytest.mark.parametrize(
    "kwargs",
    [dict(steps=-1), dict(lr=0.0), dict(restarts=-1), dict(optimizer="lbfgs"), dict(steps=2.5), dict(shading=[1.5])],
)
def test_search_settings_are_validated(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="MisreportSearch"):
        MisreportSearch(**kwargs)


def test_pay_your_bid_regret_is_exactly_the_value() -> None:
    valuations = torch.rand(64, 1, 1)
    misreports = find_misreports(PayYourBid(), valuations)  # the training default: 25 Adam steps
    assert misreports.shape == valuations.shape and not misreports.requires_grad
    assert float(misreports.abs().max()) == 0.0
    torch.testing.assert_close(regret(PayYourBid(), valuations, misreports).regret, valuations[..., 0])


def test_clamping_honours_per_agent_per_item_bounds() -> None:
    low = torch.tensor([[0.1, 0.2], [0.3, 0.0]])
    high = torch.tensor([[0.9], [1.0]])  # broadcast over the items
    valuations = 0.3 + 0.6 * torch.rand(16, 2, 2)
    misreports = find_misreports(PayYourBid(), valuations, MisreportSearch(restarts=2), low=low, high=high)
    torch.testing.assert_close(misreports, low.expand_as(misreports))
    expected = (valuations - low).sum(-1) / 2
    torch.testing.assert_close(regret(PayYourBid(), valuations, misreports).regret, expected)


def test_random_starts_lie_in_the_domain() -> None:
    """With zero steps the result is the truth or one of the random starts, all inside [low, high]."""
    valuations = torch.full((256, 1, 1), 0.6)  # truth pays 0.6 (the top of the domain); any lower start is better
    misreports = find_misreports(PayYourBid(), valuations, MisreportSearch(steps=0, restarts=3), low=0.2, high=0.6)
    assert float(misreports.min()) >= 0.2 and float(misreports.max()) <= 0.6
    assert float(misreports.std()) > 0.01  # random, not a constant


@pytest.mark.parametrize("low,high", [(0.5, 0.4), (0.0, torch.ones(3)), (0.0, float("nan"))])
def test_bad_bounds_are_refused(low, high) -> None:
    with pytest.raises(ValueError, match="low and high"):
        find_misreports(PayYourBid(), torch.rand(4, 2, 2), low=low, high=high)


def test_truthful_mechanism_has_zero_regret() -> None:
    valuations = torch.rand(32, 3, 2)
    misreports = find_misreports(TruthfulToy(), valuations, MisreportSearch(steps=100, restarts=5))
    assert float(regret(TruthfulToy(), valuations, misreports).regret.max()) < 1e-6


def test_interior_best_misreport_and_its_regret_match_the_closed_form() -> None:
    valuations = torch.rand(64, 2, 3, dtype=torch.float64)
    misreports = find_misreports(QuadraticToy(), valuations, MisreportSearch(steps=100, lr=0.1))
    torch.testing.assert_close(misreports, (2 * valuations).clamp(max=1), atol=0.01, rtol=0)
    found = regret(QuadraticToy(), valuations, misreports).regret
    expected = quadratic_regret(valuations)
    assert float((found - expected).max()) <= 1e-12  # the closed form is the supremum
    torch.testing.assert_close(found, expected, atol=1e-5, rtol=0)


def test_regret_of_given_misreports_matches_the_formula() -> None:
    valuations, misreports = torch.rand(32, 2, 3, dtype=torch.float64), torch.rand(32, 2, 3, dtype=torch.float64)
    terms = regret(QuadraticToy(), valuations, misreports)
    v, b = valuations, misreports
    gain = (v * b - b**2 / 4 - 3 * v**2 / 4).sum(-1) / 2  # u_i(b_i, v_-i) - u_i(v)
    torch.testing.assert_close(terms.regret, gain.clamp_min(0))
    torch.testing.assert_close(terms.allocation, valuations / 2)
    with pytest.raises(ValueError, match="misreports must have"):
        regret(QuadraticToy(), valuations, misreports[:, :1])


@pytest.mark.parametrize("mechanism", [DetachedThreshold(), PostedPrice()], ids=["detached", "no-bid-gradient"])
def test_mechanisms_without_bid_gradients_are_searched_by_their_starts(mechanism: nn.Module) -> None:
    valuations = torch.rand(64, 1, 1)
    no_restart = find_misreports(mechanism, valuations, MisreportSearch(steps=50))
    torch.testing.assert_close(no_restart, valuations)  # nothing moves
    generator = torch.Generator().manual_seed(3)
    with_restarts = find_misreports(mechanism, valuations, MisreportSearch(steps=50, restarts=20), generator=generator)
    found = regret(mechanism, valuations, with_restarts).regret[:, 0]
    if isinstance(mechanism, DetachedThreshold):
        # Bidding below 1/2 saves the 1/2 payment: regret 1/2 exactly when v >= 1/2.
        torch.testing.assert_close(found, 0.5 * (valuations[:, 0, 0] >= 0.5).float())
    else:
        assert float(found.detach().max()) == 0.0  # a posted price is truthful
        assert mechanism.price.grad is None


def test_shaded_starts_are_searched_by_their_own_values() -> None:
    # Pay-your-bid without steps: the best report among the truth and its shadings low + f (v - low) is the most
    # shaded one, and its regret is (1 - f) (v - low) exactly.
    valuations = torch.rand(64, 1, 1) * 0.5 + 0.25
    search = MisreportSearch(steps=0, shading=[0.9, 0.5])
    found = find_misreports(PayYourBid(), valuations, search, low=0.2, high=1.0)
    torch.testing.assert_close(found, 0.2 + 0.5 * (valuations - 0.2))
    torch.testing.assert_close(regret(PayYourBid(), valuations, found).regret[:, 0], 0.5 * (valuations[:, 0, 0] - 0.2))
    assert MisreportSearch(shading=[0.5]) == MisreportSearch(shading=(0.5,))  # a list from the config, a tuple here


def test_parameter_gradients_and_mode_are_untouched() -> None:
    mechanism = RegretNet(2, 2, allocation_net=MLP((8,)), payment_net=MLP((8,)))
    parameters = list(mechanism.parameters())
    sentinels = [torch.full_like(p, 7.0) for p in parameters[::2]]
    for p, s in zip(parameters[::2], sentinels):
        p.grad = s.clone()
    for train in (True, False):
        mechanism.train(train)
        find_misreports(mechanism, torch.rand(8, 2, 2), MisreportSearch(steps=3, restarts=1))
        assert mechanism.training is train
        for p, s in zip(parameters[::2], sentinels):
            assert torch.equal(p.grad, s)
        assert all(p.grad is None for p in parameters[1::2])


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode], ids=["no_grad", "inference_mode"])
def test_search_runs_inside_no_grad_and_inference_mode(context) -> None:
    mechanism = RegretNet(2, 2, allocation_net=MLP((8,)), payment_net=MLP((8,)))
    with context():
        valuations = torch.rand(16, 1, 1)
        misreports = find_misreports(PayYourBid(), valuations)
        found = regret(PayYourBid(), valuations, misreports).regret
        report = measure(mechanism, torch.rand(8, 2, 2), MisreportSearch(steps=3))
    torch.testing.assert_close(found, valuations[..., 0])
    assert report.n_samples == 8


def test_one_batched_mechanism_call_per_step() -> None:
    mechanism = Counting(QuadraticToy())
    valuations = torch.rand(5, 2, 3)
    misreports = find_misreports(mechanism, valuations, MisreportSearch(steps=4, restarts=2))
    assert mechanism.calls == [3 * 2 * 5] * 5  # (restarts + 1) x agents x batch, steps + 1 calls
    mechanism.calls.clear()
    regret(mechanism, valuations, misreports)
    assert mechanism.calls == [5, 2 * 5]  # one truthful forward, one over agents x batch


def test_a_warm_start_is_one_more_start_in_the_same_call() -> None:
    mechanism = Counting(QuadraticToy())
    valuations = torch.rand(5, 2, 3)
    find_misreports(mechanism, valuations, MisreportSearch(steps=4, restarts=2), init=torch.rand(5, 2, 3))
    assert mechanism.calls == [4 * 2 * 5] * 5  # truth + init + 2 random starts, steps + 1 calls


def test_a_warm_start_at_the_answer_is_kept_and_is_clamped_to_the_domain() -> None:
    """With zero steps the result is the better of the truth and the (clamped) warm start."""
    valuations = torch.rand(64, 2, 3, dtype=torch.float64)
    best = (2 * valuations).clamp(max=1)  # QuadraticToy's best report
    found = find_misreports(QuadraticToy(), valuations, MisreportSearch(steps=0), init=2 * valuations)
    torch.testing.assert_close(found, best)  # 2v > 1 is clamped to 1, which is the optimum there
    torch.testing.assert_close(regret(QuadraticToy(), valuations, found).regret, quadratic_regret(valuations))
    # a start worse than the truth is not taken: PayYourBid prefers the lowest report
    v = torch.full((8, 1, 1), 0.5)
    torch.testing.assert_close(find_misreports(PayYourBid(), v, MisreportSearch(steps=0), init=v + 0.3), v)
    torch.testing.assert_close(find_misreports(PayYourBid(), v, MisreportSearch(steps=0), init=v - 0.3), v - 0.3)


def test_a_warm_start_lets_a_short_search_finish_what_a_long_one_started() -> None:
    valuations = torch.rand(64, 2, 3, dtype=torch.float64)
    short = MisreportSearch(steps=3, lr=0.1)
    cold = regret(QuadraticToy(), valuations, find_misreports(QuadraticToy(), valuations, short)).regret
    misreports = find_misreports(QuadraticToy(), valuations, short)
    for _ in range(5):  # later visits of the same profiles
        misreports = find_misreports(QuadraticToy(), valuations, short, init=misreports)
    warm = regret(QuadraticToy(), valuations, misreports).regret
    expected = quadratic_regret(valuations)
    assert float((expected - cold).max()) > 5e-3  # three steps from the truth are not enough
    # within Adam's first step (lr) of the optimum: a regret gap of order lr^2 / 4n at worst
    assert float((expected - warm).max()) < 1e-3 and float((warm - expected).max()) <= 1e-12


def test_a_warm_start_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="init must have"):
        find_misreports(QuadraticToy(), torch.rand(4, 2, 3), init=torch.rand(4, 3, 2))


def test_gradient_search_matches_a_grid_search_on_a_rugged_learned_mechanism() -> None:
    """One bidder, one item: the best misreport of a randomly initialized RegretNet, by brute force."""
    mechanism = RegretNet(1, 1, "additive", allocation_net=MLP((16,)), payment_net=MLP((16,)))
    with torch.no_grad():
        for parameter in mechanism.parameters():
            parameter.normal_(0, 3)  # a rugged, multi-modal utility landscape
    valuations = torch.rand(8, 1, 1, dtype=torch.float64)
    mechanism.double()
    grid = torch.linspace(0, 1, 4001, dtype=torch.float64)
    with torch.no_grad():
        allocation, payment = mechanism(grid.view(-1, 1, 1))
        truthful_allocation, truthful_payment = mechanism(valuations)
    utilities = valuations[:, 0] * allocation[:, 0, 0] - payment[:, 0]  # (samples, grid)
    truthful = valuations[:, 0, 0] * truthful_allocation[:, 0, 0] - truthful_payment[:, 0]
    best_on_grid = (utilities.max(1).values - truthful).clamp_min(0)
    search = MisreportSearch(steps=200, lr=0.02, restarts=10)
    misreports = find_misreports(mechanism, valuations, search, generator=torch.Generator().manual_seed(0))
    found = regret(mechanism, valuations, misreports).regret[:, 0]
    assert float(best_on_grid.max()) > 0.01  # the test is not vacuous
    torch.testing.assert_close(found, best_on_grid, atol=2e-3, rtol=0)


def test_evaluate_reports_closed_form_metrics() -> None:
    c, n = 0.1, 2
    valuations = torch.rand(60, n, 3, dtype=torch.float64)
    # Plain gradient ascent contracts by 3/4 per step at lr 1 on this quadratic.
    search = MisreportSearch(steps=60, lr=1.0, optimizer="sgd")
    report = measure(QuadraticToy(c), valuations, search, batch_size=25, demand="unit")
    v = valuations
    totals = v.sum(-1)
    others = totals.sum(-1, keepdim=True) - totals
    revenue = (v**2).sum((1, 2)) / (4 * n) + c * (n - 1) * totals.sum(-1)
    utilities = 3 * (v**2).sum(-1) / (4 * n) - c * others
    rgt = quadratic_regret(v)
    assert report.n_samples == 60
    assert report.revenue_mean == pytest.approx(float(revenue.mean()), abs=1e-9)
    assert report.revenue_std == pytest.approx(float(revenue.std(correction=0)), abs=1e-9)
    for label, per_sample in (("mean_over_agents", rgt.mean(1)), ("sum_over_agents", rgt.sum(1))):
        assert getattr(report, f"regret_{label}_mean") == pytest.approx(float(per_sample.mean()), abs=1e-4)
        assert getattr(report, f"regret_{label}_std") == pytest.approx(float(per_sample.std(correction=0)), abs=1e-4)
        assert getattr(report, f"regret_{label}_max") == pytest.approx(float(per_sample.max()), abs=1e-4)
    assert report.regret_per_agent == pytest.approx(rgt.mean(0).tolist(), abs=1e-4)
    assert report.ir_violation_max == pytest.approx(float((-utilities).clamp_min(0).max()), abs=1e-9)
    assert report.ir_violation_fraction == pytest.approx(float((utilities < -1e-6).any(1).double().mean()))
    assert 0 < report.ir_violation_fraction < 1  # both kinds of samples occur
    # Unit demand: agent i receives sum_j v_ij / 2 items; entries and item totals stay feasible.
    assert report.allocation_violation_max == pytest.approx(float((totals / 2 - 1).clamp_min(0).max()), abs=1e-9)
    assert report.to_dict()["regret_sum_over_agents_mean"] == report.regret_sum_over_agents_mean


def test_evaluate_needs_a_demand_and_a_contract_abiding_mechanism() -> None:
    with pytest.raises(ValueError, match="pass demand="):
        measure(QuadraticToy(), torch.rand(4, 2, 2))
    with pytest.raises(ValueError, match="batch_size"):
        measure(QuadraticToy(), torch.rand(4, 2, 2), demand="additive", batch_size=0)

    class WrongShape(nn.Module):
        def forward(self, bids: Tensor) -> tuple[Tensor, Tensor]:
            return bids, bids.sum(-1).sum(-1)

    with pytest.raises(ValueError, match="must return allocation"):
        find_misreports(WrongShape(), torch.rand(4, 2, 2))


def test_evaluate_a_sinkhorn_mechanism_end_to_end() -> None:
    mechanism = SinkhornMechanism(2, 2, "exactly_k", 1, allocation_net=MLP((16,)), payment_net=MLP((16,))).eval()
    report = measure(mechanism, torch.rand(12, 2, 2), MisreportSearch(steps=5, restarts=1), batch_size=5, progress=True)
    assert report.n_samples == 12 and len(report.regret_per_agent) == 2
    assert report.ir_violation_max <= 1e-6  # IR by construction
    assert report.allocation_violation_max <= mechanism.settings.tol  # rows within the Sinkhorn tolerance
    assert report.regret_sum_over_agents_mean == pytest.approx(2 * report.regret_mean_over_agents_mean)
