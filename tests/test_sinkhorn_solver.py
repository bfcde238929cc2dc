"""The solver object of ``mechanisms.sinkhorn`` (issue 18, part 4): one ``Sinkhorn`` built from frozen settings, the
fixed schedule as its stopping rule ``FixedIterations``, one home for each check of a setting."""

from __future__ import annotations

import math

import pytest
import torch

from adversary.search import MisreportSearch
from mechanisms.demand import Demand
from mechanisms.networks import MLP
from mechanisms.sinkhorn import (
    FixedIterations,
    GeometricEpsilonSchedule,
    Sinkhorn,
    SinkhornSettings,
    Tolerance,
    fixed_plan,
    solve,
)
from mechanisms.sinkhorn_auction import SinkhornMechanism
from training.fast_step import FastStep, FastStepSettings

EPSILONS = GeometricEpsilonSchedule(1.0, 0.05, 6).values()
COST = torch.rand(8, 3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
A, B = Demand("unit").marginals(2, 3)  # (3,), (4,): two agents and a dummy, three items and a dummy
A, B = A.double(), B.double()


@pytest.mark.parametrize(
    "tol, max_iter, message",
    [
        (0.0, 10, "tol must be positive and below 1 (a relative marginal error), got 0.0"),
        (-1e-3, 10, "tol must be positive and below 1 (a relative marginal error), got -0.001"),
        (math.inf, 10, "tol must be positive and below 1 (a relative marginal error), got inf"),
        (1.0, 10, "tol must be positive and below 1 (a relative marginal error), got 1.0"),
        (math.nan, 10, "tol must be positive and below 1 (a relative marginal error), got nan"),
        ("0.01", 10, "tol must be positive and below 1 (a relative marginal error), got '0.01'"),
        (1e-2, 0, "max_iter must be a positive integer, got 0"),
        (1e-2, 5.0, "max_iter must be a positive integer, got 5.0"),
        (1e-2, True, "max_iter must be a positive integer, got True"),
    ],
)
def test_every_entry_point_refuses_a_bad_stopping_rule_with_the_same_line(tol, max_iter, message: str) -> None:
    """The settings, the rule itself and the functional solve share one check (they used to accept different values)."""
    calls = [
        lambda: Tolerance(tol, max_iter),
        lambda: SinkhornSettings(tol=tol, max_iter=max_iter),
        lambda: solve(COST, A, B, epsilons=EPSILONS, tol=tol, max_iter=max_iter),
        lambda: SinkhornMechanism(2, 3, sinkhorn=SinkhornSettings(tol=tol, max_iter=max_iter)),
    ]
    for call in calls:
        with pytest.raises(ValueError) as error:
            call()
        assert str(error.value) == message


def test_fixed_iterations_are_a_stopping_rule_of_the_same_solver() -> None:
    tolerance = Sinkhorn(EPSILONS, Tolerance(1e-9, 10_000)).solve(COST, A, B)
    assert tolerance.converged and tolerance.marginal_error < 1e-9
    fixed_solver = Sinkhorn(EPSILONS, FixedIterations(tolerance.stage_iterations), backend="torch")
    fixed = fixed_solver.solve(COST, A, B)
    assert (fixed.converged, fixed.f, fixed.iterations) == (None, None, sum(tolerance.stage_iterations))
    assert math.isnan(fixed.marginal_error) and fixed.stage_iterations == tolerance.stage_iterations
    # independent check: the fixed plan meets the marginals (rows to 1e-8, columns exactly up to rounding)
    torch.testing.assert_close(fixed.plan.sum(2), A.expand(8, -1), atol=1e-8, rtol=0)
    torch.testing.assert_close(fixed.plan.sum(1), B.expand(8, -1), atol=1e-12, rtol=0)
    torch.testing.assert_close(fixed.plan, tolerance.plan, atol=1e-8, rtol=0)
    assert torch.equal(fixed.plan, fixed_plan(COST, A, B, epsilons=EPSILONS, iterations=tolerance.stage_iterations,
                                              backend="torch"))


def test_the_solver_of_the_settings_and_its_refusals() -> None:
    settings = SinkhornSettings(eps_steps=4, tol=1e-3, max_iter=50, grad="unroll", backend="torch")
    solver = Sinkhorn.from_settings(settings)
    assert solver == Sinkhorn(GeometricEpsilonSchedule(1.0, 0.05, 4).values(), Tolerance(1e-3, 50), "unroll", "torch")
    fixed = Sinkhorn.from_settings(settings.with_fixed_iterations((1, 2, 3, 4)))
    assert fixed.stopping == FixedIterations((1, 2, 3, 4)) and settings.stopping == Tolerance(1e-3, 50)
    with pytest.raises(ValueError, match="calibrate needs a solver on the tolerance rule"):
        fixed.calibrate(COST, A, B)
    with pytest.raises(ValueError, match="init and check_every apply to the tolerance rule"):
        fixed.solve(COST, A, B, check_every=2)
    with pytest.raises(ValueError, match=r"fixed iterations need one count per epsilon \(4\), got 3"):
        Sinkhorn(solver.epsilons, FixedIterations((1, 2, 3)))
    with pytest.raises(ValueError, match="each fixed iteration count must be an integer >= 0, got -1"):
        FixedIterations((1, -1))
    with pytest.raises(ValueError, match="stopping rule must be Tolerance"):
        Sinkhorn(solver.epsilons, stopping=1e-3)


def test_the_fast_step_passes_a_solver_and_leaves_the_mechanism_alone() -> None:
    """The calibrated fixed iterations reach the mechanism as an argument: its settings object is never swapped."""
    torch.manual_seed(0)
    mechanism = SinkhornMechanism(1, 2, allocation_net=MLP((8,)), payment_net=MLP((8,)))
    settings = mechanism.settings
    low, high = torch.zeros(1, 1), torch.ones(1, 1)
    step = FastStep(mechanism, MisreportSearch(steps=2), lambda revenue, regrets: -revenue.mean(), low, high,
                    FastStepSettings(enabled=True, backend="torch"))
    step(torch.rand(8, 1, 2))
    assert mechanism.settings is settings and mechanism.solver == Sinkhorn.from_settings(settings)
    counts = step.last_calibration.iterations
    assert mechanism.last_iterations == sum(counts)  # the step's forward passes ran the fixed iterations
    mechanism(torch.rand(4, 1, 2))  # and a plain forward the tolerance rule again
    assert not math.isnan(mechanism.last_marginal_error) and mechanism.last_marginal_error < settings.tol
