"""The configuration's defaults that live in Python, registered as Hydra config nodes (one source for each).

The YAML files under ``conf/`` select these nodes (:data:`NODES`) through their defaults lists instead of repeating
numbers (docs/training.md): ``model/search`` ``train``, ``val``, ``test`` (:mod:`adversary.search`'s searches as
``_target_`` nodes), ``data/test_set`` ``paper`` (``test_size``) and ``sinkhorn`` ``paper``
(:class:`~mechanisms.sinkhorn.SinkhornSettings`' defaults).  :func:`register_configs` stores them in Hydra's
``ConfigStore``; importing :mod:`runs` calls it.  The nodes are plain dictionaries, overridden like YAML.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hydra.core.config_store import ConfigStore

from adversary.search import TEST_SAMPLES, TEST_SEARCH, TRAIN_SEARCH, VAL_SEARCH, MisreportSearch
from mechanisms.sinkhorn import SinkhornSettings

__all__ = ["NODES", "register_configs", "search_node", "sinkhorn_node"]

# Fields the config does not set (the objects' own defaults apply): the search's optimizer ("adam"), and the
# fixed Sinkhorn schedule and its backend (the fast training step's calibration, model.fast).
SEARCH_LEFT_OUT = ("optimizer",)
SINKHORN_LEFT_OUT = ("fixed_iterations", "backend")


def _fields(settings: Any, left_out: tuple[str, ...]) -> dict[str, Any]:
    """The constructor fields of dataclass instance ``settings``, in declaration order, less ``left_out``."""
    fields = dataclasses.fields(settings)
    return {field.name: getattr(settings, field.name) for field in fields if field.init and field.name not in left_out}


def search_node(search: MisreportSearch) -> dict[str, Any]:
    """``search`` as a config node; ``hydra.utils.instantiate`` turns it back into an equal :class:`MisreportSearch`."""
    target = f"{MisreportSearch.__module__}.{MisreportSearch.__qualname__}"  # adversary.search.MisreportSearch
    return {"_target_": target, **_fields(search, SEARCH_LEFT_OUT)}


SINKHORN_TARGET = "mechanisms.sinkhorn.SinkhornSettings"  # the public name (the class lives in a private module)


def sinkhorn_node(settings: SinkhornSettings = SinkhornSettings()) -> dict[str, Any]:
    """The ``sinkhorn`` section for ``settings``: schedule, stopping rule, gradient mode (default: the paper's), as a
    node that ``hydra.utils.instantiate`` turns back into an equal :class:`SinkhornSettings`."""
    return {"_target_": SINKHORN_TARGET, **_fields(settings, SINKHORN_LEFT_OUT)}


# (group, name): node
NODES: dict[tuple[str, str], dict[str, Any]] = {
    ("model/search", "train"): search_node(TRAIN_SEARCH),
    ("model/search", "val"): search_node(VAL_SEARCH),
    ("model/search", "test"): search_node(TEST_SEARCH),
    ("data/test_set", "paper"): {"test_size": TEST_SAMPLES},
    ("sinkhorn", "paper"): sinkhorn_node(),
}


def register_configs() -> None:
    """Store :data:`NODES` in Hydra's ``ConfigStore`` (idempotent: storing again replaces the same nodes)."""
    store = ConfigStore.instance()
    for (group, name), node in NODES.items():
        store.store(group=group, name=name, node=node)
