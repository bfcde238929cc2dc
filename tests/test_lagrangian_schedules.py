"""The Lagrangian schedules of lagrangian/: rho as a pure function of the step, the config group."""

import pytest
import torch

from lagrangian.base import LagrangianState

from lagrangian.paper import LagrangeRule, RhoStaircase
from training.module import AuctionModule
from mechanisms.regretnet import RegretNet


def test_rho_staircase_equals_the_incremental_schedule() -> None:
    for increment, every, cap, init in ((1.0, 2, None, 1.0), (0.5, 3, 2.0, 1.0), (1.0, 1, 0.5, 1.0)):
        staircase, rho = RhoStaircase(increment, every, cap, init), init
        for step in range(20):
            if step and step % every == 0:  # the callbacks' former in-place rule
                rho = rho + increment if cap is None else min(rho + increment, cap)
            assert staircase(step) == pytest.approx(rho)


def test_lagrange_rule_and_state_contract() -> None:
    rule = LagrangeRule(3)
    assert [rule.due(step) for step in range(1, 7)] == [False, False, True, False, False, True]
    module = AuctionModule(RegretNet(2, 2))
    assert isinstance(module, LagrangianState)
    rule.apply(module.lagrange_multipliers, module.rho, torch.tensor([0.5, 0.25]))
    assert module.lagrange_multipliers.tolist() == [5.5, 5.25]
    with pytest.raises(ValueError, match="every_n_steps"):
        RhoStaircase(every_n_steps=0)

