"""An entropic lottery affine maximizer: a learned menu of feasible lotteries, truthful by construction.

The mechanism holds ``options`` lotteries ``A_k`` ``(options, agents, items)``, each the Sinkhorn plan of a learned
cost under the demand's marginals (so every option, and every mixture of them, is a feasible allocation),
boosts ``lambda_k``, bidder weights ``w_i > 0`` and a temperature ``T > 0``, all learned.  For bids ``b``
``(batch, agents, items)`` the options' scores are

    ``s_k(b) = sum_i w_i b_i . A_k,i + lambda_k``,

the allocation is the softmax mixture ``x = sum_k softmax(s(b) / T)_k A_k``, and with
``V(b) = T logsumexp(s(b) / T)`` and ``V_-i(b)`` the same without bidder ``i``'s term, bidder ``i`` pays

    ``p_i = b_i . x_i - (V(b) - V_-i(b)) / w_i``.

``V`` is convex in ``b_i`` with gradient ``w_i x_i`` and ``V_-i`` does not depend on ``b_i``, so for every value
of the parameters the mechanism is dominant-strategy truthful, individually rational (``V >= V_-i``) and charges
``0 <= p_i <= b_i . x_i`` (convexity): training maximizes revenue over a family of truthful mechanisms. As
``T -> 0`` it is the lottery AMA of Curry, Sandholm and Dickerson (2023); with the deterministic assignments
as options, unit weights and no boosts, the VCG auction.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from utils.checks import check_positive_int
from mechanisms.demand import Demand, KSpec
from mechanisms.networks import check_dtype
from mechanisms.sinkhorn import Sinkhorn, SinkhornSettings
from mechanisms.sinkhorn_base import SinkhornLayerMechanism

__all__ = ["LotteryAMA"]


class LotteryAMA(SinkhornLayerMechanism):
    """Entropic lottery affine maximizer (see the module docstring).

    ``forward(bids)`` maps bids ``(batch, agents, items)`` to an allocation ``(batch, agents, items)`` and payments
    ``(batch, agents)``.  ``options`` (>= 2: one option charges nothing) is the menu's size; the option costs start as ``cost_scale`` times standard
    normal draws (the layer's epsilon is ``sinkhorn.eps_final``: a scale well above it makes the options nearly
    deterministic), the boosts at 0, the weights at 1 and the temperature at ``temperature`` (value units).
    Like :class:`~mechanisms.sinkhorn_auction.SinkhornMechanism` it is a
    :class:`~mechanisms.sinkhorn_base.SinkhornLayerMechanism` (:attr:`settings`, :meth:`calibrate`) and takes a
    ``solver`` argument to :meth:`allocate_and_pay`, for the captured training step.
    """

    def __init__(
        self,
        n_agents: int,
        n_items: int,
        demand: str | Demand = "unit",
        k: KSpec = 1,
        sinkhorn: SinkhornSettings = SinkhornSettings(),
        options: int = 128,
        temperature: float = 0.01,
        cost_scale: float = 0.2,
    ) -> None:
        check_positive_int(options, "options")
        if options < 2:  # V = V_-i + w_i b_i . A_0, so p_i = b_i . x_i - b_i . A_0 = 0 for every bid
            raise ValueError("options=1: a menu of one lottery charges every bidder 0 (revenue 0 by construction); "
                             "use options >= 2")
        for name, value in (("temperature", temperature), ("cost_scale", cost_scale)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        super().__init__(n_agents, n_items, demand, k, sinkhorn)
        self.option_costs = nn.Parameter(cost_scale * torch.randn(options, n_agents, n_items))
        self.boosts = nn.Parameter(torch.zeros(options))
        self.log_weights = nn.Parameter(torch.zeros(n_agents))
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))

    @property
    def temperature(self) -> Tensor:
        """The softmax temperature ``T`` (a 0-d tensor, > 0, value units)."""
        return self.log_temperature.exp()

    def lotteries(self, solver: Sinkhorn | None = None) -> Tensor:
        """The menu's allocations ``A`` ``(options, agents, items)``, feasible for the demand."""
        return self.demand.fold(self._solve(self.demand.cost(self.option_costs), solver))

    def _calibration_cost(self, bids: Tensor) -> Tensor:
        """The options' costs ``(options, agents + 1, items + 1)`` (the menu does not depend on the bids)."""
        return self.demand.cost(self.option_costs)

    def allocate_and_pay(self, bids: Tensor, solver: Sinkhorn | None = None) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, items)`` and payment ``(batch, agents)`` for valid bids."""
        check_dtype(bids, self)
        lotteries = self.lotteries(solver)  # (K, n, m)
        weights, temperature = self.log_weights.exp(), self.temperature
        weighted = weights * torch.einsum("bnm,knm->bkn", bids, lotteries)  # (B, K, n): w_i b_i . A_k,i
        scores = weighted.sum(-1) + self.boosts  # (B, K)
        allocation = torch.einsum("bk,knm->bnm", torch.softmax(scores / temperature, 1), lotteries)
        welfare = temperature * torch.logsumexp(scores / temperature, 1)  # (B,)
        without = temperature * torch.logsumexp((scores.unsqueeze(-1) - weighted) / temperature, 1)  # (B, n)
        payment = (bids * allocation).sum(-1) - (welfare.unsqueeze(1) - without) / weights
        return allocation, payment

    def extra_repr(self) -> str:
        return (f"agents={self.n_agents}, items={self.n_items}, demand={self.demand}, "
                f"options={self.option_costs.shape[0]}, temperature={self.temperature.item():.4g}")
