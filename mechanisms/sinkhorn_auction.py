"""The Sinkhorn auction network (section 4.3 of the paper).

An allocation MLP maps the flattened bids to an agents x items score matrix,
which is padded with a zero-cost dummy agent row and dummy item column and used
as the cost of the Sinkhorn layer with the demand's marginals; the dummy row and
column of the plan are cut off.  Payments come from the shared
:class:`~mechanisms.networks.PaymentHead`.  The architecture is the same for
every demand type: only the marginals change.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mechanisms.base import Mechanism, check_bids
from mechanisms.demand import Demand, KSpec
from mechanisms.networks import PaymentHead, check_dtype, mlp
from mechanisms.sinkhorn import solve
from mechanisms.sinkhorn_fixed import Calibration, calibrate, fixed_plan
from mechanisms.sinkhorn_settings import GradMode, SinkhornSettings

__all__ = ["SinkhornMechanism"]


class SinkhornMechanism(Mechanism):
    """Learned auction whose allocation is a Sinkhorn transport plan.

    ``forward(bids)`` maps bids ``(batch, agents, items)`` to an allocation
    ``(batch, agents, items)`` and payments ``(batch, agents)``.  Item totals are
    exact; agent totals match their capacity up to the relative tolerance
    ``tol`` (the Sinkhorn stopping rule).

    The layer's settings are one frozen
    :class:`~mechanisms.sinkhorn_settings.SinkhornSettings`, :attr:`settings`
    (``epsilons``, ``tol``, ``max_iter``, ``grad``, ``fixed_iterations`` and
    ``backend`` read from it); assign a new one, or change the schedule with
    :meth:`set_sinkhorn`.  After each forward pass ``last_iterations`` and
    ``last_marginal_error`` hold the Sinkhorn iteration count and the final
    relative row-marginal error (NaN on a fixed schedule).

    On a fixed schedule (``settings.with_fixed_iterations(...)``; :meth:`calibrate`
    finds the counts from the tolerance rule) the layer runs the fixed-schedule
    solver (:mod:`mechanisms.sinkhorn_fixed`): no checks and no host
    synchronization, for captured training steps.
    """

    def __init__(
        self,
        n_agents: int,
        n_items: int,
        demand: str | Demand = "unit",
        k: KSpec = 1,
        hidden: Sequence[int] = (128, 128),
        activation: str = "tanh",
        eps_init: float = SinkhornSettings.eps_init,  # the defaults: SinkhornSettings' (the paper's)
        eps_final: float = SinkhornSettings.eps_final,
        eps_steps: int = SinkhornSettings.eps_steps,
        tol: float = SinkhornSettings.tol,
        max_iter: int = SinkhornSettings.max_iter,
        grad: GradMode = SinkhornSettings.grad,
    ) -> None:
        super().__init__(n_agents, n_items, demand, k)
        self.settings = SinkhornSettings(eps_init, eps_final, eps_steps, tol, max_iter, grad)
        self.allocation_net = mlp(n_agents * n_items, n_agents * n_items, hidden, activation)
        self.payment_net = PaymentHead(n_agents, n_items, hidden, activation)
        a, b = self.demand.marginals(n_agents, n_items)
        self.register_buffer("row_marginals", a, persistent=False)  # (agents + 1,)
        self.register_buffer("col_marginals", b, persistent=False)  # (items + 1,)
        self.last_iterations = 0
        self.last_marginal_error = math.nan

    settings: SinkhornSettings
    """The epsilon schedule, stopping rule, gradient mode and fixed schedule (one frozen object)."""

    epsilons = property(lambda self: self.settings.epsilons, doc="The epsilon schedule, first to last.")
    tol = property(lambda self: self.settings.tol, doc="Stopping threshold on the max relative row-marginal error.")
    max_iter = property(lambda self: self.settings.max_iter, doc="Sinkhorn update cap per epsilon.")
    grad = property(lambda self: self.settings.grad, doc="Backward pass: implicit or unroll.")
    fixed_iterations = property(
        lambda self: self.settings.fixed_iterations, doc="Updates per epsilon on the fixed schedule; None: the tolerance rule."
    )
    backend = property(lambda self: self.settings.backend, doc="The fixed schedule's solver: auto, torch or triton.")

    def set_sinkhorn(
        self,
        eps_init: float | None = None,
        eps_final: float | None = None,
        eps_steps: int | None = None,
        tol: float | None = None,
        max_iter: int | None = None,
    ) -> None:
        """Change the geometric epsilon schedule and stopping rule; ``None`` keeps the current value.

        A change drops the fixed schedule (it was calibrated on the old rule).
        """
        self.settings = self.settings.replace(
            eps_init=eps_init, eps_final=eps_final, eps_steps=eps_steps, tol=tol, max_iter=max_iter
        )

    def calibrate(self, bids: Tensor, margin: float = 0.25) -> Calibration:
        """Calibrate a fixed schedule on ``bids`` ``(batch, agents, items)``.

        The tolerance solver's per-epsilon counts on these bids' costs, plus
        ``margin``, are the result's ``iterations`` (use them with
        ``mechanism.settings = mechanism.settings.with_fixed_iterations(result.iterations)``); the result also reports
        the fixed schedule's marginal error on them (<= ``tol`` unless
        ``max_iter`` was reached).  Host synchronizations: call it outside
        captured regions.
        """
        check_bids(bids, self.n_agents, self.n_items)
        with torch.no_grad():
            cost = self._cost(bids)
            result = calibrate(
                cost,
                self.row_marginals,
                self.col_marginals,
                epsilons=self.epsilons,
                tol=self.tol,
                max_iter=self.max_iter,
                margin=margin,
                backend=self.backend,
            )
        return result

    def _cost(self, bids: Tensor) -> Tensor:
        """Sinkhorn cost ``(batch, agents + 1, items + 1)``: the allocation scores, zero dummy row and column."""
        batch, n, m = bids.shape
        scores = self.allocation_net(bids.flatten(1)).view(batch, n, m)
        return F.pad(scores, (0, 1, 0, 1))

    def allocate_and_pay(self, bids: Tensor) -> tuple[Tensor, Tensor]:
        """Allocation ``(batch, agents, items)`` and payment ``(batch, agents)`` for valid bids."""
        check_dtype(bids, self.allocation_net)
        _, n, m = bids.shape
        cost = self._cost(bids)
        problem = (cost, self.row_marginals, self.col_marginals)  # the transport problem: cost and marginals
        if self.fixed_iterations is not None:
            plan = fixed_plan(
                *problem, epsilons=self.epsilons, iterations=self.fixed_iterations, grad=self.grad, backend=self.backend
            )
            self.last_iterations, self.last_marginal_error = sum(self.fixed_iterations), math.nan
        else:
            result = solve(*problem, epsilons=self.epsilons, tol=self.tol, max_iter=self.max_iter, grad=self.grad)
            plan, self.last_iterations, self.last_marginal_error = result.plan, result.iterations, result.marginal_error
        allocation = plan[:, :n, :m]
        return allocation, self.payment_net(bids, allocation)

    def extra_repr(self) -> str:
        return (
            f"agents={self.n_agents}, items={self.n_items}, demand={self.demand}, "
            f"epsilons={self.epsilons[0]:g}->{self.epsilons[-1]:g} ({len(self.epsilons)} steps), "
            f"tol={self.tol:g}, max_iter={self.max_iter}, grad={self.grad!r}"
            + ("" if self.fixed_iterations is None else f", fixed_iterations={self.fixed_iterations}")
        )
