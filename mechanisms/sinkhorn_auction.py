"""The Sinkhorn auction network (section 4.3 of the paper; docs/mechanisms.md).

An allocation network maps the flattened bids to agents x items scores; the demand type turns them into the
Sinkhorn layer's cost (zero-cost dummy row and column), gives the marginals and folds the plan back into the
allocation (:class:`~mechanisms.demand.Demand`).  Payments come from :class:`~mechanisms.networks.PaymentHead`.
"""

from __future__ import annotations

from torch import Tensor, nn

from mechanisms.base import check_bids
from mechanisms.demand import Demand, KSpec
from mechanisms.networks import MLP, NetworkFactory, PaymentHead, check_dtype
from mechanisms.sinkhorn import Sinkhorn, SinkhornSettings
from mechanisms.sinkhorn_base import SinkhornLayerMechanism

__all__ = ["SinkhornMechanism", "layer_settings"]


class SinkhornMechanism(SinkhornLayerMechanism):
    """Learned auction whose allocation is a Sinkhorn transport plan: bids ``(batch, agents, items)`` -> allocation
    ``(batch, agents, items)`` (item totals exact, agent totals within ``settings.tol``) and payments ``(batch,
    agents)``.  For captured training steps :meth:`allocate_and_pay` takes a solver on fixed iterations."""

    def __init__(self, n_agents: int, n_items: int, demand: str | Demand = "unit", k: KSpec = 1,
                 sinkhorn: SinkhornSettings = SinkhornSettings(), allocation_net: NetworkFactory = MLP(),
                 payment_net: NetworkFactory | None = MLP()) -> None:
        super().__init__(n_agents, n_items, demand, k, sinkhorn)
        self.allocation_net = allocation_net(n_agents * n_items, n_agents * n_items)
        if payment_net is None and type(self)._payment is SinkhornMechanism._payment:
            raise ValueError("payment_net is required (null is for mechanisms with their own payment rule, "
                             "e.g. mechanism=sinkhorn_potential)")
        self.payment_net = None if payment_net is None else PaymentHead(n_agents, n_items, payment_net)

    def _calibration_cost(self, bids: Tensor) -> Tensor:
        check_bids(bids, self.n_agents, self.n_items)
        return self._cost(bids)

    def _cost(self, bids: Tensor) -> Tensor:
        """Sinkhorn cost ``(batch, agents + 1, items + 1)``: the allocation scores as the demand pads them."""
        batch, n, m = bids.shape
        return self.demand.cost(self.allocation_net(bids.flatten(1)).view(batch, n, m))

    def allocate_and_pay(self, bids: Tensor, solver: Sinkhorn | None = None) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, items)`` and payment ``(batch, agents)`` for valid bids, the layer solved by
        ``solver`` (``None``: :attr:`solver`)."""
        check_dtype(bids, self.allocation_net)
        solver = self.solver if solver is None else solver
        cost = self._cost(bids)
        plan = self._solve(cost, solver)
        allocation = self.demand.fold(plan)
        return allocation, self._payment(bids, allocation, cost, plan, solver)

    def _payment(self, bids: Tensor, allocation: Tensor, cost: Tensor, plan: Tensor, solver: Sinkhorn) -> Tensor:
        """Payments ``(batch, agents)``: the payment network's sigmoid fraction of the allocated value (``cost``
        ``(batch, agents + 1, items + 1)``, ``plan`` and ``solver`` are for payment rules that need the layer)."""
        return self.payment_net(bids, allocation)

    def extra_repr(self) -> str:
        return f"agents={self.n_agents}, items={self.n_items}, demand={self.demand}, sinkhorn={self.settings}"


def layer_settings(mechanism: nn.Module) -> SinkhornSettings | None:
    """The Sinkhorn layer's settings of ``mechanism``; ``None`` for a mechanism without one."""
    settings = getattr(mechanism, "settings", None)
    return settings if isinstance(settings, SinkhornSettings) else None
