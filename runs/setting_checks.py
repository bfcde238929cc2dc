"""Settings checked against their meaning before any work (:func:`check_meaning`, in
:func:`runs.config.validate_config`, after the components' constructors checked each argument alone).
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from distributions import ValuationDistribution
from mechanisms.demand import Demand
from baselines.teachers import check_teacher

__all__ = ["RESOLUTION", "check_meaning"]

RESOLUTION = 1e-4
"""The narrowest value range, relative to its largest magnitude: float32 (about 7 digits) then resolves a
regret of 1e-3 of the range to about 1%."""


def check_meaning(cfg: DictConfig, distribution: ValuationDistribution) -> None:
    """One-line ``ValueError`` for a setting of ``cfg`` that is meaningless for the run: negative values or a value
    range too narrow for float32 to resolve a regret in (``distribution``: the run's, as built), a starting
    ``mechanism.reserve`` outside the values' range, a warm start (``init``) the demand does not admit or whose
    callback (``callbacks.warm_start``) is null."""
    low, high = distribution.support
    lowest, highest = float(low.min()), float(high.max())
    if bool((low < 0).any()):
        raise ValueError(f"distribution: values must be >= 0 (individual rationality and the payments' bounds are "
                         f"stated for nonnegative values), got a lowest value of {lowest:g}")
    width, magnitude = high - low, torch.maximum(low.abs(), high.abs())
    if bool((width < RESOLUTION * magnitude).any()):
        raise ValueError(f"distribution: the value range [{lowest:g}, {highest:g}] is narrower than "
                         f"{RESOLUTION:g} of its magnitude: float32 training cannot resolve regret in it; shift the values "
                         "toward 0 or widen the range")
    reserve = cfg.mechanism.get("reserve")
    if reserve is not None and not lowest <= reserve < highest:
        start = "unsold" if reserve >= highest else "sold at any bid"
        raise ValueError(f"mechanism.reserve={reserve:g} lies outside the values' range [{lowest:g}, {highest:g}): "
                         f"every item would start {start}; set a reserve in the range (the fitted vcg_reserve's price "
                         "is a good start: baselines)")
    init = cfg.get("init", "none")
    try:
        check_teacher(init, cfg["agents"], cfg["items"], Demand(cfg.demand.name, cfg.demand.k))
    except ValueError as error:
        raise ValueError(f"warm start: {error}") from error
    if init != "none" and (cfg.get("callbacks") or {}).get("warm_start") is None:
        raise ValueError(f"warm start: init={init} but callbacks.warm_start, which runs it, is null; drop init or the "
                         "callbacks.warm_start=null override")
