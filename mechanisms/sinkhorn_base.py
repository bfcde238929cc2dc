"""What every mechanism built on the Sinkhorn layer holds: its settings, solver and the demand's marginals.

:class:`SinkhornLayerMechanism` is the base of :class:`~mechanisms.sinkhorn_auction.SinkhornMechanism` and
:class:`~mechanisms.lottery_ama.LotteryAMA`; a subclass names the cost it solves (:meth:`_calibration_cost`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mechanisms.base import Mechanism
from mechanisms.demand import Demand, KSpec
from mechanisms.sinkhorn import Backend, Calibration, Sinkhorn, SinkhornSettings

__all__ = ["SinkhornLayerMechanism"]


class SinkhornLayerMechanism(Mechanism):
    """A mechanism with a Sinkhorn layer: :attr:`settings` (frozen), :attr:`solver`, the demand's marginals
    ``row_marginals`` ``(agents + 1,)`` and ``col_marginals`` ``(items + 1,)``, :meth:`set_sinkhorn` and
    :meth:`calibrate`.  After each solve ``last_iterations`` and ``last_marginal_error`` hold the iteration
    count and the final relative row-marginal error (NaN on fixed iterations)."""

    def __init__(self, n_agents: int, n_items: int, demand: str | Demand = "unit", k: KSpec = 1,
                 sinkhorn: SinkhornSettings = SinkhornSettings()) -> None:
        super().__init__(n_agents, n_items, demand, k)
        self.settings = sinkhorn
        a, b = self.demand.marginals(n_agents, n_items)
        self.register_buffer("row_marginals", a, persistent=False)  # (agents + 1,)
        self.register_buffer("col_marginals", b, persistent=False)  # (items + 1,)
        self.last_iterations, self.last_marginal_error = 0, math.nan

    @property
    def settings(self) -> SinkhornSettings:
        """The epsilon schedule, stopping rule, gradient mode, fixed iterations and backend (one frozen object)."""
        return self._settings

    @settings.setter
    def settings(self, settings: SinkhornSettings) -> None:
        if not isinstance(settings, SinkhornSettings):
            raise ValueError(f"sinkhorn must be a SinkhornSettings, got {type(settings).__name__}")
        self._settings, self.solver = settings, Sinkhorn.from_settings(settings)

    solver: Sinkhorn  # the solver of settings, kept in step with it

    def set_sinkhorn(self, eps_init: float | None = None, eps_final: float | None = None,
                     eps_steps: int | None = None, tol: float | None = None, max_iter: int | None = None) -> None:
        """Change the epsilon schedule and stopping rule (``None`` keeps a value); a change drops the fixed schedule."""
        self.settings = self.settings.replace(eps_init=eps_init, eps_final=eps_final, eps_steps=eps_steps, tol=tol,
                                              max_iter=max_iter)

    def calibrate(self, bids: Tensor, margin: float = 0.25, backend: Backend | None = None) -> Calibration:
        """Calibrate fixed iterations on the layer's costs for ``bids`` ``(batch, agents, items)``
        (:meth:`~mechanisms.sinkhorn.Sinkhorn.calibrate`; ``backend`` ``None``: the settings')."""
        settings = self.settings.replace(backend=backend).with_fixed_iterations(None)
        with torch.no_grad():
            cost = self._calibration_cost(bids)
            return Sinkhorn.from_settings(settings).calibrate(cost, self.row_marginals, self.col_marginals, margin)

    def _calibration_cost(self, bids: Tensor) -> Tensor:
        """The costs ``(problems, agents + 1, items + 1)`` the layer solves for ``bids``."""
        raise NotImplementedError

    def _solve(self, cost: Tensor, solver: Sinkhorn | None = None) -> Tensor:
        """The plan ``(problems, agents + 1, items + 1)`` of ``cost`` under the marginals, by ``solver``
        (``None``: :attr:`solver`); records ``last_iterations`` and ``last_marginal_error``."""
        result = (self.solver if solver is None else solver).solve(cost, self.row_marginals, self.col_marginals)
        self.last_iterations, self.last_marginal_error = result.iterations, result.marginal_error
        return result.plan
