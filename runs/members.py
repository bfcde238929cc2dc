"""From the ``ensemble`` configuration node to the members' run configurations and the ensemble's components.

``ensemble.size=K`` trains K members (docs/ensembles.md): :func:`member_configs` writes each member's single-run
configuration; :func:`build_ensemble` checks and builds each as ``train.py`` would and stacks them into ONE
:class:`training.AuctionModule` with a member dimension.  :func:`build_run` is what ``train.py`` calls.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
from typing import Any, Sequence

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf, open_dict

from utils.checks import check_int
from mechanisms.ensemble import stack_members
from runs.config import Components, validate_config, world_size
from runs.resume_checks import check_resume
from training.module import AuctionModule

__all__ = ["MAX_MEMBERS", "VARY", "build_ensemble", "build_run", "ensemble_callbacks", "ensemble_size", "main",
           "member_configs", "pack_multirun"]

VARY: dict[str, str] = {"seed": "seed", "lr": "model.lr", "lr_final": "model.lr_final", **{
    key: f"lagrangian.{key}"
    for key in ("lambda_init", "rho_init", "rho_increment", "rho_every_n_steps", "max_rho", "lambda_every_n_steps")}}
"""``ensemble.vary.<key>``: the configuration key it sets in member ``k``'s configuration."""


def pack_multirun(sweeps: Sequence[str]) -> list[str]:
    """The ``train.py`` overrides of ONE ensemble job for a Hydra multirun's sweeps, e.g.
    ``["seed=0,1", "model.lr=0.001,0.003"]`` -> ``["ensemble.size=4", "ensemble.vary.seed=[0,0,1,1]",
    "ensemble.vary.lr=[0.001,0.003,0.001,0.003]"]`` (the multirun's job order: the cross product, last key fastest).

    Every swept key must be one of :data:`VARY`'s configuration keys; ``ValueError`` (one line) otherwise.
    """
    keys = {path: key for key, path in VARY.items()}
    axes = []
    for sweep in sweeps:
        path, sep, values = sweep.partition("=")
        if not sep or path not in keys or not values:
            raise ValueError(f"cannot pack {sweep!r} into an ensemble: sweep one of {', '.join(keys)} as KEY=V1,V2,...")
        axes.append((keys[path], values.split(",")))
    jobs = list(itertools.product(*(values for _, values in axes)))
    return [f"ensemble.size={len(jobs)}",
            *(f"ensemble.vary.{key}=[{','.join(job[axis] for job in jobs)}]" for axis, (key, _) in enumerate(axes))]


MAX_MEMBERS = 256
"""The most members one ensemble trains (each is built and checked as a run of its own first)."""
SHARED = ("train_search", "val_search", "test_search", "quadratic_penalty", "penalty_over_agents",
          "persistent_misreports", "test_batch_size", "fast", "clip_grad_norm", "distribution")
"""The training module's settings every member must share."""
ADAM_OPTIONS = ("betas", "eps")


def ensemble_size(cfg: DictConfig) -> int:
    """``ensemble.size`` (1 without an ``ensemble`` node), checked: 1 to :data:`MAX_MEMBERS`, no unknown key."""
    node = cfg.get("ensemble")
    if node is None:
        return 1
    unknown = sorted(set(node) - {"size", "vary"})
    if unknown:
        raise ValueError(f"ensemble.{unknown[0]} is not a setting of the ensemble node: it has size and vary")
    size = node.get("size", 1)
    check_int(size, "ensemble.size")
    if size > MAX_MEMBERS:
        raise ValueError(f"ensemble.size={size}: at most {MAX_MEMBERS} members train as one model; split the seeds "
                         "over several runs")
    return size


def member_configs(cfg: DictConfig) -> list[DictConfig]:
    """Each member's run configuration: a single run's (``ensemble.size=1``), see the module docstring."""
    size = ensemble_size(cfg)
    varied = {key: values for key, values in (cfg.ensemble.get("vary") or {}).items() if values is not None}
    unknown = sorted(set(varied) - set(VARY))
    if unknown:
        raise ValueError(f"ensemble.vary.{unknown[0]} cannot vary per member; these can: {', '.join(VARY)}")
    for key, values in varied.items():
        if not OmegaConf.is_list(values) or len(values) != size:
            raise ValueError(f"ensemble.vary.{key} must list one value per member ({size}), got {values!r}")
    varied = {key: list(values) for key, values in varied.items()}
    seeds = varied.pop("seed", [cfg.seed + k for k in range(size)])
    if len(set(seeds)) != len(seeds) and not varied:
        raise ValueError(f"ensemble members with equal seeds and settings would train identically: seeds {seeds}")
    configs = []
    for k in range(size):
        member = copy.deepcopy(cfg)
        with open_dict(member):
            member.seed = seeds[k]
            member.data.seed = cfg.data.seed
            member.resume = None
            member.ensemble.size = 1
            member.ensemble.vary = {key: None for key in member.ensemble.get("vary") or {}}
            for key, values in varied.items():
                OmegaConf.update(member, VARY[key], values[k], merge=False)
        configs.append(member)
    return configs


def ensemble_callbacks(cfg: DictConfig, configs: list[DictConfig]) -> list[pl.Callback]:
    """The ensemble's callbacks, from each member's: one with ``for_members`` (rho and lambda schedules, warm
    start) joins the members'; a scored checkpoint and one with ``per_member`` (regret-budget score, collapse
    guard) are kept per member, on ``member_<k>/`` metrics; the others are the first member's."""
    callbacks: list[pl.Callback] = []
    for name, spec in ((n, s) for n, s in (cfg.get("callbacks") or {}).items() if s is not None):
        built = [instantiate(config.callbacks[name]) for config in configs]
        first = built[0]
        if hasattr(first, "for_members"):
            callbacks.append(first.for_members(built))
        elif hasattr(first, "per_member"):
            callbacks += [first.per_member(k) for k in range(len(configs))]
        elif isinstance(first, ModelCheckpoint) and first.monitor:
            callbacks += [instantiate(spec, monitor=f"member_{k}/{first.monitor}", filename=f"member_{k}-{spec.filename}")
                          for k in range(len(configs))]
        else:
            callbacks.append(first)
    return callbacks


def _adam_options(member: AuctionModule) -> dict[str, Any]:
    """The member's Adam options, or a one-line ``ValueError`` if its optimizer is not plain Adam."""
    factory = member.optimizer_factory
    func, args, keywords = (getattr(factory, name, None) for name in ("func", "args", "keywords"))
    if func is not torch.optim.Adam or args or not set(keywords or {}) <= set(ADAM_OPTIONS):
        raise ValueError("an ensemble trains with Adam (training/member_adam.py): model.optimizer must be "
                         f"torch.optim.Adam with at most {', '.join(ADAM_OPTIONS)}, got {factory!r}")
    return dict(keywords or {})


def _check_members(members: Sequence[AuctionModule]) -> None:
    first, adam = members[0], _adam_options(members[0])
    for k, member in enumerate(members[1:], 1):
        for name in SHARED:
            if getattr(member, name) != getattr(first, name):
                raise ValueError(f"ensemble members must share {name}: member {k} has {getattr(member, name)!r}, "
                                 f"member 0 {getattr(first, name)!r}")
        if _adam_options(member) != adam:
            raise ValueError(f"ensemble members must share the Adam options: member {k} differs")


def stack_modules(members: Sequence[AuctionModule], run_config: dict[str, Any]) -> AuctionModule:
    """One :class:`AuctionModule` training the built (untrained) ``members`` as one: their stacked mechanisms, each
    member's learning rates, test seed, multipliers, rho and misreport buffer (where its single run starts)."""
    _check_members(members)
    first = members[0]
    model = AuctionModule(
        stack_members([m.mechanism for m in members]), optimizer=first.optimizer_factory, run_config=run_config,
        lr=[m.lr for m in members], lr_final=[m.lr_final for m in members], test_seed=[m.test_seed for m in members],
        member_configs=[m.hparams["run_config"] for m in members], **{name: getattr(first, name) for name in SHARED},
        **{name: first.hparams[name] for name in ("low", "high", "train_size")})
    with torch.no_grad():
        model.lagrange_multipliers.copy_(torch.stack([m.lagrange_multipliers for m in members]))
        model.rho.copy_(torch.stack([m.rho for m in members]))
        if first.persistent_misreports:
            model.misreport_buffer.copy_(torch.stack([m.misreport_buffer for m in members], 1))
    return model


def build_ensemble(cfg: DictConfig, check_machine: bool = True) -> Components:
    """Check and build every member as a single run, stack them; the ensemble's components, or a one-line
    ``ValueError`` (naming the member) unless every member is a trainable run."""
    if world_size(cfg.trainer) > 1:
        raise ValueError("an ensemble trains in one process: set trainer.devices=1 and trainer.num_nodes=1")
    configs = member_configs(cfg)
    parts = []
    for k, member in enumerate(configs):
        try:
            parts.append(validate_config(member, check_machine))
        except ValueError as error:
            raise ValueError(f"ensemble member {k}: {error}") from error
    model = stack_modules([p.model for p in parts], OmegaConf.to_container(cfg, resolve=True))
    check_resume(cfg, model)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # the members' builds drew from the global generator
    return Components(model.mechanism, parts[0].datamodule, model, ensemble_callbacks(cfg, configs))


def build_run(cfg: DictConfig, check_machine: bool = True) -> Components:
    """What ``train.py`` trains: the checked components of a single run, or of an ensemble (``ensemble.size`` > 1)."""
    return build_ensemble(cfg, check_machine) if ensemble_size(cfg) > 1 else validate_config(cfg, check_machine)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m runs.members seed=0,1,2 model.lr=0.001,0.003``: print :func:`pack_multirun`'s overrides;
    exit status 2 on a sweep it cannot pack."""
    parser = argparse.ArgumentParser(prog="python -m runs.members", description="Print the train.py overrides "
                                     "of one ensemble job that packs a Hydra multirun's sweeps.")
    parser.add_argument("sweeps", nargs="+", metavar="KEY=V1,V2,...",
                        help=f"a multirun sweep of one of: {', '.join(VARY.values())}")
    args = parser.parse_args(argv)
    try:
        print(" ".join(pack_multirun(args.sweeps)))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
