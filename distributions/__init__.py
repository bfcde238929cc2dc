"""Valuation distributions: the Hydra group ``distribution/`` (conf/distribution/), one module per distribution;
:class:`ValuationDistribution` is the interface, :class:`Setting` joins one with its bidders, items and demand."""

from distributions.base import Support, ValuationDistribution, unit_uniform
from distributions.config import DISTRIBUTION_NAMES, distribution_node, named_distribution
from distributions.setting import Setting
from distributions.exponential import Exponential, exponential_bundle_price, exponential_myerson_revenue
from distributions.triangle import Triangle, triangle_bundle_revenue
from distributions.uniform import Uniform

__all__ = ["DISTRIBUTION_NAMES", "Exponential", "Setting", "Support", "Triangle", "Uniform", "ValuationDistribution",
           "distribution_node", "exponential_bundle_price", "exponential_myerson_revenue", "named_distribution",
           "triangle_bundle_revenue", "unit_uniform"]
