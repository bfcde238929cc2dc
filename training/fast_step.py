"""The training step's gradient computation without host synchronization, replayed as a CUDA graph.

One training step (a misreport search, the regret at the misreports, the Lagrangian and its backward pass) is
launch-bound on a GPU (tens of thousands of small kernels, a host synchronization per Sinkhorn check), so
:class:`FastStep` runs it with the Sinkhorn layer on fixed iterations (:meth:`SinkhornMechanism.calibrate`,
re-calibrated every ``recalibrate_every`` steps outside the captured region, the schedule's marginal error checked
against ``tol`` each time), with the written-out optimizer of :func:`adversary.search.ascend`, the mechanism's
prepared calls (:func:`adversary.deviation.prepared`) and no input checks (calibration checks the batch when it
first sees it), and on CUDA captured once as a CUDA graph and replayed every step (recaptured when the schedule or
the batch shape changes).  It fills the parameters' ``.grad``; the caller then takes the optimizer step (eagerly,
so Lightning counts it).  The outputs are device tensors: reading them is the caller's only synchronization.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn

from adversary.deviation import prepared, trusted_forward
from adversary.regret import regret_terms
from adversary.search import MisreportSearch, ascend, step_scale, truthful_starts
from utils.checks import check_positive_int
from mechanisms.prepared import PreparedCall
from mechanisms.sinkhorn import Calibration, Sinkhorn, check_backend

__all__ = ["FastStep", "FastStepSettings", "StepOutputs", "reattach_grads"]


@dataclass(frozen=True)
class FastStepSettings:
    """How the training step runs (``model.fast``: the fields are described in conf/model/augmented_lagrangian.yaml)."""

    enabled: bool | str = "auto"
    cuda_graph: bool = True
    recalibrate_every: int = 500
    margin: float = 0.25
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.enabled not in (True, False, "auto"):
            raise ValueError(f"fast.enabled must be true, false or auto, got {self.enabled!r}")
        check_positive_int(self.recalibrate_every, "fast.recalibrate_every")
        if not (isinstance(self.margin, (int, float)) and self.margin >= 0):
            raise ValueError(f"fast.margin must be >= 0, got {self.margin!r}")
        check_backend(self.backend, "fast.backend")

    def active(self, device: torch.device, search: MisreportSearch) -> bool:
        """Whether the fast step runs on ``device`` for training search ``search`` ("auto": on CUDA, for a search
        from the truth only, the one the fast step runs)."""
        truth_only = not (search.restarts or search.shading)
        return self.enabled is True or (self.enabled == "auto" and device.type == "cuda" and truth_only)


class StepOutputs(NamedTuple):
    """Detached device tensors of one step: ``loss`` (scalar), ``revenue`` ``(batch,)``, ``regrets`` ``(batch,
    agents)`` and ``misreports`` ``(batch, agents, items)``."""

    loss: Tensor
    revenue: Tensor
    regrets: Tensor
    misreports: Tensor


def reattach_grads(grads: list[tuple[nn.Parameter, Tensor]]) -> int:
    """Make each captured gradient tensor its parameter's ``.grad`` again; returns how many had been detached.

    A CUDA graph writes the gradients into the tensors that were ``.grad`` at capture.  Anything that sets
    ``.grad`` to ``None`` in between (Lightning's ``on_validation_model_zero_grad`` before every validation
    during training, ``zero_grad(set_to_none=True)``) would leave the replays writing into tensors the optimizer
    no longer sees, and training would silently stop; the replay overwrites the tensors, so reattaching is exact.
    """
    detached = 0
    for parameter, grad in grads:
        if parameter.grad is not grad:
            parameter.grad = grad
            detached += 1
    return detached


class FastStep:
    """One step's loss and parameter gradients for ``mechanism``: ``loss_fn(revenue (batch,), regrets (batch,
    agents)) -> scalar`` (it reads lambda and rho, which may change in place between steps); ``low``/``high``
    ``(agents, 1)`` or ``(agents, items)`` bound the misreports."""

    def __init__(self, mechanism: nn.Module, search: MisreportSearch, loss_fn: Callable[[Tensor, Tensor], Tensor],
                 low: Tensor, high: Tensor, settings: FastStepSettings) -> None:
        if search.restarts or search.shading:
            raise ValueError("the fast training step searches from the truth only: set model.train_search.restarts=0 "
                             "and model.train_search.shading=[]")
        self.mechanism, self.search, self.loss_fn, self.settings = mechanism, search, loss_fn, settings
        self.low, self.high = low, high
        n = low.shape[0]
        self.scale = step_scale(low.view(1, n, 1, -1), high.view(1, n, 1, -1))  # steps relative to the domain's width
        self.calls = 0
        self.last_calibration: Calibration | None = None
        self._fixed_solver: Sinkhorn | None = None  # the Sinkhorn layer's solver on the calibrated iterations
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_key: tuple | None = None
        self._static_input: Tensor | None = None
        self._static_init: Tensor | None = None
        self._static_outputs: StepOutputs | None = None
        self._static_grads: list[tuple[nn.Parameter, Tensor]] = []  # the graph's .grad tensors, by parameter

    def _compute(self, valuations: Tensor, init: Tensor | None) -> StepOutputs:
        """Search, regret, loss, backward: no host synchronization."""
        n = valuations.shape[1]
        low, high = self.low.view(1, n, 1, -1), self.high.view(1, n, 1, -1)
        starts = truthful_starts(valuations, init, low, high)
        with torch.no_grad():  # the search's prepared call: no parameter gradient
            search_call = self._prepared(valuations)
        misreports = ascend(search_call, starts, self.search, low, high, self.scale).transpose(0, 1)
        terms = regret_terms(self._prepared(valuations), misreports)
        revenue = terms.payment.sum(-1)
        loss = self.loss_fn(revenue, terms.regret)
        loss.backward()
        return StepOutputs(loss.detach(), revenue.detach(), terms.regret.detach(), misreports.detach())

    def _calibrate(self, valuations: Tensor) -> None:
        calibrate = getattr(self.mechanism, "calibrate", None)
        if calibrate is None:  # no Sinkhorn layer
            return
        # The search explores the whole domain: calibrate on the batch and as many uniform profiles.
        lo, hi = self.low.unsqueeze(0), self.high.unsqueeze(0)
        spread = lo + (hi - lo) * torch.rand_like(valuations)
        backend = self.settings.backend
        self.last_calibration = calibrate(torch.cat([valuations, spread]), margin=self.settings.margin, backend=backend)
        fixed = self.mechanism.settings.replace(backend=backend).with_fixed_iterations(self.last_calibration.iterations)
        self._fixed_solver = Sinkhorn.from_settings(fixed)

    def _prepared(self, valuations: Tensor) -> PreparedCall:
        """The mechanism bound to ``valuations``, unchecked, its Sinkhorn layer (if any) on the calibrated schedule."""
        forward = (trusted_forward(self.mechanism) if self._fixed_solver is None
                   else functools.partial(self.mechanism.allocate_and_pay, solver=self._fixed_solver))
        return prepared(self.mechanism, valuations, forward, self._fixed_solver)

    def _uncaptured(self, valuations: Tensor, init: Tensor | None) -> StepOutputs:
        """The same step run eagerly (fresh ``.grad``), on the calibrated fixed schedule."""
        self._clear_grads()
        return self._compute(valuations, init)

    def _clear_grads(self) -> None:
        for p in self.mechanism.parameters():
            if p.requires_grad:
                p.grad = None

    def _capture(self, valuations: Tensor, init: Tensor | None) -> None:
        """Warm up on a side stream, then record ``_compute`` on static inputs (parameters untouched)."""
        self._graph = None
        torch.cuda.synchronize()
        self._static_input = valuations.clone()
        self._static_init = None if init is None else init.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # compiles the Triton kernel, warms cuBLAS; only .grad changes
                self._clear_grads()
                self._compute(self._static_input, self._static_init)
        torch.cuda.current_stream().wait_stream(side)
        self._clear_grads()  # the graph allocates .grad from its pool; replays overwrite it
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._static_outputs = self._compute(self._static_input, self._static_init)
        self._static_grads = [(p, p.grad) for p in self.mechanism.parameters() if p.grad is not None]
        self._graph = graph

    def __call__(self, valuations: Tensor, init: Tensor | None = None) -> StepOutputs:
        """Loss and gradients (in ``.grad``) of one step on ``valuations`` ``(batch, agents, items)``; ``init``
        ``(batch, agents, items)``: an extra start of the search beside the truth (a warm start)."""
        if self.calls % self.settings.recalibrate_every == 0:
            self._calibrate(valuations)
        self.calls += 1
        if not (self.settings.cuda_graph and valuations.is_cuda):
            return self._uncaptured(valuations, init)
        schedule = None if self.last_calibration is None else self.last_calibration.iterations
        key = (tuple(valuations.shape), schedule, init is None)
        if self._graph is None or key != self._graph_key:
            try:
                self._capture(valuations, init)
            except RuntimeError as error:  # e.g. an op that cannot be captured on this CUDA/torch version
                warnings.warn(f"CUDA graph capture failed, running the fast step without graphs: {error}")
                self.settings = replace(self.settings, cuda_graph=False)
                return self._uncaptured(valuations, init)
            self._graph_key = key
        self._static_input.copy_(valuations)
        if init is not None:
            self._static_init.copy_(init)
        reattach_grads(self._static_grads)
        self._graph.replay()
        return self._static_outputs
