"""Independent exponential values with mean ``scale``, truncated at a high quantile (the report domain).

The misreport search needs a bounded report domain: values are drawn from the exponential conditioned on
``v <= cap = -scale ln(1 - quantile)`` (inverse CDF of the truncated law, so no sample is clamped; the default
``quantile = 0.9999`` puts ``cap`` at ``9.21 scale``), and ``[0, cap]`` is the report domain.

References.  ``items = 1``, free disposal: Myerson's optimal auction, second price with reserve ``scale`` (the
virtual value is ``v - scale``), revenue ``E[(max_i v_i - scale)^+] = scale * sum_{k=1..n} C(n, k) (-1)^(k+1)
e^(-k) / k`` for ``n`` bidders.  Dütting et al.'s MyersonNet benchmark (3 bidders, ``numpy.random.exponential(3.0)``:
github.com/saisrivatsan/deep-opt-auctions, ``myersonNet/data/exp_3.py``, ``MyersonNet/plots/3agent_exponential/
result.txt``) reports 2.749 (Monte Carlo); the closed form gives 2.7517.  One additive bidder, ``m >= 2`` items: the
grand bundle is optimal for i.i.d. exponential values (Giannakopoulos, arXiv:1404.2832, a corollary in its
abstract).  Its value is Gamma(m, scale), so its price ``scale x`` maximizes ``x e^(-x) sum_{k<m} x^k / k!``:
``x^m / (m-1)! = sum_{k<m} x^k / k!``; two items: ``x^2 = 1 + x``, the golden ratio, revenue ``0.8399 scale``
(separate sales: ``2 scale / e = 0.7358 scale``).  The truncation changes these revenues by about
``n m (1 - quantile)`` relative (``3e-4`` for 3 bidders), well below a test's Monte Carlo error.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from distributions.base import Support, ValuationDistribution, unit_uniform
from mechanisms.base import Mechanism
from mechanisms.demand import Demand
from mechanisms.menu import MenuMechanism, Myerson

__all__ = ["Exponential", "exponential_bundle_price", "exponential_myerson_revenue"]


def exponential_myerson_revenue(n_agents: int, scale: float = 1.0) -> float:
    """Revenue of Myerson's auction (second price, reserve ``scale``), ``n_agents`` i.i.d. Exp(mean ``scale``)."""
    return scale * sum(math.comb(n_agents, k) * (-1) ** (k + 1) * math.exp(-k) / k for k in range(1, n_agents + 1))


def exponential_bundle_price(items: int, scale: float = 1.0) -> tuple[float, float]:
    """``(price, revenue)`` of the optimal grand bundle for one additive bidder, ``items`` i.i.d. Exp(mean ``scale``):
    the root of ``x^m / (m-1)! = sum_{k<m} x^k / k!`` (bisection), times ``scale``."""
    def gap(x: float) -> float:
        return x**items / math.factorial(items - 1) - sum(x**k / math.factorial(k) for k in range(items))
    low, high = 0.0, 10.0 * items + 10.0  # gap(0) = -1 < 0 < gap(high)
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if gap(middle) < 0 else (low, middle)
    x = (low + high) / 2
    tail = math.exp(-x) * sum(x**k / math.factorial(k) for k in range(items))  # P(Gamma(items, 1) >= x)
    return scale * x, scale * x * tail


class Exponential(ValuationDistribution):
    """Values i.i.d. exponential with mean ``scale``, truncated at their ``quantile`` quantile."""

    name = "exponential"

    def __init__(self, n_agents: int, n_items: int, scale: float = 1.0, quantile: float = 0.9999) -> None:
        super().__init__(n_agents, n_items)
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"exponential scale (the mean value) must be a positive finite number, got {scale!r}")
        if not (isinstance(quantile, (int, float)) and 0 < quantile < 1):
            raise ValueError(f"exponential quantile (where values are truncated) must lie in (0, 1), got {quantile!r}")
        self.scale, self.quantile = float(scale), float(quantile)
        self.cap = -self.scale * math.log1p(-self.quantile)

    def parameters(self) -> dict[str, Any]:
        return {"scale": self.scale, "quantile": self.quantile}

    @property
    def support(self) -> Support:
        shape = (self.n_agents, self.n_items)
        return Support(torch.zeros(shape, dtype=torch.float64), torch.full(shape, self.cap, dtype=torch.float64))

    def _sample(self, n: int, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype) -> Tensor:
        unit = unit_uniform((n, self.n_agents, self.n_items), generator, device, dtype)
        return (-self.scale * torch.log1p(-self.quantile * unit)).clamp(max=self.cap)  # (clamp: rounding only)

    def optimal_mechanism(self, demand: Demand) -> Mechanism | None:
        """Myerson's auction for one item with free disposal (reserve ``scale``); the grand bundle for one
        additive bidder and several items; else ``None``."""
        if not demand.free_disposal(self.n_agents, self.n_items):
            return None
        if self.n_items == 1:
            myerson = Myerson(self.n_agents, 2.0 * self.scale, demand)  # Myerson's reserve is high / 2
            myerson.expected_revenue = exponential_myerson_revenue(self.n_agents, self.scale)
            myerson.name = f"second price with reserve {self.scale:g} (Myerson 1981, exponential values)"
            return myerson
        if self.n_agents != 1 or demand.capacities(1, self.n_items)[0] < self.n_items:
            return None
        price, revenue = exponential_bundle_price(self.n_items, self.scale)
        name = f"grand bundle at {price:.4g} (Giannakopoulos 2015, exponential values)"
        return MenuMechanism([[0.0] * self.n_items, [1.0] * self.n_items], [0.0, price], demand,
                             expected_revenue=revenue, name=name)
