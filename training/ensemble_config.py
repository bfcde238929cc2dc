"""From the ``ensemble`` configuration node to the members' run configurations and the ensemble's components.

``ensemble.size=K`` (1: the ordinary run) trains K members; member ``k`` is the
single run of the configuration with

* ``seed`` = ``ensemble.vary.seed[k]`` (default: ``seed + k``): its network
  initialization (and its test seed, which follows ``seed``);
* ``data.seed`` = the ensemble's data seed for every member: all members train
  on the same data in the same order (and validate and test on the same profiles);
* ``ensemble.vary.<key>[k]`` for every varied key of :data:`VARY` (the learning
  rate and the Lagrangian settings).

:func:`member_configs` writes these configurations; :func:`build_ensemble` checks and builds every
member as ``train.py`` would (:func:`training.config.validate_config`) and stacks them into an
:class:`training.ensemble.EnsembleModule` with the per-member schedules and checkpoints.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
from typing import Any, Sequence

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from callbacks.ensemble import EnsembleLagrangeUpdate, EnsembleRhoSchedule
from mechanisms.checks import check_int
from training.config import Components, _check_resume, validate_config, world_size
from training.ensemble import EnsembleModule

__all__ = ["VARY", "build_ensemble", "ensemble_callbacks", "ensemble_size", "main", "member_configs", "pack_multirun"]

VARY: dict[str, str] = {
    "seed": "seed",
    "lr": "model.lr",
    "lr_final": "model.lr_final",
    **{key: f"lagrangian.{key}" for key in (
        "lambda_init", "rho_init", "rho_increment", "rho_every_n_steps", "max_rho", "lambda_every_n_steps")},
}
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
    packed = [f"ensemble.size={len(jobs)}"]
    for axis, (key, _) in enumerate(axes):
        packed.append(f"ensemble.vary.{key}=[{','.join(job[axis] for job in jobs)}]")
    return packed


def ensemble_size(cfg: DictConfig) -> int:
    """``ensemble.size`` (1 without an ``ensemble`` node), checked."""
    node = cfg.get("ensemble")
    size = 1 if node is None else node.get("size", 1)
    check_int(size, "ensemble.size")
    return size


def _varied(cfg: DictConfig, size: int) -> dict[str, list[Any]]:
    """The ``ensemble.vary`` lists that are set, each of length ``size``."""
    vary = cfg.ensemble.get("vary") or {}
    varied = {key: values for key, values in vary.items() if values is not None}
    unknown = sorted(set(varied) - set(VARY))
    if unknown:
        raise ValueError(f"ensemble.vary.{unknown[0]} cannot vary per member; these can: {', '.join(VARY)}")
    for key, values in varied.items():
        if not OmegaConf.is_list(values) or len(values) != size:
            raise ValueError(f"ensemble.vary.{key} must list one value per member ({size}), got {values!r}")
    return {key: list(values) for key, values in varied.items()}


def member_configs(cfg: DictConfig) -> list[DictConfig]:
    """Each member's run configuration: a single run's (``ensemble.size=1``), see the module docstring."""
    size = ensemble_size(cfg)
    varied = _varied(cfg, size)
    seeds = varied.pop("seed", [cfg.seed + k for k in range(size)])
    if len(set(seeds)) != len(seeds) and not varied:
        raise ValueError(f"ensemble members with equal seeds and settings would train identically: seeds {seeds}")
    data_seed = cfg.data.seed
    configs = []
    for k in range(size):
        member = copy.deepcopy(cfg)
        with open_dict(member):
            member.seed = seeds[k]
            member.data.seed = data_seed
            member.resume = None
            member.ensemble.size = 1
            member.ensemble.vary = {key: None for key in member.ensemble.get("vary") or {}}
            for key, values in varied.items():
                OmegaConf.update(member, VARY[key], values[k], merge=False)
        configs.append(member)
    return configs


def ensemble_callbacks(cfg: DictConfig, configs: list[DictConfig]) -> list[pl.Callback]:
    """The members' rho and lambda schedules, a regret-budget score and best checkpoint per member
    (``member_<k>/val/...``, ``checkpoints/member_<k>-best-*.ckpt``), the latest checkpoint and the progress bar."""
    callbacks: list[pl.Callback] = []
    spec = cfg.get("callbacks") or {}
    if spec.get("rho") is not None:
        callbacks.append(EnsembleRhoSchedule([instantiate(c.callbacks.rho).staircase for c in configs]))
    if spec.get("lagrange") is not None:
        callbacks.append(EnsembleLagrangeUpdate([instantiate(c.callbacks.lagrange).rule for c in configs]))
    budget, checkpoint = spec.get("budget"), spec.get("checkpoint")
    for k in range(len(configs)):
        prefix = f"member_{k}/"
        if budget is not None:
            callbacks.append(instantiate(budget, revenue_key=prefix + budget.revenue_key,
                                         regret_key=prefix + budget.regret_key, score_key=prefix + budget.score_key))
        if checkpoint is not None:
            monitor = prefix + (budget.score_key if budget is not None else checkpoint.monitor)
            callbacks.append(instantiate(checkpoint, monitor=monitor, filename=f"member_{k}-{checkpoint.filename}"))
    callbacks += [instantiate(spec[name]) for name in ("latest", "progress") if spec.get(name) is not None]
    return callbacks


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
    _check_resume(cfg)
    model = EnsembleModule([p.model for p in parts], [p.model.hparams["run_config"] for p in parts],
                           run_config=OmegaConf.to_container(cfg, resolve=True))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # the members' builds drew from the global generator
    return Components(model.mechanism, parts[0].datamodule, model, ensemble_callbacks(cfg, configs))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.ensemble_config seed=0,1,2 model.lr=0.001,0.003``: print the overrides of
    the one ensemble job packing that multirun (:func:`pack_multirun`); exit status 2 on a sweep it cannot pack."""
    parser = argparse.ArgumentParser(
        prog="python -m training.ensemble_config",
        description="Print the train.py overrides of one ensemble job that packs a Hydra multirun's sweeps.",
    )
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
