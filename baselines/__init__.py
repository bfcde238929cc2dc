"""Simple truthful mechanisms with fitted prices: the floor a learned auction must beat.

* :class:`PostedPrice` - sequential posted prices (unit, k_demand, additive);
* :class:`VCGReserve` - VCG with one reserve price (unit, k_demand, additive);
* :class:`PayToChoose` - a free lottery or a price for the best items (exactly_k);
* :class:`ItemwiseMyerson` - a second-price auction with reserve on each item (additive);
* :class:`GrandBundle` - a second-price auction with reserve on the bundle of every item (additive);
* :func:`fit_baseline`, :func:`best_baseline`, :func:`applicable_baselines` - prices fitted to the setting;
* :func:`baseline_revenues`, :func:`best_truthful_baseline` - their revenue on given profiles.
"""

from baselines.compare import BaselineRevenue, baseline_revenues, best_truthful_baseline
from baselines.fit import (
    BASELINE_NAMES,
    BASELINE_SAMPLES,
    FittedBaseline,
    applicable_baselines,
    baseline_mechanism,
    best_baseline,
    fit_baseline,
)
from baselines.grand_bundle import GrandBundle
from baselines.itemwise_myerson import ItemwiseMyerson
from baselines.pay_to_choose import PayToChoose
from baselines.posted_price import PostedPrice
from baselines.vcg_reserve import VCGReserve

__all__ = [
    "BASELINE_NAMES",
    "BASELINE_SAMPLES",
    "BaselineRevenue",
    "FittedBaseline",
    "GrandBundle",
    "ItemwiseMyerson",
    "PayToChoose",
    "PostedPrice",
    "VCGReserve",
    "applicable_baselines",
    "baseline_mechanism",
    "baseline_revenues",
    "best_baseline",
    "best_truthful_baseline",
    "fit_baseline",
]
