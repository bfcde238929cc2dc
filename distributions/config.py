"""A run's distribution from its stored configuration (checkpoints, resume), old runs included.

Runs from before the ``distribution`` group had no such node: their values were
``U[data.low, data.high]``, which :func:`distribution_node` spells as the node
``distribution=uniform`` composes.
"""

from __future__ import annotations

from typing import Any, Mapping

from hydra.utils import instantiate

from distributions.base import ValuationDistribution

__all__ = ["distribution_node", "distribution_of"]

UNIFORM_TARGET = "distributions.Uniform"


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
