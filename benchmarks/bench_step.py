"""Time one complete training step: misreport search, regret, loss, backward, optimizer step, rho/lambda.

    python benchmarks/bench_step.py --device cpu --threads 1          # the CPU table
    python benchmarks/bench_step.py --device cuda                     # the GPU table
    python benchmarks/bench_step.py --device cuda --concurrent 1,2,4,6 --window 20   # runs sharing one GPU
    python benchmarks/bench_step.py --device cuda --ensemble 1,2,4,8,16   # K members as one model (docs/ensembles.md)

Every (setting, mechanism, variant) is warmed up, then timed over ``--steps``
steps (synchronized); the table gives the median ms per step, profiles per
second, the peak memory and, with ``--count-kernels`` on CUDA, the kernels
launched per step (torch.profiler, eager variants).  Variants:

* ``eager``: the training step of :class:`training.AuctionModule` without the fast
  path (tolerance Sinkhorn, checked inputs, torch Adam for the search);
* ``fast``: :class:`training.fast_step.FastStep` (fixed calibrated Sinkhorn schedule,
  no host synchronization) run eagerly;
* ``graph``: the same captured as a CUDA graph (CUDA only).

The step is assembled from the same functions the LightningModule calls
(``find_misreports``/``regret`` or ``FastStep``, ``lagrangian_loss``, Adam,
the rho/lambda rules), without Lightning's loop around it.  Results go to
``--json`` (default ``benchmarks/results/step_<device>.json``, or, where that recorded file exists,
``step_<device>_<UTC time>.json`` beside it: a run never overwrites a file unless ``--force``).  The exit
status is 1 when a case failed (its row records the error).

``--mechanisms`` names the mechanisms (``sinkhorn``, ``sinkhorn_potential``, ``lottery_ama``, ``regretnet``; a
name with ``+plain``: the same mechanism without its prepared calls, :class:`mechanisms.prepared.PlainCalls`,
eager only).  With ``--interleave`` every case is built and warmed up first, then the cases take turns, one
timed step each, ``--steps`` rounds: on a shared machine, load changes hit every case alike, so the ratios of
the medians (``ratio_to_first``: to the setting's first mechanism) hold better than those of cases timed one
after another.

With ``--ensemble 1,2,4,...`` the 2x3 and 2x15 unit settings (``--only`` to change) are timed as one
ordinary run (``single``) and as ensembles of K members (:mod:`mechanisms.ensemble`: one step trains
all K on the shared batch); each row gives ms per step, member-steps per second and the speedup over
K single runs one after another (K x the single run's ms per step).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adversary.regret import regret  # noqa: E402
from adversary.search import MisreportSearch, find_misreports  # noqa: E402
from mechanisms.demand import Demand  # noqa: E402
from mechanisms.ensemble import fold, stack_members, unfold  # noqa: E402
from mechanisms.lottery_ama import LotteryAMA  # noqa: E402
from mechanisms.potential_auction import PotentialSinkhornMechanism  # noqa: E402
from mechanisms.prepared import PlainCalls  # noqa: E402
from mechanisms.regretnet import RegretNet  # noqa: E402
from utils.atomic import check_new, write_json  # noqa: E402
from mechanisms.sinkhorn_auction import SinkhornMechanism  # noqa: E402
from utils.hardware import describe as describe_hardware  # noqa: E402
from training.members import member_losses  # noqa: E402
from training.fast_step import FastStep, FastStepSettings  # noqa: E402
from lagrangian.loss import lagrangian_loss  # noqa: E402
from lagrangian.paper import LagrangeRule, RhoStaircase  # noqa: E402
from training.member_adam import MemberAdam  # noqa: E402

RHO, LAMBDA = RhoStaircase(), LagrangeRule()  # the paper's: rho + 1 every 2 steps, lambda every 100
SETTINGS = [  # (name, demand, agents, items, batch)
    ("1x2 unit b512", "unit", 1, 2, 512),
    ("1x2 unit", "unit", 1, 2, 4096),
    ("2x3 unit", "unit", 2, 3, 4096),
    ("2x15 unit", "unit", 2, 15, 4096),
    ("1x2 exactly-one", "exactly_k", 1, 2, 4096),
    ("2x3 exactly-one", "exactly_k", 2, 3, 4096),
    ("2x15 exactly-one", "exactly_k", 2, 15, 4096),
]


class Step:
    """One training step of ``variant`` for a mechanism, with its own Adam, lambda and rho.

    ``members`` > 1: ``mechanism`` is a stacked ensemble (:func:`mechanisms.ensemble.stack_members`) trained on
    the folded batch with per-member lambda, rho and :class:`MemberAdam`, as :class:`training.AuctionModule` with several members.
    """

    def __init__(self, mechanism, variant: str, device: torch.device, search_steps: int, members: int = 1) -> None:
        n = mechanism.n_agents
        self.mechanism, self.variant, self.count, self.members = mechanism, variant, 0, members
        self.search = MisreportSearch(steps=search_steps, lr=0.1)
        if members == 1:
            self.optimizer = torch.optim.Adam(mechanism.parameters(), lr=1e-3)
            self.multipliers = torch.full((n,), 5.0, device=device)
            self.rho = torch.tensor(1.0, device=device)
        else:
            self.optimizer = MemberAdam(mechanism.parameters(), lr=[1e-3] * members)
            self.multipliers = torch.full((members, n), 5.0, device=device)
            self.rho = torch.ones(members, device=device)
        self.low, self.high = torch.zeros(n, 1, device=device), torch.ones(n, 1, device=device)
        self.fast = None
        if variant != "eager":
            settings = FastStepSettings(enabled=True, cuda_graph=variant == "graph")
            self.fast = FastStep(mechanism, self.search, self._loss, self.low, self.high, settings)

    def _loss(self, revenue, regrets):
        if self.members == 1:
            return lagrangian_loss(revenue, regrets, self.multipliers, self.rho)
        return member_losses(revenue, regrets, self.multipliers, self.rho).sum()

    def __call__(self, valuations: torch.Tensor) -> None:
        if self.members > 1:  # every member on the same batch, folded (member innermost)
            valuations = fold(valuations.unsqueeze(1).expand(-1, self.members, -1, -1))
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
        if LAMBDA.due(self.count) and self.members == 1:
            LAMBDA.apply(self.multipliers, self.rho, regrets.detach().mean(0))
        elif LAMBDA.due(self.count):
            LAMBDA.apply(self.multipliers, self.rho.view(-1, 1), unfold(regrets.detach(), self.members).mean(0))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _kernels_per_step(step: Step, valuations: torch.Tensor) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step(valuations)
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type.name == "CUDA")


def _timed(step: Step, batches: list[torch.Tensor], device: torch.device, args) -> tuple[list[float], float]:
    """Seconds per step and seconds in all: ``--steps`` steps, or, with ``--window``, every step inside a window shared with other processes.

    With ``--window W`` the process prints ``ready``, reads the window's start (``time.time()``) from stdin and
    starts steps from then until W seconds later (the total is divided by the
    last process's elapsed time, the final step included), so that concurrent processes are timed over the same interval.
    """
    if not args.window:
        starts, begin = range(args.steps), time.time()
    else:
        print("ready", flush=True)
        begin = float(sys.stdin.readline())
        time.sleep(max(0.0, begin - time.time()))
        starts = iter(lambda: time.time() < begin + args.window, False)
    times = []
    for i, _ in enumerate(starts):
        start = time.perf_counter()
        step(batches[i % 4])
        _sync(device)
        times.append(time.perf_counter() - start)
    return times, time.time() - begin


MECHANISMS = {
    "sinkhorn": SinkhornMechanism,
    "sinkhorn_potential": PotentialSinkhornMechanism,
    "lottery_ama": LotteryAMA,
    "regretnet": RegretNet,
}
PLAIN = "+plain"  # suffix: the mechanism's plain calls (no prepare)


def _mechanism(mechanism_name: str, demand: str, agents: int, items: int, seed: int):
    torch.manual_seed(seed)
    mechanism = MECHANISMS[mechanism_name.removesuffix(PLAIN)](agents, items, demand)
    return PlainCalls(mechanism) if mechanism_name.endswith(PLAIN) else mechanism


def check_mechanism_names(names: list[str], variants: list[str] | None) -> str | None:
    """The error for ``--mechanisms`` ``names`` (with ``--variants``), or ``None`` when they are valid."""
    unknown = [name for name in names if name.removesuffix(PLAIN) not in MECHANISMS]
    if unknown:
        return f"unknown --mechanisms {unknown}: choose from {sorted(MECHANISMS)}, each optionally with {PLAIN}"
    if any(name.endswith(PLAIN) for name in names) and set(variants or ["fast"]) != {"eager"}:
        return f"{PLAIN} mechanisms run the eager step only: add --variants eager"
    return None


class Case:
    """One (setting, mechanism, variant) built and warmed up; ``members`` > 1: an ensemble (seeds 0..members-1)."""

    def __init__(
        self, setting, mechanism_name: str, variant: str, device: torch.device, args, members: int = 1
    ) -> None:
        name, demand, agents, items, batch = setting
        self.batch = args.batch or batch
        if members == 1:
            mechanism = _mechanism(mechanism_name, demand, agents, items, 0)
        else:
            mechanism = stack_members([_mechanism(mechanism_name, demand, agents, items, k) for k in range(members)])
        self.mechanism = mechanism.to(device)
        self.step = Step(self.mechanism, variant, device, args.search_steps, members)
        self.device = device
        generator = torch.Generator(device=device).manual_seed(0)
        self.batches = [torch.rand(self.batch, agents, items, device=device, generator=generator) for _ in range(4)]
        self.row = {"setting": name, "members": members, "mechanism": mechanism_name, "variant": variant,
                    "batch": self.batch}
        for i in range(args.warmup):
            self.step(self.batches[i % 4])
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def timed_step(self, i: int) -> float:
        """Seconds of one step on batch ``i % 4`` (synchronized)."""
        start = time.perf_counter()
        self.step(self.batches[i % 4])
        _sync(self.device)
        return time.perf_counter() - start

    def result(self, times: list[float], elapsed: float) -> dict:
        ms = 1000 * statistics.median(times)
        device = self.device
        return {
            **self.row,
            "ms_per_step": ms,
            "steps": len(times),
            "elapsed_s": elapsed,
            "ms_min": 1000 * min(times),
            "profiles_per_s": self.batch / (ms / 1000),
            "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            "sinkhorn_iterations_per_solve": getattr(self.mechanism, "last_iterations", None),
        }


def measure(setting, mechanism_name: str, variant: str, device: torch.device, args, members: int = 1) -> dict:
    """One case; ``members`` > 1: an ensemble of that many members (seeds 0..members-1)."""
    case = Case(setting, mechanism_name, variant, device, args, members)
    times, elapsed = _timed(case.step, case.batches, device, args)
    row = case.result(times, elapsed)
    if args.count_kernels and device.type == "cuda" and variant != "graph":
        row["kernels_per_step"] = _kernels_per_step(case.step, case.batches[0])
    return row


def interleaved(cases: list[tuple], device: torch.device, args) -> list[dict]:
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


def _regretnet_applies(demand: str, agents: int, items: int) -> bool:
    """Whether RegretNet has a softmax output layer for the setting (:meth:`Demand.softmax_head`)."""
    try:
        Demand(demand).softmax_head(agents, items)
    except ValueError:
        return False
    return True


def _cases(args, device: torch.device):
    variants = args.variants or (["eager", "fast", "graph"] if device.type == "cuda" else ["eager", "fast"])
    for setting in SETTINGS:
        if args.only and not any(o in setting[0] for o in args.only):
            continue
        for mechanism in args.mechanisms:
            if mechanism.removesuffix(PLAIN) == "regretnet" and not _regretnet_applies(*setting[1:4]):
                continue  # no RegretNet head for the setting (e.g. exactly-one with several agents, section 4.4)
            for variant in variants:
                yield setting, mechanism, variant


def _ensembles(args, device: torch.device) -> list[dict]:
    """Every ``--ensemble`` size against one ordinary run, per setting, mechanism and variant."""
    rows = []
    only = args.only or ["2x3 unit", "2x15 unit"]
    if not args.quiet:
        print(f"{'setting':<12} {'mechanism':<10} {'variant':<6} {'members':>7} {'ms/step':>9} {'member-steps/s':>15} "
              f"{'vs K sequential':>16}", flush=True)  # fmt: skip
    for setting, mechanism, variant in _cases(args, device):
        if not any(o == setting[0] for o in only):
            continue
        single = measure(setting, mechanism, variant, device, args)
        for members in args.ensemble:
            row = single if members == 1 else measure(setting, mechanism, variant, device, args, members)
            row = {**row, "kind": "single" if members == 1 else "ensemble",
                   "member_steps_per_s": members / (row["ms_per_step"] / 1000),
                   "speedup_vs_sequential": members * single["ms_per_step"] / row["ms_per_step"]}
            rows.append(row)
            if not args.quiet:
                print(f"{setting[0]:<12} {mechanism:<10} {variant:<6} {members:>7} {row['ms_per_step']:9.1f} "
                      f"{row['member_steps_per_s']:15.1f} {row['speedup_vs_sequential']:15.2f}x", flush=True)  # fmt: skip
    return rows


def _concurrent(args) -> list[dict]:
    """Total steps per second of K processes running the same 2x3 fast step (graph on CUDA) over one shared window.

    Each process warms up (capture, compilation) first; then all of them time steps over the same
    ``--window`` seconds of wall clock, so the total counts only steps taken while all K were running.
    """
    rows = []
    variant = "graph" if args.device == "cuda" else "fast"
    for k in args.concurrent:
        command = [
            sys.executable, __file__, "--device", args.device, "--only", "2x3 unit", "--variants", variant,
            "--mechanisms", "sinkhorn", "--warmup", str(args.warmup), "--window", str(args.window),
            "--search-steps", str(args.search_steps),
            "--json", "/dev/null", "--quiet",
        ]  # fmt: skip
        procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(k)]
        for p in procs:  # every process has warmed up
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a concurrent benchmark process failed before timing (exit {p.wait()})")
        begin = time.time() + 1.0
        for p in procs:
            p.stdin.write(f"{begin}\n")
            p.stdin.flush()
        outputs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        steps = [o["steps"] for o in outputs]
        rows.append(
            {
                "processes": k,
                "window_s": args.window,
                "steps_each": steps,
                "median_ms_per_step_each": statistics.median(o["ms_per_step"] for o in outputs),
                "total_steps_per_s": sum(steps) / max(o["elapsed_s"] for o in outputs),
            }
        )
        print(f"{k} concurrent 2x3 runs: {rows[-1]['total_steps_per_s']:.1f} steps/s in total over {args.window} s "
              f"({rows[-1]['median_ms_per_step_each']:.1f} ms per step each)", flush=True)  # fmt: skip
    return rows


def _print_row(row: dict) -> None:
    mechanism, variant = row["mechanism"], row["variant"]
    if "error" in row:
        print(f"{row['setting']:<18} {mechanism:<10} {variant:<6} failed: {row['error']}", flush=True)
        return
    memory = "" if row["peak_memory_mib"] is None else f"{row['peak_memory_mib']:.0f}"
    print(f"{row['setting']:<18} {mechanism:<10} {variant:<6} {row['ms_per_step']:9.1f} "
          f"{row['profiles_per_s']:11.0f} {memory:>9}"
          + (f"  {row['kernels_per_step']} kernels" if "kernels_per_step" in row else "")
          + (f"  {row['ratio_to_first']:.2f}x the setting's first" if "ratio_to_first" in row else ""),
          flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the training default: 1)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (capture, compilation)")
    parser.add_argument("--search-steps", type=int, default=25, help="misreport steps per training step")
    parser.add_argument("--only", nargs="*", help="settings whose name contains one of these, e.g. 2x3")
    parser.add_argument("--variants", nargs="*", choices=["eager", "fast", "graph"])
    parser.add_argument("--mechanisms", nargs="*", default=["sinkhorn", "regretnet"],
                        help="sinkhorn, sinkhorn_potential (mechanism=sinkhorn_potential), lottery_ama, regretnet; "
                             f"NAME{PLAIN}: without its prepared calls (eager only)")
    parser.add_argument("--interleave", action="store_true",
                        help="build and warm every case, then time them in turns (ratios on a shared machine)")
    parser.add_argument("--count-kernels", action="store_true", help="CUDA kernels per step (eager variants)")
    parser.add_argument("--concurrent", type=lambda s: [int(x) for x in s.split(",")], default=None,
                        help="e.g. 1,2,4,6: total throughput of that many processes on one GPU")  # fmt: skip
    parser.add_argument("--window", type=float, default=None,
                        help="with --concurrent: seconds every process times steps, all over the same interval")  # fmt: skip
    parser.add_argument("--ensemble", type=lambda s: [int(x) for x in s.split(",")], default=None,
                        help="e.g. 1,2,4,8,16: ensembles of that many members against one run (2x3 and 2x15 unit)")
    parser.add_argument("--batch", type=int, default=None, help="profiles per batch instead of each setting's")
    parser.add_argument("--json", default=None, help="output file (default benchmarks/results/step_<device>.json; "
                        "where that exists, step_<device>_<UTC time>.json beside it)")
    parser.add_argument("--force", action="store_true", help="replace an existing --json file (default: refused)")
    parser.add_argument("--quiet", action="store_true", help="print only the JSON rows")
    args = parser.parse_args()
    error = check_mechanism_names(args.mechanisms, args.variants)
    if error:
        parser.error(error)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    path = Path(args.json) if args.json else default_output(Path(__file__).parent / "results", args.device)
    try:
        check_new([path], args.force, "--json")
    except ValueError as error:
        parser.error(str(error))
    if args.ensemble:
        if any(k < 1 for k in args.ensemble):
            parser.error(f"--ensemble sizes must be >= 1, got {args.ensemble}")
        rows = _ensembles(args, device)
        result = {"hardware": describe_hardware(device), "torch": torch.__version__, "batch": args.batch,
                  "search_steps": args.search_steps, "ensemble": rows}
    elif args.concurrent:
        args.window = args.window or 20.0
        rows = _concurrent(args)
        result = {"hardware": describe_hardware(device), "concurrent": rows}
    else:
        rows = []
        if not args.quiet:
            print(describe_hardware(device), flush=True)
            print(f"{'setting':<18} {'mechanism':<10} {'variant':<6} {'ms/step':>9} {'profiles/s':>11} {'peak MiB':>9}")
        if args.interleave:
            rows = interleaved(list(_cases(args, device)), device, args)
        for setting, mechanism, variant in ([] if args.interleave else _cases(args, device)):
            try:
                row = measure(setting, mechanism, variant, device, args)
            except Exception as error:  # report and go on: one failing variant must not hide the others
                row = {"setting": setting[0], "mechanism": mechanism, "variant": variant, "error": repr(error)[:300]}
            rows.append(row)
            if not args.quiet:
                _print_row(row)
        for row in rows if args.interleave and not args.quiet else []:
            _print_row(row)
        result = {"hardware": describe_hardware(device), "torch": torch.__version__, "rows": rows}
    if args.quiet:
        print(json.dumps(rows[-1] if rows else {}))
    if str(path) != "/dev/null":
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, result)
        if not args.quiet:
            print(f"wrote {path}")
    failed = [f"{row.get('setting')} {row.get('mechanism')} {row.get('variant')}" for row in rows if "error" in row]
    if failed:
        print(f"error: {len(failed)} case(s) failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


def default_output(directory: Path, device: str) -> Path:
    """``directory/step_<device>.json``, or ``step_<device>_<UTC time>.json`` where that exists (never overwritten)."""
    recorded = directory / f"step_{device}.json"
    if not recorded.exists():
        return recorded
    return directory / f"step_{device}_{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"


if __name__ == "__main__":
    main()
