"""On a GPU: the CUDA-graph fast step of an ensemble computes what the uncaptured one does (skipped without CUDA)."""

import pytest
import torch

from adversary.search import MisreportSearch
from mechanisms.ensemble import fold, stack_members
from mechanisms.networks import MLP
from mechanisms.regretnet import RegretNet
from mechanisms.sinkhorn_auction import SinkhornMechanism
from training.members import member_losses
from training.fast_step import FastStep, FastStepSettings

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("kind", ["sinkhorn", "regretnet"])
def test_the_captured_ensemble_step_equals_the_uncaptured_one(kind: str) -> None:
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        nets = {"allocation_net": MLP((32, 32)), "payment_net": MLP((32, 32))}
        members.append(SinkhornMechanism(2, 3, **nets) if kind == "sinkhorn" else RegretNet(2, 3, **nets))
    stacked = stack_members(members).cuda()
    multipliers, rho = torch.full((3, 2), 5.0, device="cuda"), torch.ones(3, device="cuda")
    low, high = torch.zeros(2, 1, device="cuda"), torch.ones(2, 1, device="cuda")

    def loss(revenue: torch.Tensor, regrets: torch.Tensor) -> torch.Tensor:
        return member_losses(revenue, regrets, multipliers, rho).sum()

    valuations = fold(torch.rand(64, 1, 2, 3, device="cuda").expand(64, 3, 2, 3))
    search = MisreportSearch(steps=5)
    outputs = {}
    for graph in (False, True):
        step = FastStep(stacked, search, loss, low, high, FastStepSettings(enabled=True, cuda_graph=graph, backend="torch"))
        torch.manual_seed(0)  # the same calibration profiles
        for _ in range(2):  # the second call replays the graph
            result = step(valuations)
        outputs[graph] = (result.loss.clone(), [p.grad.clone() for p in stacked.parameters()])
    torch.testing.assert_close(outputs[True][0], outputs[False][0], atol=1e-5, rtol=1e-5)
    for captured, eager in zip(outputs[True][1], outputs[False][1]):
        torch.testing.assert_close(captured, eager, atol=1e-5, rtol=1e-4)
