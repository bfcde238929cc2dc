"""Adam over stacked ensemble parameters ``(K, ...)`` with one learning rate per member.

Adam is elementwise, so one Adam over K members' stacked parameters is K independent Adams, but for the learning
rate, a scalar of ``torch.optim.Adam``'s parameter group; :class:`MemberAdam` is torch's Adam (no weight decay, no
amsgrad; the arithmetic of its single-tensor path) with K rates, one per leading index of every parameter.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

__all__ = ["MemberAdam"]


class MemberAdam(torch.optim.Optimizer):
    """Adam with ``lr[k]`` for slice ``k`` of every parameter ``(K, ...)``.

    ``lr``: K positive learning rates (``param_groups[0]["lr"]``, a list; assign a new list to change
    them, e.g. on a schedule).  ``betas``, ``eps``: as ``torch.optim.Adam``.
    """

    def __init__(self, params: Iterable[nn.Parameter], lr: Sequence[float], betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        lr = [float(value) for value in lr]
        if not lr or not all(math.isfinite(value) and value > 0 for value in lr):
            raise ValueError(f"MemberAdam needs one positive learning rate per member, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1 and eps >= 0):
            raise ValueError(f"MemberAdam needs betas in [0, 1) and eps >= 0, got {betas}, {eps}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() == 0 or p.shape[0] != len(lr):
                    raise ValueError(f"MemberAdam: every parameter needs a leading member dimension {len(lr)}, "
                                     f"got {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One Adam step of every parameter with a gradient (after ``closure``, if given; its result returned)."""
        result = None
        if closure is not None:
            with torch.enable_grad():
                result = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                step, grad = state["step"], p.grad
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                lr = torch.tensor(group["lr"], dtype=p.dtype, device=p.device).view(-1, *[1] * (p.dim() - 1))
                step_size = lr / (1 - beta1**step)  # (K, 1, ...)
                denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**step)).add_(group["eps"])
                p.sub_(exp_avg / denom * step_size)
        return result
