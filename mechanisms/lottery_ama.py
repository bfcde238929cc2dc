"""An entropic lottery affine maximizer: a learned menu of feasible lotteries, truthful by construction.

Scores ``s_k(b) = sum_i w_i b_i . A_k,i + lambda_k`` of the options ``A_k`` (Sinkhorn plans of learned costs),
allocation ``x = sum_k softmax(s(b) / T)_k A_k``, payment ``p_i = b_i . x_i - (V(b) - V_-i(b)) / w_i`` with
``V = T logsumexp(s / T)`` and ``V_-i`` the same without bidder ``i``'s term (docs/lottery_ama.md).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

from utils.checks import check_flag, check_positive_int
from mechanisms.demand import Demand, KSpec
from mechanisms.networks import check_dtype
from mechanisms.prepared import PreparedCall
from mechanisms.sinkhorn import Sinkhorn, SinkhornSettings
from mechanisms.sinkhorn_base import SinkhornLayerMechanism

__all__ = ["LotteryAMA"]

_EXP_FLOOR = -80.0  # e^-80 < 2e-35 of the largest term; the CPU's exp of an underflowing argument is much slower


class _FlooredExp(torch.autograd.Function):
    """``exp(max(x, _EXP_FLOOR))`` with the gradient of ``exp`` everywhere (``grad * result``: below the floor the
    derivative is below ``e^-80`` either way, and a mask's ``where`` costs more than the ``exp`` on the CPU)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        result = x.clamp_min(_EXP_FLOOR).exp_()
        ctx.save_for_backward(result)
        return result

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (result,) = ctx.saved_tensors
        return grad * result


def _exp_terms(z: Tensor, dim: int) -> tuple[Tensor, Tensor, Tensor]:
    """Along ``dim``: the terms ``exp(z - max z)`` (floored, :class:`_FlooredExp`), their sum (kept dim) and
    ``logsumexp(z)``, from one ``exp``; ``softmax(z)`` is ``terms / sum``."""
    top = z.detach().amax(dim, keepdim=True)
    terms = _FlooredExp.apply(z - top)
    total = terms.sum(dim, keepdim=True)
    return terms, total, (top + total.log()).squeeze(dim)


class LotteryAMA(SinkhornLayerMechanism):
    """Entropic lottery affine maximizer: bids ``(batch, agents, items)`` -> allocation ``(batch, agents, items)``
    and payments ``(batch, agents)``.  ``options`` (>= 2) option costs start as ``cost_scale`` times standard normal
    draws, the boosts at 0, the weights at 1; ``prepared_calls``: docs/mechanisms.md#prepared-calls."""

    def __init__(self, n_agents: int, n_items: int, demand: str | Demand = "unit", k: KSpec = 1,
                 sinkhorn: SinkhornSettings = SinkhornSettings(), options: int = 128, temperature: float = 0.01,
                 cost_scale: float = 0.2, prepared_calls: bool = True) -> None:
        check_positive_int(options, "options")
        if options < 2:  # V = V_-i + w_i b_i . A_0, so p_i = b_i . x_i - b_i . A_0 = 0 for every bid
            raise ValueError("options=1: a menu of one lottery charges every bidder 0 (revenue 0 by construction); "
                             "use options >= 2")
        check_flag(prepared_calls, "prepared_calls")
        for name, value in (("temperature", temperature), ("cost_scale", cost_scale)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        super().__init__(n_agents, n_items, demand, k, sinkhorn)
        self.option_costs = nn.Parameter(cost_scale * torch.randn(options, n_agents, n_items))
        self.boosts = nn.Parameter(torch.zeros(options))
        self.log_weights = nn.Parameter(torch.zeros(n_agents))
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        self.prepared_calls = prepared_calls

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
        return self._outcome(bids, self.lotteries(solver))

    def prepare(self, valuations: Tensor, solver: Sinkhorn | None = None) -> PreparedCall:
        """Calls bound to valid ``valuations`` ``(batch, agents, items)`` (:mod:`mechanisms.prepared`) with the menu,
        the scores and every agent's ``V_-i`` computed once, now: they do not change while it alone deviates."""
        check_dtype(valuations, self)
        return _PreparedMenu(self, valuations, self.lotteries(solver))

    def _scores(self, bids: Tensor, lotteries: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        """``w_i b_i . A_k,i`` ``(batch, options, agents)`` and the scores ``s_k(b)`` ``(batch, options)``."""
        weighted = weights * torch.einsum("bnm,knm->bkn", bids, lotteries)
        return weighted, weighted.sum(-1) + self.boosts

    def _outcome(self, bids: Tensor, lotteries: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation and payment for bids ``(batch, agents, items)`` and the menu ``(options, agents, items)``."""
        weights, temperature = self.log_weights.exp(), self.temperature
        weighted, scores = self._scores(bids, lotteries, weights)  # (B, K, n), (B, K)
        allocation = torch.einsum("bk,knm->bnm", torch.softmax(scores / temperature, 1), lotteries)
        welfare = temperature * torch.logsumexp(scores / temperature, 1)  # (B,)
        without = temperature * torch.logsumexp((scores.unsqueeze(-1) - weighted) / temperature, 1)  # (B, n)
        payment = (bids * allocation).sum(-1) - (welfare.unsqueeze(1) - without) / weights
        return allocation, payment

    def extra_repr(self) -> str:
        return (f"agents={self.n_agents}, items={self.n_items}, demand={self.demand}, "
                f"options={self.option_costs.shape[0]}, temperature={self.temperature.item():.4g}")


class _PreparedMenu(PreparedCall):
    """:meth:`LotteryAMA.prepare`: the menu, the truth's scores and each agent's ``V_-i`` at the truth, so that a
    deviation of agent ``i`` from ``v_i`` to ``r`` costs one product: its scores are the truth's minus
    ``w_i A_k,i . (v_i - r)`` (all scores in units of ``T``)."""

    def __init__(self, mechanism: LotteryAMA, valuations: Tensor, lotteries: Tensor) -> None:
        super().__init__(functools.partial(mechanism._outcome, lotteries=lotteries), valuations)
        weights, temperature = mechanism.log_weights.exp(), mechanism.temperature
        weighted, scores = mechanism._scores(valuations, lotteries, weights)  # (B, K, n), (B, K)
        n = valuations.shape[1]
        self.menus = lotteries.permute(1, 0, 2).unsqueeze(1)  # (n, 1, K, m): A_i
        # (n, 1, m, K): w_i A_i / T, transposed
        self.scaled = (self.menus * (weights / temperature).view(n, 1, 1, 1)).transpose(2, 3)
        self.price = (temperature / weights).view(n, 1, 1)  # T / w_i: a unit of scores in agent i's money
        self.scores = scores / temperature  # (B, K)
        without = (scores.unsqueeze(-1) - weighted).permute(2, 0, 1) / temperature  # (n, B, K)
        self.welfare_without = _exp_terms(without, -1)[2].unsqueeze(1)  # (n, 1, B): V_-i / T
        self.truth = valuations.transpose(0, 1).unsqueeze(1)  # (n, 1, B, m)

    def _deviators(self, agents: slice, truth: Tensor, reports: Tensor, scores: Tensor, without: Tensor
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """For agents ``agents`` (``a`` of them) reporting ``reports`` ``(a, S, X, items)`` instead of ``truth``
        ``(a, 1, X, items)``, with the truth's scores ``(X, options)`` and ``V_-i / T`` ``(a, 1, X)``: the choice
        weights ``(a, S, X, options)`` (:func:`_exp_terms`), their sum ``(a, S, X, 1)``, the score gaps
        ``w_i A_k,i . (v_i - r) / T`` (as the weights) and ``(V - V_-i) / T`` ``(a, S, X)``."""
        gaps = (truth - reports) @ self.scaled[agents]
        terms, total, welfare = _exp_terms(scores - gaps, -1)
        return terms, total, gaps, welfare - without

    def utilities(self, rows: Tensor) -> Tensor:
        # u_i = v_i . x_i - p_i = sum_k chosen_k A_k,i . (v_i - r) + (V - V_-i) / w_i, in units of T / w_i
        terms, total, gaps, surplus = self._deviators(slice(None), self.truth, rows.transpose(0, 1), self.scores,
                                                      self.welfare_without)
        return (self.price * ((terms * gaps).sum(-1) / total.squeeze(-1) + surplus)).permute(1, 2, 0)

    def _outcomes(self, agents: slice, truth: Tensor, reports: Tensor, scores: Tensor, without: Tensor
                  ) -> tuple[Tensor, Tensor]:
        """:meth:`_deviators`' allocation ``(a, S, X, items)`` and payment ``(a, S, X)``."""
        terms, total, _, surplus = self._deviators(agents, truth, reports, scores, without)
        allocation = (terms @ self.menus[agents]) / total
        return allocation, (reports * allocation).sum(-1) - self.price[agents] * surplus

    def truthful(self) -> tuple[Tensor, Tensor]:
        # every agent at its own truth: the gaps are exactly 0, so the truth scores as a deviation to it does
        allocation, payment = self._outcomes(slice(None), self.truth, self.truth, self.scores, self.welfare_without)
        return allocation[:, 0].transpose(0, 1), payment[:, 0].T

    def deviations(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        allocation, payment = self._outcomes(slice(None), self.truth, rows.transpose(0, 1), self.scores,
                                             self.welfare_without)
        return allocation.transpose(0, 1), payment.transpose(0, 1)

    def deviate(self, agent: int, sources: Tensor, reports: Tensor) -> tuple[Tensor, Tensor]:
        one, profiles = slice(agent, agent + 1), (1, 1, *reports.shape)
        allocation, payment = self._outcomes(one, self.valuations[sources, agent].view(profiles),
                                             reports.view(profiles), self.scores[sources],
                                             self.welfare_without[one, :, sources])
        return allocation[0, 0], payment[0, 0]
