"""Prepared calls (mechanisms/prepared.py) against plain calls: same search, regret, gradients and audit; fewer solves.

The second implementation is the mechanism's own forward: :class:`PlainCalls` hides ``prepare``, so the engines call
the forward on every profile, as they did before prepared calls.  On a fixed Sinkhorn schedule the two agree to
float64 round-off (the potential mechanism's ``V(0_i, v_-i)`` is then the same solve in another batch).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from adversary.audit import AuditSettings, audit_misreports
from adversary.regret import measure, regret
from adversary.search import MisreportSearch, find_misreports
from mechanisms.lottery_ama import LotteryAMA
from mechanisms.networks import MLP
from mechanisms.potential_auction import PotentialSinkhornMechanism
from mechanisms.prepared import PlainCalls, PreparedCall
from mechanisms.sinkhorn import Sinkhorn, SinkhornSettings

FIXED = SinkhornSettings(backend="torch").with_fixed_iterations((20,) * 10)  # the paper's epsilons, 20 updates each


def _lottery(items: int = 3, sinkhorn: SinkhornSettings = FIXED, prepared_calls: bool = True) -> LotteryAMA:
    torch.manual_seed(0)
    mechanism = LotteryAMA(2, items, "unit", sinkhorn=sinkhorn, options=16, temperature=0.05, cost_scale=0.5,
                           prepared_calls=prepared_calls).double()
    with torch.no_grad():  # away from the symmetric start: unequal weights, boosts
        mechanism.boosts.normal_(0, 0.1)
        mechanism.log_weights.normal_(0, 0.3)
    return mechanism


def _potential(items: int = 3, sinkhorn: SinkhornSettings = FIXED, prepared_calls: bool = True
               ) -> PotentialSinkhornMechanism:
    torch.manual_seed(0)
    mechanism = PotentialSinkhornMechanism(2, items, "unit", sinkhorn=sinkhorn, allocation_net=MLP((16,)), scale=2.0,
                                           prepared_calls=prepared_calls).double()
    with torch.no_grad():  # a non-zero residual network: no longer the (truthful) entropic VCG auction
        mechanism.allocation_net[-1].weight.normal_(0, 0.5)
    return mechanism


MECHANISMS = [_lottery, _potential]
IDS = ["lottery_ama", "potential"]


def _valuations(batch: int = 12, items: int = 3) -> Tensor:
    return torch.rand(batch, 2, items, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("make", MECHANISMS, ids=IDS)
def test_prepared_calls_are_the_plain_calls(make) -> None:
    mechanism, valuations = make(), _valuations()
    call, plain = mechanism.prepare(valuations), PreparedCall(mechanism, valuations)
    for got, want in zip(call.truthful(), plain.truthful()):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    rows = torch.rand(3, 2, 12, 3, dtype=torch.float64)  # (starts, agents, batch, items)
    got_all, want_all = (*call.deviations(rows), call.utilities(rows)), (*plain.deviations(rows), plain.utilities(rows))
    for got, want in zip(got_all, want_all):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    sources, reports = torch.tensor([0, 5, 5, 11]), torch.rand(4, 3, dtype=torch.float64)
    for got, want in zip(call.deviate(1, sources, reports), plain.deviate(1, sources, reports)):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("make", MECHANISMS, ids=IDS)
def test_search_regret_and_parameter_gradients_equal_plain_calls(make) -> None:
    mechanism, valuations = make(), _valuations()
    search = MisreportSearch(steps=10, lr=0.05, restarts=1)

    def run(target: nn.Module) -> tuple[Tensor, Tensor, list[Tensor]]:
        generator = torch.Generator().manual_seed(2)
        misreports = find_misreports(target, valuations, search, generator=generator)
        terms = regret(target, valuations, misreports)
        mechanism.zero_grad()
        (terms.regret.sum() - terms.payment.sum(-1).mean()).backward()
        return misreports, terms.regret.detach(), [p.grad.clone() for p in mechanism.parameters()]

    prepared_run, plain_run = run(mechanism), run(PlainCalls(mechanism))
    truthful = isinstance(mechanism, LotteryAMA)  # its regret is round-off, and its utility flat at the truth:
    assert truthful or float(plain_run[1].max()) > 1e-4  # (round-off in utility is its square root in reports)
    torch.testing.assert_close(prepared_run[0], plain_run[0], atol=1e-6 if truthful else 1e-8, rtol=0)
    torch.testing.assert_close(prepared_run[1], plain_run[1], atol=1e-12, rtol=0)
    for got, want in zip(prepared_run[2], plain_run[2]):
        assert float(want.abs().max()) > 0
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("make", MECHANISMS, ids=IDS)
def test_the_audit_equals_plain_calls(make) -> None:
    mechanism, valuations = make(items=2), _valuations(batch=5, items=2)
    settings = AuditSettings(points=9, refine_starts=2, refine_rounds=3, max_profiles=100)  # several chunks
    got = audit_misreports(mechanism, valuations, settings)
    want = audit_misreports(PlainCalls(mechanism), valuations, settings)
    assert isinstance(mechanism, LotteryAMA) or float(want.regret.max()) > 1e-4  # the lottery AMA is truthful
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("make", MECHANISMS, ids=IDS)
def test_without_prepared_calls_the_engines_make_plain_calls_bit_for_bit(make) -> None:
    """What reproduces the runs recorded before prepared calls (on the tolerance rule and in float32 too)."""
    mechanism, valuations = make(sinkhorn=SinkhornSettings(), prepared_calls=False).float(), _valuations().float()
    search = MisreportSearch(steps=5, restarts=1)
    found = [find_misreports(m, valuations, search, generator=torch.Generator().manual_seed(0))
             for m in (mechanism, PlainCalls(mechanism))]
    assert torch.equal(found[0], found[1])
    for got, want in zip(regret(mechanism, valuations, found[0]), regret(PlainCalls(mechanism), valuations, found[0])):
        assert torch.equal(got, want)
    with pytest.raises(ValueError, match="prepared_calls must be true or false"):
        make(prepared_calls="no")


def test_under_the_tolerance_rule_the_potential_mechanism_agrees_to_the_tolerance() -> None:
    tight = SinkhornSettings(eps_final=0.1, tol=1e-7, max_iter=5000)
    mechanism, valuations = _potential(sinkhorn=tight), _valuations()
    search = MisreportSearch(steps=5, lr=0.05)
    found = find_misreports(PlainCalls(mechanism), valuations, search)
    got, want = regret(mechanism, valuations, found), regret(PlainCalls(mechanism), valuations, found)
    torch.testing.assert_close(got.payment, want.payment, atol=1e-6, rtol=0)
    torch.testing.assert_close(got.regret, want.regret, atol=1e-6, rtol=0)


class SolveCounter:
    """Counts :meth:`Sinkhorn.solve` calls and the problems they solve."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls, self.problems = 0, 0
        solve = Sinkhorn.solve

        def counted(solver, cost, *args, **kwargs):
            self.calls += 1
            self.problems += cost.shape[0]
            return solve(solver, cost, *args, **kwargs)

        monkeypatch.setattr(Sinkhorn, "solve", counted)

    def take(self) -> tuple[int, int]:
        counts, (self.calls, self.problems) = (self.calls, self.problems), (0, 0)
        return counts


@pytest.mark.parametrize("make", MECHANISMS, ids=IDS)
def test_a_search_solves_the_parameter_only_work_once(make, monkeypatch: pytest.MonkeyPatch) -> None:
    mechanism, valuations = make(), _valuations()  # batch B = 12, n = 2 agents
    steps, profiles = 5, 2 * 12  # one start: n * B deviation profiles per call, steps + 1 calls
    counter = SolveCounter(monkeypatch)
    find_misreports(mechanism, valuations, MisreportSearch(steps=steps))
    prepared = counter.take()
    find_misreports(PlainCalls(mechanism), valuations, MisreportSearch(steps=steps))
    plain = counter.take()
    if isinstance(mechanism, LotteryAMA):  # the menu (16 options): once, instead of at every call
        assert prepared == (1, 16) and plain == (steps + 1, (steps + 1) * 16)
    else:  # V(0_i, v_-i): n * B problems once, instead of n problems per profile at every call
        assert prepared == (steps + 2, (steps + 1) * profiles + 2 * 12)
        assert plain == (2 * (steps + 1), (steps + 1) * (profiles + 2 * profiles))


@pytest.mark.parametrize("make", MECHANISMS, ids=IDS)
def test_prepared_calls_run_under_inference_mode_and_check_the_dtype(make) -> None:
    mechanism = make()
    with torch.inference_mode():
        report = measure(mechanism, _valuations(), MisreportSearch(steps=2, restarts=1))
    assert report.n_samples == 12 and report.revenue_mean > 0
    with pytest.raises(ValueError, match="float32"):
        mechanism.prepare(_valuations().float())
