"""The stacked (ensemble) mechanism: member k computes exactly what the single mechanism of seed k computes."""

from typing import Callable

import pytest
import torch
from torch import nn

from adversary.deviation import prepared
from adversary.regret import regret
from adversary.search import MisreportSearch, find_misreports
from mechanisms.ensemble import BatchedLinear, ensemble_size, fold, member_mechanism, member_state_dict, stack_members, unfold
from mechanisms.lottery_ama import LotteryAMA
from mechanisms.networks import MLP
from mechanisms.potential_auction import PotentialSinkhornMechanism
from mechanisms.regretnet import RegretNet
from mechanisms.sinkhorn import SinkhornSettings
from mechanisms.sinkhorn_auction import SinkhornMechanism

SEEDS = (0, 1, 2)


def sinkhorn(demand: str = "unit") -> nn.Module:
    # float64 and a tight tolerance: the folded batch stops on its worst profile (see mechanisms/ensemble.py)
    tight = SinkhornSettings(eps_init=0.1, eps_final=0.05, eps_steps=2, tol=1e-13, max_iter=5000)
    return SinkhornMechanism(2, 3, demand, sinkhorn=tight, allocation_net=MLP((16, 16)), payment_net=MLP((16, 16)))


def regretnet(demand: str = "unit") -> nn.Module:
    return RegretNet(2, 3, demand, allocation_net=MLP((16, 16)), payment_net=MLP((16, 16)))


def seeded(factory: Callable[[], nn.Module]) -> list[nn.Module]:
    members = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        members.append(factory().double())
    return members


FACTORIES = {
    "sinkhorn-unit": sinkhorn,
    "sinkhorn-exactly_k": lambda: sinkhorn("exactly_k"),
    "regretnet-unit": regretnet,
    "regretnet-additive": lambda: regretnet("additive"),
}


@pytest.mark.parametrize("name", FACTORIES)
def test_member_k_of_the_stack_is_the_mechanism_of_seed_k(name: str) -> None:
    members = seeded(FACTORIES[name])
    stacked = stack_members(members)
    assert ensemble_size(stacked) == 3
    bids = torch.rand(5, 3, 2, 3, dtype=torch.float64)  # (batch, member, agents, items): other bids per member
    allocation, payment = stacked(fold(bids))
    allocation, payment = unfold(allocation, 3), unfold(payment, 3)
    for k, member in enumerate(members):
        alone_allocation, alone_payment = member(bids[:, k])
        torch.testing.assert_close(allocation[:, k], alone_allocation, atol=1e-12, rtol=0)
        torch.testing.assert_close(payment[:, k], alone_payment, atol=1e-12, rtol=0)
        exported = member_mechanism(stacked, k)
        assert type(exported) is type(member)
        for key, value in member.state_dict().items():
            assert torch.equal(member_state_dict(stacked, k)[key], value) and torch.equal(exported.state_dict()[key], value)
        assert not any(isinstance(m, BatchedLinear) for m in exported.modules())


def test_a_fixed_sinkhorn_schedule_gives_each_member_its_own_result() -> None:
    members = seeded(lambda: SinkhornMechanism(2, 3, sinkhorn=SinkhornSettings(eps_steps=3), allocation_net=MLP((16,)),
                                                payment_net=MLP((16,))))
    stacked = stack_members(members)
    bids = torch.rand(4, 3, 2, 3, dtype=torch.float64)
    schedule = stacked.calibrate(fold(bids)).iterations
    for mechanism in (stacked, *members):
        mechanism.settings = mechanism.settings.with_fixed_iterations(schedule)
    allocation, _ = stacked(fold(bids))
    for k, member in enumerate(members):
        torch.testing.assert_close(unfold(allocation, 3)[:, k], member(bids[:, k])[0], atol=1e-12, rtol=0)


def test_search_and_regret_on_the_folded_batch_are_the_members_own() -> None:
    members = seeded(regretnet)
    stacked = stack_members(members)
    valuations = torch.rand(6, 2, 3, dtype=torch.float64)  # the same profiles for every member
    folded = fold(valuations.unsqueeze(1).expand(6, 3, 2, 3))
    search = MisreportSearch(steps=5, lr=0.1)
    misreports = find_misreports(stacked, folded, search)
    regrets = unfold(regret(stacked, folded, misreports).regret, 3)
    for k, member in enumerate(members):
        alone = find_misreports(member, valuations, search)
        torch.testing.assert_close(unfold(misreports, 3)[:, k], alone, atol=1e-12, rtol=0)
        torch.testing.assert_close(regrets[:, k], regret(member, valuations, alone).regret, atol=1e-12, rtol=0)


def test_gradients_of_a_member_loss_reach_only_that_member() -> None:
    stacked = stack_members(seeded(regretnet))
    _, payment = stacked(fold(torch.rand(4, 3, 2, 3, dtype=torch.float64)))
    unfold(payment, 3)[:, 1].sum().backward()
    for parameter in stacked.parameters():
        assert parameter.grad[1].abs().sum() > 0
        assert parameter.grad[0].abs().sum() == 0 and parameter.grad[2].abs().sum() == 0


def test_bad_stacks_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        stack_members([])
    with pytest.raises(ValueError, match="of one class"):
        stack_members([regretnet(), sinkhorn()])
    with pytest.raises(ValueError, match="another architecture"):
        stack_members([regretnet(), RegretNet(2, 3, allocation_net=MLP((8, 8)), payment_net=MLP((8, 8)))])
    stacked = stack_members([regretnet(), regretnet()])
    with pytest.raises(ValueError, match="multiple of 2 rows"):
        stacked(torch.rand(3, 2, 3))
    with pytest.raises(ValueError, match=r"member must be an integer in \[0, 2\)"):
        member_mechanism(stacked, 2)


@pytest.mark.parametrize("kind", ["potential", "lottery"])
def test_a_member_by_member_stack_prepares_each_members_own_calls(kind: str) -> None:
    torch.set_default_dtype(torch.float64)
    try:
        members = []
        for seed in range(3):
            torch.manual_seed(seed)
            member = PotentialSinkhornMechanism(2, 3) if kind == "potential" else LotteryAMA(2, 3, options=8)
            with torch.no_grad():
                for p in member.parameters():
                    p.add_(0.1 * torch.randn_like(p))
            members.append(member)
        stacked = stack_members(members)
        values = torch.rand(4, 3, 2, 3)
        calls = prepared(stacked, fold(values))
        singles = [prepared(m, values[:, k]) for k, m in enumerate(members)]
        rows = torch.rand(2, 2, 12, 3)  # (starts, agents, batch * K, items)
        sources, reports = torch.tensor([0, 5, 7, 10, 2]), torch.rand(5, 3)
        for k, single in enumerate(singles):
            for mine, theirs in zip(calls.truthful(), single.truthful()):
                torch.testing.assert_close(unfold(mine, 3)[:, k], theirs, atol=1e-12, rtol=0)
            for mine, theirs in zip(calls.deviations(rows), single.deviations(rows[:, :, k::3])):
                torch.testing.assert_close(mine[:, :, k::3], theirs, atol=1e-12, rtol=0)
            torch.testing.assert_close(calls.utilities(rows)[:, k::3], single.utilities(rows[:, :, k::3]), atol=1e-12, rtol=0)
            mask = sources % 3 == k
            for mine, theirs in zip(calls.deviate(1, sources, reports), single.deviate(1, sources[mask] // 3, reports[mask])):
                torch.testing.assert_close(mine[mask], theirs, atol=1e-12, rtol=0)
        assert type(calls).__name__ == "_MemberCalls" and type(singles[0]).__name__ != "PreparedCall"
    finally:
        torch.set_default_dtype(torch.float32)
