"""A Sinkhorn auction whose payments come from the layer's own objective (an entropic VCG with a learned residual).

The Sinkhorn layer at epsilon ``eps`` (the schedule's last) computes the plan ``P`` that minimizes
``<C, P> + eps sum P log P`` under the demand's marginals, for the cost ``C`` ``(batch, agents + 1, items + 1)``
(:meth:`~mechanisms.demand.Demand.cost` of the scores).  Here the scores are

    ``scores = scale * (reserve - bids) + net(bids)``        ``(batch, agents, items)``,

``scale > 0`` and ``reserve`` learned scalars, ``net`` the allocation network (its last layer starts at zero).
With ``V(b) = -min_P (<C(b), P> + eps sum P log P) / scale`` (the regularized welfare of the bids net of the
reserve, in value units), bidder ``i`` pays

    ``p_i = clip(b_i . x_i - (V(b) - V(0_i, b_-i)), 0, b_i . x_i)``

where ``x_i`` is its allocation and ``(0_i, b_-i)`` the bids with its own set to zero (one more Sinkhorn solve
per bidder, batched; :meth:`~PotentialSinkhornMechanism.prepare` solves them once for a misreport search, where
bidder ``i`` deviates alone and ``b_-i`` is the truth). While ``net`` is zero this is the entropic VCG auction
with reserve ``reserve`` (an affine maximizer with an entropy term): ``V`` is convex in ``b_i`` with gradient
``x_i``, so the payment is the one the envelope theorem fixes, the mechanism is dominant-strategy truthful and
individually rational (up to the Sinkhorn tolerance), and the clip never binds. Training moves ``net``, ``scale``
and ``reserve`` away from it wherever revenue pays for the regret (the Lagrangian measures the regret as for any
mechanism); the clip keeps every payment between 0 and the reported value of the allocation (individually
rational by construction, as the sigmoid-fraction payment network is).

``scale`` sets the sharpness: the layer's epsilon in value units is ``eps / scale`` (``0.05 / 8`` by default).
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
    """Sinkhorn auction with payments from the layer's objective (see the module docstring).

    ``forward(bids)`` maps bids ``(batch, agents, items)`` to an allocation ``(batch, agents, items)`` and
    payments ``(batch, agents)``.  ``scale`` (> 0) and ``reserve`` (finite) are the starting values of the two
    learned scalars; ``allocation_net`` builds the residual network (its last linear layer is zeroed, so the
    mechanism starts as the entropic VCG auction with that reserve).  There is no payment network.
    :meth:`prepare` solves ``V(0_i, v_-i)`` once for all of a misreport search's calls; ``prepared_calls=False``
    has the engines call the forward instead (:func:`adversary.deviation.prepared`), each call solving
    ``V(0_i, b_-i)`` for its own profiles, which reproduces runs recorded before prepared calls bit for bit
    (under the tolerance rule the two differ by the Sinkhorn tolerance: the stopping iteration is the worst
    problem's of each batch).
    """

    def __init__(
        self,
        n_agents: int,
        n_items: int,
        demand: str | Demand = "unit",
        k: KSpec = 1,
        sinkhorn: SinkhornSettings = SinkhornSettings(),
        allocation_net: NetworkFactory = MLP(),
        scale: float = 8.0,
        reserve: float = 0.5,
        prepared_calls: bool = True,
    ) -> None:
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
        raw = value - (welfare - welfare_without)
        return torch.minimum(raw.clamp_min(0), value)

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
        """Calls bound to valid ``valuations`` ``(batch, agents, items)`` with ``V(0_i, v_-i)`` solved once, now
        (:mod:`mechanisms.prepared`; in the graph of the parameters unless prepared under ``no_grad``): when
        agent ``i`` alone deviates, the others are truthful, so its payment's ``V(0_i, b_-i)`` is that one."""
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
        payment = self.mechanism._settle(
            own_entries(value, starts, n, batch), welfare.view(starts, n, batch), self.welfare_without.T
        )
        return own_entries(allocation, starts, n, batch), payment

    def deviate(self, agent: int, sources: Tensor, reports: Tensor) -> tuple[Tensor, Tensor]:
        profiles = agent_profiles(self.valuations, agent, sources, reports)
        allocation, welfare, value = self.mechanism._terms(profiles, self.solver)
        payment = self.mechanism._settle(value[:, agent], welfare, self.welfare_without[sources, agent])
        return allocation[:, agent], payment
