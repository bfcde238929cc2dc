"""The fixed-schedule Sinkhorn solve as one fused Triton kernel.

Each program runs the whole schedule on a block of small problems ``(N, M)`` (padded to powers of two) in registers,
with the arithmetic of :func:`._fixed.torch_plan`.  Counts and epsilons are device tensors: a recalibration changes
no launch parameter (CUDA-graph safe).  ``TRITON_INTERPRET=1`` (set before importing Triton) runs it on the CPU.
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import torch
from torch import Tensor

from mechanisms.sinkhorn._iterations import safe_log

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised where Triton is absent
    triton = None

__all__ = ["available", "triton_plan"]

_ELEMENTS_PER_PROGRAM = 1024


def available() -> bool:
    """Whether Triton is importable."""
    return triton is not None


if triton is not None:

    @triton.jit
    def _lse(x, axis: tl.constexpr):
        """log-sum-exp over ``axis``; ``-inf`` where every entry is ``-inf``."""
        top = tl.max(x, axis)
        top = tl.where(top == float("-inf"), 0.0, top)
        return tl.log(tl.sum(tl.exp(x - tl.expand_dims(top, axis)), axis)) + top

    @triton.jit
    def _sinkhorn_kernel_body(cost_ptr, log_a_ptr, log_b_ptr, eps_ptr, iters_ptr, plan_ptr, batch, stages,
                              N: tl.constexpr, M: tl.constexpr, NP: tl.constexpr, MP: tl.constexpr,
                              BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        problem = pid * BLOCK + tl.arange(0, BLOCK)
        row = tl.arange(0, NP)
        col = tl.arange(0, MP)
        p3 = problem[:, None, None]
        r3 = row[None, :, None]
        c3 = col[None, None, :]
        inside = (p3 < batch) & (r3 < N) & (c3 < M)
        offsets = p3 * (N * M) + r3 * M + c3
        cost = tl.load(cost_ptr + offsets, mask=inside, other=0.0).to(tl.float32)
        high = tl.max(tl.max(tl.where(inside, cost, float("-inf")), 2), 1)
        low = tl.min(tl.min(tl.where(inside, cost, float("inf")), 2), 1)
        kernel = (high + low)[:, None, None] / 2 - cost
        neg_inf = float("-inf")
        log_a = tl.load(log_a_ptr + row, mask=row < N, other=neg_inf)  # (NP,)
        log_b = tl.load(log_b_ptr + col, mask=col < M, other=neg_inf)  # (MP,)
        f = tl.zeros((BLOCK, NP), dtype=tl.float32) + tl.where(log_a > neg_inf, 0.0, neg_inf)[None, :]
        eps = tl.load(eps_ptr).to(tl.float32)
        g = eps * (log_b[None, :] - _lse(tl.where(inside, (kernel + f[:, :, None]) / eps, neg_inf), 1))
        stage = 0
        while stage < stages:  # while loops: the interpreter cannot range() over runtime values
            eps = tl.load(eps_ptr + stage).to(tl.float32)
            count = tl.load(iters_ptr + stage)
            done = 0
            while done < count:
                f = eps * (log_a[None, :] - _lse(tl.where(inside, (kernel + g[:, None, :]) / eps, neg_inf), 2))
                g = eps * (log_b[None, :] - _lse(tl.where(inside, (kernel + f[:, :, None]) / eps, neg_inf), 1))
                done += 1
            stage += 1
        plan = tl.exp(tl.where(inside, (f[:, :, None] + g[:, None, :] + kernel) / eps, neg_inf))
        tl.store(plan_ptr + offsets, plan.to(plan_ptr.dtype.element_ty), mask=inside)

    if os.environ.get("TRITON_INTERPRET") == "1":  # the CPU interpreter cannot time configurations
        _sinkhorn_kernel = _sinkhorn_kernel_body
    else:  # warps per program, tuned per (batch, N, M) on first use
        _sinkhorn_kernel = triton.autotune(
            configs=[triton.Config({}, num_warps=warps) for warps in (1, 2, 4, 8)], key=["batch", "N", "M"]
        )(_sinkhorn_kernel_body)


@functools.lru_cache(maxsize=64)
def _schedule(device: torch.device, epsilons: tuple[float, ...], iterations: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """The schedule as device tensors (float32 epsilons, int32 counts), made once per schedule."""
    as_tensor = functools.partial(torch.tensor, device=device)
    return as_tensor(epsilons, dtype=torch.float32), as_tensor(iterations, dtype=torch.int32)


def triton_plan(cost: Tensor, a: Tensor, b: Tensor, epsilons: Sequence[float], iterations: Sequence[int]) -> Tensor:
    """Plan ``(batch, N, M)`` of the fixed schedule, computed in float32 by one kernel launch; ``a`` ``(N,)``, ``b``
    ``(M,)``.  The schedule's device copy is cached: a captured call copies nothing once the schedule has run."""
    if triton is None:
        raise RuntimeError("the triton backend needs Triton (pip install triton), or use backend='torch'")
    batch, n, m = cost.shape
    eps, counts = _schedule(cost.device, tuple(map(float, epsilons)), tuple(map(int, iterations)))
    cost = cost.contiguous()
    plan = torch.empty_like(cost)
    np_, mp = triton.next_power_of_2(n), triton.next_power_of_2(m)
    block = max(1, _ELEMENTS_PER_PROGRAM // (np_ * mp))
    grid = (triton.cdiv(batch, block),)
    _sinkhorn_kernel[grid](cost, safe_log(a).float(), safe_log(b).float(), eps, counts, plan, batch, len(eps),
                           N=n, M=m, NP=np_, MP=mp, BLOCK=block)
    return plan
