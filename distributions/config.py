"""A run's distribution from its stored configuration (checkpoints, resume), old runs included: runs from before
the ``distribution`` group drew ``U[data.low, data.high]``, which :func:`distribution_node` spells as a node."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from distributions.base import ValuationDistribution
from utils.checks import one_line

__all__ = ["DISTRIBUTION_NAMES", "distribution_node", "distribution_of", "named_distribution"]

UNIFORM_TARGET = "distributions.Uniform"
GROUP = Path(__file__).resolve().parent.parent / "conf" / "distribution"
DISTRIBUTION_NAMES = tuple(sorted(path.stem for path in GROUP.glob("*.yaml")))
"""The options of the Hydra group ``distribution`` (conf/distribution/<name>.yaml)."""


def distribution_node(config: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved ``distribution`` node of a run configuration (the uniform one on ``data.low/high`` if absent)."""
    node = config.get("distribution")
    if node is not None:
        return dict(node)
    data = config.get("data") or {}
    return {"_target_": UNIFORM_TARGET, "n_agents": config["agents"], "n_items": config["items"],
            "low": data.get("low", 0.0), "high": data.get("high", 1.0)}


def distribution_of(config: Mapping[str, Any]) -> ValuationDistribution:
    """The :class:`ValuationDistribution` of a resolved run configuration (see :func:`distribution_node`)."""
    return instantiate(distribution_node(config), _convert_="all")


def named_distribution(name: str, agents: int, items: int) -> ValuationDistribution:
    """The distribution ``distribution=<name>`` composes with its defaults (uniform: U[0, 1]) for agents x items;
    a one-line ``ValueError`` for a setting it does not cover (e.g. ``triangle`` with other than 2 items)."""
    if name not in DISTRIBUTION_NAMES:
        raise ValueError(f"unknown distribution {name!r}; distributions: {', '.join(DISTRIBUTION_NAMES)}")
    run = OmegaConf.create({"agents": agents, "items": items, "data": {"low": 0.0, "high": 1.0}})
    run.distribution = OmegaConf.load(GROUP / f"{name}.yaml")
    try:
        return instantiate(run.distribution, _convert_="all")
    except InstantiationException as error:  # the constructor's own one-line refusal, e.g. triangle with items=3
        raise ValueError(f"distribution {name}: {one_line(error)}") from error
