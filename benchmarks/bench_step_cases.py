"""The cases of ``benchmarks/bench_step.py``: its settings, its mechanisms (``--mechanisms``), and which
(setting, mechanism, variant) triples a run times."""

from __future__ import annotations

import argparse
from typing import Iterator

import torch
from torch import nn

from mechanisms.demand import Demand
from mechanisms.lottery_ama import LotteryAMA
from mechanisms.potential_auction import PotentialSinkhornMechanism
from mechanisms.prepared import PlainCalls
from mechanisms.regretnet import RegretNet
from mechanisms.sinkhorn_auction import SinkhornMechanism

Setting = tuple[str, str, int, int, int]  # (name, demand, agents, items, batch)
SETTINGS: list[Setting] = [("1x2 unit b512", "unit", 1, 2, 512), *(  # then 1x2, 2x3 and 2x15 of each demand
    (f"{n}x{m} {label}", demand, n, m, 4096) for demand, label in (("unit", "unit"), ("exactly_k", "exactly-one"))
    for n, m in ((1, 2), (2, 3), (2, 15)))]
MECHANISMS = {"sinkhorn": SinkhornMechanism, "sinkhorn_potential": PotentialSinkhornMechanism,
              "lottery_ama": LotteryAMA, "regretnet": RegretNet}
PLAIN = "+plain"  # suffix: the mechanism's plain calls (no prepare)


def build_mechanism(mechanism_name: str, demand: str, agents: int, items: int, seed: int) -> nn.Module:
    """The ``--mechanisms`` entry ``mechanism_name`` for the setting, initialized from ``seed``
    (``NAME+plain``: wrapped in :class:`mechanisms.prepared.PlainCalls`)."""
    torch.manual_seed(seed)
    mechanism = MECHANISMS[mechanism_name.removesuffix(PLAIN)](agents, items, demand)
    return PlainCalls(mechanism) if mechanism_name.endswith(PLAIN) else mechanism


def check_mechanism_names(parser: argparse.ArgumentParser, names: list[str], variants: list[str] | None) -> None:
    """``parser.error`` unless ``--mechanisms`` ``names`` are known and, with ``NAME+plain``, ``--variants`` eager."""
    unknown = [name for name in names if name.removesuffix(PLAIN) not in MECHANISMS]
    if unknown:
        parser.error(f"unknown --mechanisms {unknown}: choose from {sorted(MECHANISMS)}, each optionally with {PLAIN}")
    if any(name.endswith(PLAIN) for name in names) and set(variants or ["fast"]) != {"eager"}:
        parser.error(f"{PLAIN} mechanisms run the eager step only: add --variants eager")


def regretnet_applies(demand: str, agents: int, items: int) -> bool:
    """Whether RegretNet has a softmax output layer for the setting (:meth:`Demand.softmax_head`)."""
    try:
        Demand(demand).softmax_head(agents, items)
    except ValueError:
        return False
    return True


def cases(args: argparse.Namespace, device: torch.device) -> Iterator[tuple[Setting, str, str]]:
    """Every (setting, mechanism, variant) of ``--only``, ``--mechanisms`` and ``--variants`` (default: eager and
    fast, and graph on CUDA)."""
    variants = args.variants or (["eager", "fast", "graph"] if device.type == "cuda" else ["eager", "fast"])
    for setting in SETTINGS:
        if args.only and not any(o in setting[0] for o in args.only):
            continue
        for mechanism in args.mechanisms:
            if mechanism.removesuffix(PLAIN) == "regretnet" and not regretnet_applies(*setting[1:4]):
                continue  # no RegretNet head for the setting (e.g. exactly-one with several agents, section 4.4)
            for variant in variants:
                yield setting, mechanism, variant
