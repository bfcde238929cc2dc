"""The LightningModule that trains a mechanism with the RegretNet augmented Lagrangian (section 4.5).

Each training step, for a batch of valuations ``(batch, agents, items)``:

1. the misreport engine searches every agent's best misreport (the paper: 25
   Adam steps, lr 0.1), detached;
2. ``rgt_i`` is agent ``i``'s batch-mean regret ``(agents,)`` at those
   misreports, differentiable w.r.t. the mechanism's parameters;
3. ``loss = -mean revenue + sum_i lambda_i rgt_i + rho / 2 * sum_i rgt_i^2``
   (the paper's Eq. 1; the original code's penalty forms are options, see
   :mod:`training.lagrangian`);
4. one optimizer step (Adam, lr 1e-3) on the mechanism (allocation and
   payment networks together).

The module is a :class:`training.lagrangian.LagrangianState`: ``lambda``
(buffer ``lagrange_multipliers``, ``(agents,)``) and ``rho`` (buffer ``rho``)
are saved in every checkpoint; the schedules that change them
(:class:`~training.lagrangian.RhoStaircase`,
:class:`~training.lagrangian.LagrangeRule`) run as the callbacks
:class:`callbacks.RhoSchedule` and :class:`callbacks.LagrangeUpdate`, which
read the regret that ``training_step`` returns under
:data:`~training.lagrangian.REGRET_KEY`.  Validation measures revenue and regret
with a stronger misreport search; test runs the evaluation engine.

Distributed training (DDP): every process validates its share of the
validation batches; the epoch metrics are torchmetrics aggregates (mean over
all validation profiles, max) synchronized across processes, so they equal
the metrics of the whole validation set computed in one process.  The random
starts of the validation search come from a generator seeded by the run seed,
the global step and the batch's index in the whole validation set: validation
is reproducible, independent of the number of processes and of a resume.
The test runs once, in the first process (the data module gives the others
no test batch).  Checkpoints also hold the random states (torch, CUDA,
NumPy, Python), restored on resume.

With ``persistent_misreports``, the module keeps every training profile's
best misreport per agent (buffer ``misreport_buffer``, ``(train_size, agents,
items)``, on the training device and in every checkpoint) and starts the next
search on that profile from it as well as from the truth, as the original
RegretNet code does (it caches one misreport per training profile and
writes the searched one back after every batch).  The training loader must
then yield :class:`datamodules.TrainBatch` ``(indices, valuations)``.

Regret is reported in two conventions: ``regret_mean_over_agents`` (the mean
of the agents' expected regrets, RegretNet's convention) and
``regret_sum_over_agents`` (their sum, the convention of the paper's tables).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric

from datamodules.valuations import TrainBatch, _derive_seed, value_bounds
from mechanisms.checks import Bounds, is_int
from adversary.regret import measure as evaluate, regret  # alias until the split of this module lands
from adversary.search import TEST_SEARCH, TRAIN_SEARCH, VAL_SEARCH, MisreportSearch, find_misreports
from mechanisms.references import references
from mechanisms.sinkhorn_fixed import Calibration
from training.fast_step import FastStep, FastStepSettings
from training.random_state import rng_states, set_rng_states
from training.lagrangian import REGRET_KEY, check_penalty_options, lagrangian_loss

__all__ = ["AuctionModule"]


class AuctionModule(pl.LightningModule):  # a training.lagrangian.LagrangianState
    """Trains ``mechanism`` (bids ``(batch, agents, items)`` -> allocation, payment ``(batch, agents)``).

    ``low``/``high`` bound the misreports (one float, or one per agent), as
    the valuations' support.  ``persistent_misreports`` warm-starts every
    training search from the profile's misreports of its last visit (see the
    module docstring); it needs ``train_size``, the number of training
    profiles (the buffer starts uniform on ``[low, high]``, like RegretNet's).  ``run_config`` (optional, e.g. the whole resolved run
    configuration) is stored with the hyperparameters so that it shows in
    TensorBoard's HParams tab and travels with checkpoints.  After
    ``trainer.test``, :attr:`test_results` holds the evaluation's dict.
    ``quadratic_penalty`` and ``penalty_over_agents`` choose the penalty
    convention of :func:`training.lagrangian.lagrangian_loss` (defaults: the
    paper's Eq. 1; ``"per_sample"`` and ``"mean"``: the original code).
    """

    def __init__(
        self,
        mechanism: nn.Module,
        lr: float = 1e-3,
        lr_final: float | None = None,
        lambda_init: float = 5.0,
        rho_init: float = 1.0,
        train_search: MisreportSearch | None = None,
        val_search: MisreportSearch | None = None,
        test_search: MisreportSearch | None = None,
        low: Bounds = 0.0,
        high: Bounds = 1.0,
        test_batch_size: int | None = None,
        test_seed: int = 0,
        fast: FastStepSettings | None = None,
        persistent_misreports: bool = False,
        train_size: int | None = None,
        run_config: Mapping[str, Any] | None = None,
        quadratic_penalty: str = "batch_mean",
        penalty_over_agents: str = "sum",
    ) -> None:
        super().__init__()
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rate must be positive, got {lr}")
        if lr_final is not None and not (math.isfinite(lr_final) and 0 < lr_final <= lr):
            raise ValueError(f"lr_final must be in (0, lr={lr}], got {lr_final}")
        if not (math.isfinite(lambda_init) and math.isfinite(rho_init) and rho_init >= 0):
            raise ValueError(f"need finite lambda_init and rho_init >= 0, got {lambda_init}, {rho_init}")
        check_penalty_options(quadratic_penalty, penalty_over_agents)
        self.quadratic_penalty, self.penalty_over_agents = quadratic_penalty, penalty_over_agents
        self.automatic_optimization = False
        self.save_hyperparameters(ignore=["mechanism", "train_search", "val_search", "test_search", "fast"])
        self.mechanism = mechanism
        self.n_agents: int = mechanism.n_agents
        self.train_search = train_search or TRAIN_SEARCH
        self.val_search = val_search or VAL_SEARCH
        self.test_search = test_search or TEST_SEARCH
        self.lr, self.lr_final = lr, lr_final
        self.test_batch_size, self.test_seed = test_batch_size, test_seed
        low_t, high_t = value_bounds(low, high, self.n_agents)  # (agents, 1) each
        self.register_buffer("low", low_t, persistent=False)
        self.register_buffer("high", high_t, persistent=False)
        self.register_buffer("lagrange_multipliers", torch.full((self.n_agents,), float(lambda_init)))
        self.register_buffer("rho", torch.tensor(float(rho_init)))
        self.persistent_misreports = bool(persistent_misreports)
        if self.persistent_misreports:
            if not is_int(train_size):
                raise ValueError(f"persistent_misreports needs train_size, a positive integer, got {train_size!r}")
            start = torch.rand(train_size, self.n_agents, mechanism.n_items)
            self.register_buffer("misreport_buffer", low_t + (high_t - low_t) * start)
        self.test_results: dict[str, Any] = {}
        self.references: dict[str, float] = {}
        self.fast = fast or FastStepSettings()
        self._fast_step: FastStep | None = None
        # Validation epoch aggregates, synchronized across processes; keys are logged as val/<key>.
        self.val_metrics = nn.ModuleDict(
            {
                "revenue": MeanMetric(),
                "regret_mean_over_agents": MeanMetric(),
                "regret_sum_over_agents": MeanMetric(),
                "regret_max": MaxMetric(),  # the largest regret of any agent on any validation profile
            }
        )
        # The test batch goes to the first process only (see ValuationDataModule.test_dataloader).
        self.allow_zero_length_dataloader_with_multiple_devices = True

    # ------------------------------------------------------------------ setup
    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam on all mechanism parameters."""
        return torch.optim.Adam(self.mechanism.parameters(), lr=self.lr)

    def learning_rate(self, step: int) -> float:
        """Learning rate at optimizer step ``step``: constant ``lr``, or a cosine decay to ``lr_final``.

        A pure function of the step (resume-safe); the decay spans ``trainer.estimated_stepping_batches``.
        """
        if self.lr_final is None:
            return self.lr
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        progress = min(step / total, 1.0)
        return self.lr_final + (self.lr - self.lr_final) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _references(self) -> dict[str, float]:
        """Optimal (where known) and VCG revenue of the setting; empty where they do not apply."""
        if not (bool((self.low == self.low[0]).all()) and bool((self.high == self.high[0]).all())):
            return {}  # agents are not identically distributed
        demand = self.mechanism.demand
        low, high = float(self.low[0]), float(self.high[0])
        found = references(demand.name, demand.k, self.n_agents, self.mechanism.n_items, low, high)
        refs = {"reference/vcg_revenue": found.vcg}
        if found.optimal is not None:
            refs["reference/optimal_revenue"] = found.optimal
        return refs

    def setup(self, stage: str) -> None:
        """Compute the setting's reference revenues once (a Monte Carlo VCG estimate: not at construction)."""
        if not self.references:
            self.references = self._references()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Let runs with and without persistent misreports read each other's checkpoints; restore random states.

        A checkpoint without the buffer leaves the current one (the search then warm-starts
        from it); a buffer in the checkpoint of a run that does not keep one is ignored.  Also
        restores the random states of :meth:`on_save_checkpoint` (checkpoints without them are accepted).
        """
        state = checkpoint.get("state_dict", {})
        if self.persistent_misreports:
            state.setdefault("misreport_buffer", self.misreport_buffer)
        else:
            state.pop("misreport_buffer", None)
        states = checkpoint.get("rng_states")
        if states is not None:
            set_rng_states(states)

    def on_fit_start(self) -> None:
        """Check the misreport buffer against the training set; build the fast step where it applies;
        lay out TensorBoard's Custom Scalars tab."""
        datamodule = getattr(self.trainer, "datamodule", None)
        sizes = getattr(datamodule, "sizes", None)
        if self.persistent_misreports and isinstance(sizes, dict) and sizes.get("train") != len(self.misreport_buffer):
            raise ValueError(
                f"the misreport buffer holds {len(self.misreport_buffer)} profiles but the training set "
                f"{sizes.get('train')}: set model.train_size to data.train_size"
            )
        if self.fast.active(self.device) and self.trainer.world_size > 1:
            rank_zero_warn("the fast training step is single-process: running the eager step on every process")
        elif self.fast.active(self.device):
            self._fast_step = FastStep(
                self.mechanism,
                self.train_search,
                self._loss,
                self.low,
                self.high,
                self.fast,
            )
        if isinstance(self.logger, TensorBoardLogger):
            self.logger.experiment.add_custom_scalars(
                {
                    "auction": {
                        "revenue": ["Multiline", ["train/revenue", "val/revenue", *self.references]],
                        "regret (mean over agents)": ["Multiline", [r"(train|val)/regret_mean_over_agents"]],
                        "regret (sum over agents)": ["Multiline", [r"(train|val)/regret_sum_over_agents"]],
                        "lagrangian": ["Multiline", [r"lagrangian/.*"]],
                    }
                }
            )

    # ----------------------------------------------------------------- shared
    def _regret(
        self,
        valuations: Tensor,
        search: MisreportSearch,
        generator: torch.Generator | None = None,
        indices: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Revenue ``(batch,)`` and regret ``(batch, agents)`` at the best misreports ``search`` finds.

        With ``indices`` (training profiles' positions) and persistent misreports, the search also
        starts from the buffer's misreports of these profiles, and its result is written back.
        """
        with torch.enable_grad():
            misreports = find_misreports(
                self.mechanism, valuations, search, self.low, self.high, generator, init=self._recalled(indices)
            )
        if indices is not None:
            self._remember(indices, misreports)
        terms = regret(self.mechanism, valuations, misreports)
        return terms.payment.sum(-1), terms.regret

    def _recalled(self, indices: Tensor | None) -> Tensor | None:
        """The buffer's misreports ``(batch, agents, items)`` of training profiles ``indices`` (a warm start)."""
        return None if indices is None else self.misreport_buffer[indices]

    def _remember(self, indices: Tensor, misreports: Tensor) -> None:
        """Write the misreports ``(batch, agents, items)`` of training profiles ``indices`` into the buffer,
        every process's batch on every process (so the buffers stay identical under DDP)."""
        if self.trainer is not None and self.trainer.world_size > 1:
            indices = self.all_gather(indices).reshape(-1)
            misreports = self.all_gather(misreports).reshape(-1, *misreports.shape[1:])
        self.misreport_buffer[indices] = misreports

    def _log_regret(self, stage: str, revenue: Tensor, regrets: Tensor, **kwargs: Any) -> None:
        per_agent = regrets.mean(0)
        self.log(f"{stage}/revenue", revenue.mean(), **kwargs)
        self.log(f"{stage}/regret_mean_over_agents", per_agent.mean(), **kwargs)
        self.log(f"{stage}/regret_sum_over_agents", per_agent.sum(), **kwargs)

    def _log_sinkhorn(self) -> None:
        iterations = getattr(self.mechanism, "last_iterations", None)
        if iterations is not None:
            self.log("sinkhorn/iterations", float(iterations))
        error = getattr(self.mechanism, "last_marginal_error", None)
        if error is not None:
            self.log("sinkhorn/marginal_error", float(error))

    def _loss(self, revenue: Tensor, regrets: Tensor) -> Tensor:
        """The configured augmented-Lagrangian loss of revenue ``(batch,)`` and regrets ``(batch, agents)``."""
        return lagrangian_loss(
            revenue,
            regrets,
            self.lagrange_multipliers,
            self.rho,
            quadratic_penalty=self.quadratic_penalty,
            penalty_over_agents=self.penalty_over_agents,
        )

    def _log_calibration(self, calibration: Calibration) -> None:
        """The fixed Sinkhorn schedule's size and its marginal error on the calibration profiles."""
        self.log("sinkhorn/calibrated_iterations", float(sum(calibration.iterations)))
        self.log("sinkhorn/calibrated_marginal_error", calibration.marginal_error)
        if calibration.marginal_error > self.mechanism.tol:
            rank_zero_warn(
                f"fixed Sinkhorn schedule misses tol={self.mechanism.tol:g} (error {calibration.marginal_error:.3g}) "
                f"at max_iter={self.mechanism.max_iter}"
            )

    # --------------------------------------------------------------- training
    def training_step(self, batch: TrainBatch | Tensor, batch_idx: int) -> dict[str, Tensor]:
        """One augmented-Lagrangian step on a :class:`TrainBatch` (or plain valuations ``(batch, agents, items)``).

        Returns ``{"loss": scalar, REGRET_KEY: (agents,)}`` (detached) for the Lagrangian callbacks.
        """
        indices, valuations = batch if isinstance(batch, tuple) else (None, batch)
        if self.persistent_misreports and indices is None:
            raise ValueError("persistent_misreports needs training batches (indices, valuations), e.g. TrainBatch")
        indices = indices if self.persistent_misreports else None
        optimizer = self.optimizers()
        for group in optimizer.param_groups:
            group["lr"] = self.learning_rate(self.global_step)
        if self._fast_step is not None:  # gradients computed by the (captured) fast step
            calibrated = self._fast_step.last_calibration
            outputs = self._fast_step(valuations, self._recalled(indices))
            if indices is not None:
                self._remember(indices, outputs.misreports)
            revenue, regrets, loss = outputs.revenue, outputs.regrets, outputs.loss
            if self._fast_step.last_calibration is not calibrated:
                self._log_calibration(self._fast_step.last_calibration)
        else:
            revenue, regrets = self._regret(valuations, self.train_search, indices=indices)
            loss = self._loss(revenue, regrets)
            optimizer.zero_grad()
            self.manual_backward(loss)
        optimizer.step()
        rgt = regrets.mean(0)

        self._log_regret("train", revenue.detach(), regrets.detach(), prog_bar=True)
        self.log("train/loss", loss.detach())
        self.log("train/lr", optimizer.param_groups[0]["lr"])
        self.log("lagrangian/rho", self.rho)
        for agent, value in enumerate(self.lagrange_multipliers):
            self.log(f"lagrangian/lambda_{agent}", value)
        self._log_sinkhorn()
        return {"loss": loss.detach(), REGRET_KEY: rgt.detach()}

    # ------------------------------------------------------------- validation
    def validation_generator(self, step: int, batch_index: int, device: torch.device | str = "cpu") -> torch.Generator:
        """The generator of the random validation starts at global step ``step`` for batch ``batch_index``
        of the whole validation set.

        Seeded by ``(test_seed, step, batch_index)`` only: the same in every process and after a resume.
        """
        seed = _derive_seed(self.test_seed, _VALIDATION_STREAM, step, batch_index)
        return torch.Generator(device=device).manual_seed(seed)

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        """Revenue and regret on validation valuations ``(batch, agents, items)`` (epoch means and max)."""
        # This process holds batches rank, rank + world_size, ... of the validation set.
        index = batch_idx * self.trainer.world_size + self.trainer.global_rank
        revenue, regrets = self._regret(batch, self.val_search, self.validation_generator(self.global_step, index, batch.device))
        values = {
            "revenue": revenue,
            "regret_mean_over_agents": regrets.mean(-1),
            "regret_sum_over_agents": regrets.sum(-1),
            "regret_max": regrets.amax(-1),
        }
        for name, value in values.items():
            metric = self.val_metrics[name]
            metric.update(value.detach())
            self.log(f"val/{name}", metric, on_step=False, on_epoch=True, prog_bar=name != "regret_max")

    def on_validation_epoch_end(self) -> None:
        """Log the reference revenues next to the validation curves, and validation revenue as hp_metric.

        (At test, hp_metric becomes the test revenue.)
        """
        for name, value in self.references.items():
            self.log(name, value)
        if self.val_metrics["revenue"].update_called:  # this validation's revenue (all processes)
            self.log("hp_metric", self.val_metrics["revenue"].compute())

    # ------------------------------------------------------------------- test
    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        """Evaluate with the test protocol on test valuations ``(batch, agents, items)`` (one batch: the test set)."""
        if batch_idx:
            raise ValueError("the test loader must yield the whole test set as one batch")
        generator = torch.Generator(device=batch.device).manual_seed(self.test_seed)
        with torch.enable_grad():
            evaluation = evaluate(
                self.mechanism,
                batch,
                self.test_search,
                low=self.low,
                high=self.high,
                batch_size=self.test_batch_size or batch.shape[0],
                generator=generator,
                progress=self.trainer.progress_bar_callback is not None,
            )
        self.test_results = evaluation.to_dict()
        for name, value in {**_flatten(self.test_results, "test/"), **self.references}.items():
            self.log(name, value, batch_size=batch.shape[0])
        self.log("hp_metric", self.test_results["revenue_mean"], batch_size=batch.shape[0])  # README: the test revenue

    # ------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the random states (torch, CUDA, NumPy, Python) so that a resumed run draws what this one would."""
        checkpoint["rng_states"] = rng_states()


_VALIDATION_STREAM = 4  # datamodules.valuations uses streams 0-3


def _flatten(results: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The numbers of a flat results dict as ``prefix + key``, lists expanded as ``key_<index>``."""
    flat: dict[str, float] = {}
    for key, value in results.items():
        if isinstance(value, (list, tuple)):
            flat.update({f"{prefix}{key}_{i}": float(v) for i, v in enumerate(value)})
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat
