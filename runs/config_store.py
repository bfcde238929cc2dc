"""The configuration's defaults that live in Python, registered as Hydra config nodes (docs/training.md): the
YAML files under ``conf/`` select :data:`NODES` through their defaults lists instead of repeating numbers.
:func:`register_configs` stores them in Hydra's ``ConfigStore``; importing :mod:`runs` calls it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hydra.core.config_store import ConfigStore

from adversary.search import TEST_SAMPLES, TEST_SEARCH, TRAIN_SEARCH, VAL_SEARCH, MisreportSearch
from mechanisms.sinkhorn import SinkhornSettings

__all__ = ["NODES", "register_configs"]

SEARCH_TARGET = f"{MisreportSearch.__module__}.{MisreportSearch.__qualname__}"  # adversary.search.MisreportSearch
SINKHORN_TARGET = "mechanisms.sinkhorn.SinkhornSettings"  # the public name (the class lives in a private module)


def _node(target: str, settings: Any, left_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """Dataclass instance ``settings`` as a config node that ``hydra.utils.instantiate`` turns back into an equal
    object: its constructor fields, in declaration order, less ``left_out`` (there the object's defaults apply)."""
    names = [f.name for f in dataclasses.fields(settings) if f.init and f.name not in left_out]
    return {"_target_": target, **{name: getattr(settings, name) for name in names}}


# (group, name): node.  Left out: the search's optimizer ("adam"), and the fixed Sinkhorn schedule and its backend
# (the fast training step's calibration, model.fast).
NODES: dict[tuple[str, str], dict[str, Any]] = {
    **{("model/search", name): _node(SEARCH_TARGET, search, ("optimizer",))
       for name, search in (("train", TRAIN_SEARCH), ("val", VAL_SEARCH), ("test", TEST_SEARCH))},
    ("data/test_set", "paper"): {"test_size": TEST_SAMPLES},
    ("sinkhorn", "paper"): _node(SINKHORN_TARGET, SinkhornSettings(), ("fixed_iterations", "backend")),
}


def register_configs() -> None:
    """Store :data:`NODES` in Hydra's ``ConfigStore`` (idempotent: storing again replaces the same nodes)."""
    store = ConfigStore.instance()
    for (group, name), node in NODES.items():
        store.store(group=group, name=name, node=node)
