"""The timed training step of ``benchmarks/bench_step.py``: :class:`Step` (one step of a variant, assembled from
the functions :class:`training.AuctionModule` calls, without Lightning's loop), :class:`Case` (a built, warmed-up
case) and the ways to time them (:func:`measure`, :func:`interleaved`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from typing import Callable

import torch
from torch import Tensor, nn

from adversary.regret import regret
from adversary.search import MisreportSearch, find_misreports
from benchmarks.bench_step_cases import Setting, build_mechanism
from lagrangian.base import member_penalties
from lagrangian.paper import LagrangeRule, RhoStaircase
from mechanisms.ensemble import fold_shared, stack_members, unfold
from training.fast_step import FastStep, FastStepSettings
from training.lr_schedule import optimizer_config
from training.members import initial_penalties, member_losses

RHO, LAMBDA = RhoStaircase(), LagrangeRule()  # the paper's: rho + 1 every 2 steps, lambda every 100


class Step:
    """One training step of ``variant`` for a mechanism, with its own Adam, lambda (5) and rho (1); ``members`` > 1:
    a stacked ensemble trained on the folded batch ``(batch * K, agents, items)``, as the training module does."""

    def __init__(self, mechanism: nn.Module, variant: str, device: torch.device, search_steps: int,
                 members: int = 1) -> None:
        n = mechanism.n_agents
        self.mechanism, self.variant, self.count, self.members = mechanism, variant, 0, members
        self.search = MisreportSearch(steps=search_steps, lr=0.1)
        config = optimizer_config(partial(torch.optim.Adam), mechanism.parameters(), [(1e-3, None)] * members, 1)
        self.optimizer = config["optimizer"] if isinstance(config, dict) else config
        multipliers, rho = initial_penalties([5.0] * members, [1.0] * members, n)
        self.lagrange_multipliers, self.rho = multipliers.to(device), rho.to(device)
        self.low, self.high = torch.zeros(n, 1, device=device), torch.ones(n, 1, device=device)
        self.fast = None
        if variant != "eager":
            settings = FastStepSettings(enabled=True, cuda_graph=variant == "graph")
            self.fast = FastStep(mechanism, self.search, self._loss, self.low, self.high, settings)

    def _loss(self, revenue: Tensor, regrets: Tensor) -> Tensor:
        """The sum of the members' Lagrangians (folded ``(batch * K,)`` revenue, ``(batch * K, agents)`` regrets)."""
        return member_losses(revenue, regrets, *member_penalties(self)).sum()

    def __call__(self, valuations: Tensor) -> None:
        """One step on ``(batch, agents, items)`` valuations, shared by every member."""
        if self.members > 1:  # every member on the same batch, folded (member innermost)
            valuations = fold_shared(valuations, self.members)
        if self.fast is not None:
            regrets = self.fast(valuations).regrets
        else:
            misreports = find_misreports(self.mechanism, valuations, self.search)
            terms = regret(self.mechanism, valuations, misreports)
            regrets = terms.regret
            loss = self._loss(terms.payment.sum(-1), regrets)
            self.optimizer.zero_grad()
            loss.backward()
        self.optimizer.step()
        self.count += 1
        self.rho.fill_(RHO(self.count))  # the paper's schedules, in place (no host synchronization)
        if LAMBDA.due(self.count):
            multipliers, rho = member_penalties(self)  # (K, agents), (K,)
            LAMBDA.apply(multipliers, rho.view(-1, 1), unfold(regrets.detach(), self.members).mean(0))


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA; nothing on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of one call of ``fn`` (synchronized)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def kernels_per_step(step: Step, valuations: Tensor) -> int:
    """CUDA kernels one step launches (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step(valuations)
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type.name == "CUDA")


class Case:
    """One (setting, mechanism, variant) built and warmed up; ``members`` > 1: an ensemble (seeds 0..members-1)."""

    def __init__(self, setting: Setting, mechanism_name: str, variant: str, device: torch.device,
                 args: argparse.Namespace, members: int = 1) -> None:
        name, demand, agents, items, batch = setting
        self.batch = args.batch or batch
        built = [build_mechanism(mechanism_name, demand, agents, items, seed) for seed in range(members)]
        self.mechanism = (built[0] if members == 1 else stack_members(built)).to(device)
        self.step = Step(self.mechanism, variant, device, args.search_steps, members)
        self.device = device
        generator = torch.Generator(device=device).manual_seed(0)
        self.batches = [torch.rand(self.batch, agents, items, device=device, generator=generator) for _ in range(4)]
        self.row = {"setting": name, "members": members, "mechanism": mechanism_name, "variant": variant,
                    "batch": self.batch}
        for i in range(args.warmup):
            self.step(self.batches[i % 4])
        sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def timed_step(self, i: int) -> float:
        """Seconds of one step on batch ``i % 4`` (synchronized)."""
        return seconds(lambda: self.step(self.batches[i % 4]), self.device)

    def result(self, times: list[float], elapsed: float) -> dict:
        """The case's row: its median and fastest ms per step over ``times`` (seconds), profiles per second, peak
        memory (CUDA) and the Sinkhorn iterations of the last solve."""
        ms, cuda = 1000 * statistics.median(times), self.device.type == "cuda"
        return {**self.row, "ms_per_step": ms, "steps": len(times), "elapsed_s": elapsed,
                "ms_min": 1000 * min(times), "profiles_per_s": self.batch / (ms / 1000),
                "peak_memory_mib": torch.cuda.max_memory_allocated(self.device) / 2**20 if cuda else None,
                "sinkhorn_iterations_per_solve": getattr(self.mechanism, "last_iterations", None)}


def timed(case: Case, args: argparse.Namespace) -> tuple[list[float], float]:
    """Seconds per step and seconds in all: ``--steps`` steps, or, with ``--window W``, every step started inside
    a window shared with other processes: print ``ready``, read the window's start (``time.time()``) from stdin
    and start steps from then until W seconds later (the elapsed time includes the final step)."""
    if not args.window:
        starts, begin = range(args.steps), time.time()
    else:
        print("ready", flush=True)
        begin = float(sys.stdin.readline())
        time.sleep(max(0.0, begin - time.time()))
        starts = iter(lambda: time.time() < begin + args.window, False)
    return [case.timed_step(i) for i, _ in enumerate(starts)], time.time() - begin


def measure(setting: Setting, mechanism_name: str, variant: str, device: torch.device, args: argparse.Namespace,
            members: int = 1) -> dict:
    """One case's row; ``members`` > 1: an ensemble of that many members (seeds 0..members-1)."""
    case = Case(setting, mechanism_name, variant, device, args, members)
    row = case.result(*timed(case, args))
    if args.count_kernels and device.type == "cuda" and variant != "graph":
        row["kernels_per_step"] = kernels_per_step(case.step, case.batches[0])
    return row


def interleaved(cases: list[tuple[Setting, str, str]], device: torch.device, args: argparse.Namespace) -> list[dict]:
    """Every case built and warmed up, then ``--steps`` rounds of one timed step per case, in turn; each row
    also gives its median's ratio to that of its setting's first case (``ratio_to_first``)."""
    built = [Case(setting, mechanism, variant, device, args) for setting, mechanism, variant in cases]
    times: list[list[float]] = [[] for _ in built]
    begin = time.time()
    for i in range(args.steps):
        for case, spent in zip(built, times):
            spent.append(case.timed_step(i))
    elapsed = time.time() - begin
    rows = [case.result(spent, elapsed) for case, spent in zip(built, times)]
    first: dict[str, float] = {}
    for row in rows:
        row["ratio_to_first"] = row["ms_per_step"] / first.setdefault(row["setting"], row["ms_per_step"])
    return rows
