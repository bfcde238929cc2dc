"""Simple truthful mechanisms with fitted prices: the floor a learned auction must beat (docs/baselines.md).

The mechanisms (:class:`PostedPrice`, :class:`VCGReserve`, :class:`PayToChoose`, :class:`ItemwiseMyerson`,
:class:`GrandBundle`), their prices fitted to a setting (:mod:`baselines.fit`) and their revenue on given
profiles (:mod:`baselines.compare`).
"""

from baselines.compare import BaselineRevenue, baseline_revenues, best_truthful_baseline
from baselines.fit import (BASELINE_NAMES, BASELINE_SAMPLES, FittedBaseline, applicable_baselines, baseline_mechanism,
                           best_baseline, fit_baseline)
from baselines.grand_bundle import GrandBundle
from baselines.itemwise_myerson import ItemwiseMyerson
from baselines.pay_to_choose import PayToChoose
from baselines.posted_price import PostedPrice
from baselines.vcg_reserve import VCGReserve

__all__ = ["BASELINE_NAMES", "BASELINE_SAMPLES", "BaselineRevenue", "FittedBaseline", "GrandBundle", "ItemwiseMyerson",
           "PayToChoose", "PostedPrice", "VCGReserve", "applicable_baselines", "baseline_mechanism",
           "baseline_revenues", "best_baseline", "best_truthful_baseline", "fit_baseline"]
