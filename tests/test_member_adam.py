"""MemberAdam: one Adam over stacked (K, ...) parameters equals K torch Adams, each at its member's learning rate."""

import pytest
import torch

from training.member_adam import MemberAdam


def _grads(steps: int, shape: tuple[int, ...]) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(steps)]


@pytest.mark.parametrize("rates", [[1e-3, 1e-3, 1e-3], [1e-3, 3e-2, 0.5]])
def test_member_adam_is_k_torch_adams(rates: list[float]) -> None:
    start = torch.randn(3, 4, 5, dtype=torch.float64)
    stacked = torch.nn.Parameter(start.clone())
    singles = [torch.nn.Parameter(start[k].clone()) for k in range(3)]
    mine = MemberAdam([stacked], lr=rates, betas=(0.8, 0.99), eps=1e-6)
    theirs = [torch.optim.Adam([p], lr=lr, betas=(0.8, 0.99), eps=1e-6) for p, lr in zip(singles, rates)]
    for step, grad in enumerate(_grads(6, (3, 4, 5))):
        if step == 3:  # a schedule changes the rates between steps
            rates = [r / 2 for r in rates]
            mine.param_groups[0]["lr"] = rates
            for optimizer, lr in zip(theirs, rates):
                optimizer.param_groups[0]["lr"] = lr
        stacked.grad = grad
        mine.step()
        for k, (p, optimizer) in enumerate(zip(singles, theirs)):
            p.grad = grad[k].clone()
            optimizer.step()
            torch.testing.assert_close(stacked.detach()[k], p.detach(), atol=1e-14, rtol=0)


def test_one_torch_adam_over_stacked_parameters_is_k_adams_at_one_rate() -> None:
    start = torch.randn(3, 4, dtype=torch.float64)
    stacked, singles = torch.nn.Parameter(start.clone()), [torch.nn.Parameter(start[k].clone()) for k in range(3)]
    one, many = torch.optim.Adam([stacked], lr=0.01), [torch.optim.Adam([p], lr=0.01) for p in singles]
    for grad in _grads(5, (3, 4)):
        stacked.grad = grad
        one.step()
        for k, (p, optimizer) in enumerate(zip(singles, many)):
            p.grad = grad[k].clone()
            optimizer.step()
            assert torch.equal(stacked.detach()[k], p.detach())


def test_bad_member_adam_settings_fail_in_one_line() -> None:
    with pytest.raises(ValueError, match="one positive learning rate per member"):
        MemberAdam([torch.nn.Parameter(torch.zeros(2, 3))], lr=[1e-3, 0.0])
    with pytest.raises(ValueError, match="leading member dimension 2"):
        MemberAdam([torch.nn.Parameter(torch.zeros(3, 3))], lr=[1e-3, 1e-3])
