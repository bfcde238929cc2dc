"""A Sinkhorn auction whose payments come from the layer's own objective (an entropic VCG with a learned residual).

Scores ``scale * (reserve - bids) + net(bids)`` are the layer's cost; with ``V(b) = -min_P (<C(b), P> + eps sum P
log P) / scale`` bidder ``i`` pays ``p_i = clip(b_i . x_i - (V(b) - V(0_i, b_-i)), 0, b_i . x_i)``.  While ``net`` is
zero (as it starts) this is the entropic VCG auction with reserve ``reserve`` (docs/potential_payments.md).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

from utils.checks import check_flag
from mechanisms.demand import Demand, KSpec
from mechanisms.networks import MLP, NetworkFactory, check_dtype
from mechanisms.prepared import PreparedCall, agent_profiles, deviation_profiles, own_entries
from mechanisms.sinkhorn import Sinkhorn, SinkhornSettings
from mechanisms.sinkhorn_auction import SinkhornMechanism

__all__ = ["PotentialSinkhornMechanism"]


class PotentialSinkhornMechanism(SinkhornMechanism):
    """Sinkhorn auction with payments from the layer's objective: bids ``(batch, agents, items)`` -> allocation
    ``(batch, agents, items)`` and payments ``(batch, agents)``.  ``scale`` (> 0) and ``reserve`` start the two
    learned scalars, ``allocation_net`` builds ``net``; ``prepared_calls``: docs/mechanisms.md#prepared-calls."""

    def __init__(self, n_agents: int, n_items: int, demand: str | Demand = "unit", k: KSpec = 1,
                 sinkhorn: SinkhornSettings = SinkhornSettings(), allocation_net: NetworkFactory = MLP(),
                 scale: float = 8.0, reserve: float = 0.5, prepared_calls: bool = True) -> None:
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        if not (isinstance(reserve, (int, float)) and math.isfinite(reserve)):
            raise ValueError(f"reserve must be a finite number, got {reserve!r}")
        check_flag(prepared_calls, "prepared_calls")
        super().__init__(n_agents, n_items, demand, k, sinkhorn, allocation_net, payment_net=None)
        linears = [m for m in self.allocation_net.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("allocation_net must end in an nn.Linear layer (it is zeroed at the start)")
        nn.init.zeros_(linears[-1].weight)
        nn.init.zeros_(linears[-1].bias)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))
        self.reserve = nn.Parameter(torch.tensor(float(reserve)))
        self.prepared_calls = prepared_calls

    @property
    def scale(self) -> Tensor:
        """The scores' scale (a 0-d tensor, > 0): the layer's epsilon in value units is ``eps / scale``."""
        return self.log_scale.exp()

    def _cost(self, bids: Tensor) -> Tensor:
        """Sinkhorn cost ``(batch, agents + 1, items + 1)`` of ``scale * (reserve - bids) + net(bids)``."""
        batch, n, m = bids.shape
        residual = self.allocation_net(bids.flatten(1)).view(batch, n, m)
        return self.demand.cost(self.scale * (self.reserve - bids) + residual)

    def _welfare(self, cost: Tensor, plan: Tensor, eps: float) -> Tensor:
        """``V`` ``(batch,)``: minus the regularized transport cost of ``plan``, in value units."""
        entropy_term = (plan * plan.clamp_min(1e-30).log()).sum((1, 2))
        return -((cost * plan).sum((1, 2)) + eps * entropy_term) / self.scale

    def _welfare_without(self, bids: Tensor, solver: Sinkhorn) -> Tensor:
        """``V(0_i, b_-i)`` ``(batch, agents)``: one more Sinkhorn solve per bidder, batched."""
        batch, n, m = bids.shape
        agents = torch.arange(n, device=bids.device)
        # (agents, batch, agents, items): copy i has b_i = 0; copies outermost, so a profile keeps its position
        # modulo the batch (the member layout of mechanisms.ensemble)
        without = bids.unsqueeze(0).repeat(n, 1, 1, 1)
        without[agents, :, agents] = 0
        cost_without = self._cost(without.flatten(0, 1))
        plan_without = solver.solve(cost_without, self.row_marginals, self.col_marginals).plan
        return self._welfare(cost_without, plan_without, solver.epsilons[-1]).view(n, batch).T

    @staticmethod
    def _settle(value: Tensor, welfare: Tensor, welfare_without: Tensor) -> Tensor:
        """Payments ``clip(value - (welfare - welfare_without), 0, value)`` (broadcast; ``value``: ``b_i . x_i``)."""
        return torch.minimum((value - (welfare - welfare_without)).clamp_min(0), value)

    def _payment(self, bids: Tensor, allocation: Tensor, cost: Tensor, plan: Tensor, solver: Sinkhorn) -> Tensor:
        """Payments ``(batch, agents)``: ``b_i . x_i - (V(b) - V(0_i, b_-i))``, clipped to ``[0, b_i . x_i]``."""
        welfare_without = self._welfare_without(bids, solver)
        value = (bids * allocation).sum(-1)
        return self._settle(value, self._welfare(cost, plan, solver.epsilons[-1]).unsqueeze(1), welfare_without)

    def _terms(self, bids: Tensor, solver: Sinkhorn) -> tuple[Tensor, Tensor, Tensor]:
        """Allocation ``(batch, agents, items)``, ``V(b)`` ``(batch,)`` and ``b_i . x_i`` ``(batch, agents)``."""
        cost = self._cost(bids)
        plan = self._solve(cost, solver)
        allocation = self.demand.fold(plan)
        return allocation, self._welfare(cost, plan, solver.epsilons[-1]), (bids * allocation).sum(-1)

    def prepare(self, valuations: Tensor, solver: Sinkhorn | None = None) -> PreparedCall:
        """Calls bound to valid ``valuations`` ``(batch, agents, items)`` (:mod:`mechanisms.prepared`) with
        ``V(0_i, v_-i)`` solved once, now: when agent ``i`` alone deviates, its payment's ``V(0_i, b_-i)`` is that."""
        check_dtype(valuations, self.allocation_net)
        return _PreparedPotential(self, valuations, self.solver if solver is None else solver)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={math.exp(self.log_scale.item()):.4g}, reserve={self.reserve.item():.4g}"


class _PreparedPotential(PreparedCall):
    """:meth:`PotentialSinkhornMechanism.prepare`: the deviator's payment from ``V(0_i, v_-i)`` of the truth."""

    def __init__(self, mechanism: PotentialSinkhornMechanism, valuations: Tensor, solver: Sinkhorn) -> None:
        super().__init__(functools.partial(mechanism.allocate_and_pay, solver=solver), valuations)
        self.mechanism, self.solver = mechanism, solver
        self.welfare_without = mechanism._welfare_without(valuations, solver)  # (batch, agents)

    def truthful(self) -> tuple[Tensor, Tensor]:
        allocation, welfare, value = self.mechanism._terms(self.valuations, self.solver)
        return allocation, self.mechanism._settle(value, welfare.unsqueeze(1), self.welfare_without)

    def deviations(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        starts, n, batch, _ = rows.shape
        allocation, welfare, value = self.mechanism._terms(deviation_profiles(self.valuations, rows), self.solver)
        payment = self.mechanism._settle(own_entries(value, starts, n, batch), welfare.view(starts, n, batch),
                                         self.welfare_without.T)
        return own_entries(allocation, starts, n, batch), payment

    def deviate(self, agent: int, sources: Tensor, reports: Tensor) -> tuple[Tensor, Tensor]:
        profiles = agent_profiles(self.valuations, agent, sources, reports)
        allocation, welfare, value = self.mechanism._terms(profiles, self.solver)
        payment = self.mechanism._settle(value[:, agent], welfare, self.welfare_without[sources, agent])
        return allocation[:, agent], payment
