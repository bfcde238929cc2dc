"""The LightningModule that trains a mechanism with the RegretNet augmented Lagrangian (section 4.5).

Each training step (docs/training.md) searches every agent's best misreport on a batch ``(batch, agents, items)``,
takes the Lagrangian of :mod:`lagrangian.loss`, one optimizer step and one of the learning-rate schedule.  ``lambda``
(buffer ``lagrange_multipliers``) and ``rho`` are saved in every checkpoint and changed by the callbacks of
:mod:`lagrangian`, which read the regret ``training_step`` returns under :data:`~lagrangian.base.REGRET_KEY`.  With a
mechanism of K stacked members (docs/ensembles.md, :mod:`training.members`) the module trains all K at once on one
shared batch folded to ``(batch * K, agents, items)``; K = 1 is the ordinary run.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn
from torchmetrics import MeanMetric

from adversary.regret import regret
from adversary.search import TEST_SEARCH, TRAIN_SEARCH, VAL_SEARCH, MisreportSearch, find_misreports
from datamodules.valuations import TrainBatch
from distributions import Uniform, ValuationDistribution
from lagrangian.base import REGRET_KEY, member_penalties
from lagrangian.loss import check_penalty_options
from mechanisms.ensemble import ensemble_size, fold_shared, unfold
from training import lr_schedule
from training.checkpoint_state import check_buffer, new_buffer, recall, remember, restore_state, rng_states, split_batch
from training.divergence import DivergenceWatch
from training.fast_step import FastStep, FastStepSettings
from training.members import (clip_member_gradients, initial_penalties, log_member_steps, log_member_validation,
                              member_losses, member_settings, test_outcome)
from training.metric_logging import add_custom_scalars, baseline_references_on, log_calibration, reference_revenues
from training.validation import measure_member, validation_generator, validation_metrics
from utils.checks import Bounds

__all__ = ["AuctionModule"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class AuctionModule(pl.LightningModule):  # a lagrangian.base.LagrangianState
    """Trains ``mechanism`` (bids ``(batch, agents, items)`` -> allocation, payment ``(batch, agents)``).

    ``optimizer``: ``model.optimizer``, a Hydra ``_partial_`` (default Adam); ``lr`` decays to ``lr_final`` on a
    cosine when given.  ``distribution``'s support bounds the misreports (buffers :attr:`low`/:attr:`high`,
    ``(agents, items)``) and it gives the reference revenues (default U[``low``, ``high``]).
    ``persistent_misreports`` warm-starts every training search from the profile's misreports of its last visit
    (it needs ``train_size``).  ``run_config`` is stored with the hyperparameters (TensorBoard's HParams tab,
    checkpoints).  After ``trainer.test``, :attr:`test_results` holds the evaluation's dict.  ``quadratic_penalty``
    and ``penalty_over_agents``: :func:`lagrangian.loss.lagrangian_loss`.  ``clip_grad_norm`` (``None``: none)
    rescales the gradient to at most that 2-norm before every optimizer step, eager and fast step alike (the
    Trainer's ``gradient_clip_val`` does not apply to manual optimization).
    """

    def __init__(self, mechanism: nn.Module, lr: float = 1e-3, lr_final: float | None = None,
                 optimizer: OptimizerFactory | None = None, lambda_init: float = 5.0, rho_init: float = 1.0,
                 train_search: MisreportSearch | None = None, val_search: MisreportSearch | None = None,
                 test_search: MisreportSearch | None = None, low: Bounds = 0.0, high: Bounds = 1.0,
                 test_batch_size: int | None = None, test_seed: int | Sequence[int] = 0,
                 fast: FastStepSettings | None = None, persistent_misreports: bool = False,
                 train_size: int | None = None, run_config: Mapping[str, Any] | None = None,
                 quadratic_penalty: str = "batch_mean", penalty_over_agents: str = "sum",
                 clip_grad_norm: float | None = None, distribution: ValuationDistribution | None = None,
                 member_configs: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__()
        self.members = size = ensemble_size(mechanism)
        rates, lambdas, rhos, self.test_seeds = member_settings(size, lr, lr_final, lambda_init, rho_init, test_seed)
        check_penalty_options(quadratic_penalty, penalty_over_agents)
        if clip_grad_norm is not None and not (math.isfinite(clip_grad_norm) and clip_grad_norm > 0):
            raise ValueError(f"clip_grad_norm must be a positive number or null, got {clip_grad_norm}")
        self.clip_grad_norm = clip_grad_norm
        self.quadratic_penalty, self.penalty_over_agents = quadratic_penalty, penalty_over_agents
        self.automatic_optimization = False
        self.save_hyperparameters(ignore=["mechanism", "optimizer", "train_search", "val_search", "test_search", "fast",
                                          "distribution"])
        self.mechanism = mechanism
        self.n_agents: int = mechanism.n_agents
        self.train_search, self.val_search = train_search or TRAIN_SEARCH, val_search or VAL_SEARCH
        self.test_search = test_search or TEST_SEARCH
        self.learning_rates = rates  # (lr, lr_final) of every member
        self.lr, self.lr_final = rates[0]
        self.optimizer_factory: OptimizerFactory = optimizer or functools.partial(torch.optim.Adam)
        self.test_batch_size, self.test_seed = test_batch_size, self.test_seeds[0]
        if distribution is None:
            distribution = Uniform(self.n_agents, mechanism.n_items, low, high)
        else:
            distribution.check_setting(self.n_agents, mechanism.n_items, "the mechanism")
        self.distribution = distribution
        self.register_buffer("low", distribution.support.low.float(), persistent=False)  # (agents, items)
        self.register_buffer("high", distribution.support.high.float(), persistent=False)
        multipliers, rho = initial_penalties(lambdas, rhos, self.n_agents)
        self.register_buffer("lagrange_multipliers", multipliers)  # (K, agents); K = 1: (agents,)
        self.register_buffer("rho", rho)  # (K,); K = 1: scalar
        self.persistent_misreports = bool(persistent_misreports)
        if self.persistent_misreports:  # (train_size, K, agents, items); K = 1: (train_size, agents, items)
            self.register_buffer("misreport_buffer", new_buffer(distribution, train_size, size))
        self.test_results: dict[str, Any] = {}
        self.references: dict[str, float] = {}
        self.fast = fast or FastStepSettings()
        self._fast_step: FastStep | None = None
        self._total_steps = 1  # optimizer steps of the run (several members' cosine decays)
        self._watch = DivergenceWatch()
        # per member: epoch aggregates (synchronized across processes), each bidder's allocated mass
        self.val_metrics = nn.ModuleList(validation_metrics() for _ in range(size))
        self.val_mass = nn.ModuleList(nn.ModuleList(MeanMetric() for _ in range(self.n_agents)) for _ in range(size))
        # The test batch goes to the first process only (see ValuationDataModule.test_dataloader).
        self.allow_zero_length_dataloader_with_multiple_devices = True

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig | torch.optim.Optimizer:
        """:func:`training.lr_schedule.optimizer_config` over the run's optimizer steps."""
        decays = any(final is not None for _, final in self.learning_rates)
        self._total_steps = int(self.trainer.estimated_stepping_batches) if decays else 1
        return lr_schedule.optimizer_config(self.optimizer_factory, self.mechanism.parameters(), self.learning_rates,
                                            self._total_steps)

    def setup(self, stage: str) -> None:
        """Compute the setting's reference revenues once (Monte Carlo VCG, fitted baselines: not at construction)."""
        if not self.references:
            self.references = reference_revenues(self.mechanism, self.distribution)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Accept checkpoints with or without a misreport buffer; restore the random states."""
        restore_state(checkpoint, self.misreport_buffer if self.persistent_misreports else None)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the random states, so that a resumed run draws what this one would (never diverged weights)."""
        self._check_finite()
        checkpoint["rng_states"] = rng_states()

    def on_fit_start(self) -> None:
        """Check the misreport buffer; build the fast step where it applies; lay out TensorBoard's Custom Scalars."""
        if self.members > 1 and self.trainer.world_size > 1:
            raise ValueError("an ensemble trains in one process: set trainer.devices=1 and trainer.num_nodes=1")
        if self.persistent_misreports:
            check_buffer(self.misreport_buffer, getattr(self.trainer, "datamodule", None))
        fast = self.fast.active(self.device, self.train_search)
        if fast and self.trainer.world_size > 1:
            rank_zero_warn("the fast training step is single-process: running the eager step on every process")
        elif fast:
            self._fast_step = FastStep(self.mechanism, self.train_search, self._loss, self.low, self.high, self.fast)
        self._watch = DivergenceWatch(next((c.dirpath for c in self.trainer.checkpoint_callbacks if c.dirpath), None))
        add_custom_scalars(self.logger, list(self.references))

    def on_train_start(self) -> None:
        """Put the learning-rate schedule on the global step (after a resume: the checkpoint's step)."""
        lr_schedule.align(self.lr_schedulers(), self.global_step, self.lr)  # one member: its scheduler

    def _regret(self, valuations: Tensor, search: MisreportSearch, generator: torch.Generator | None = None,
                indices: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Revenue ``(batch * K,)``, regret ``(batch * K, agents)`` at the best misreports ``search`` finds, and the
        truthful allocation ``(batch * K, agents, items)`` of valuations ``(batch, agents, items)`` (folded).  With
        ``indices`` (persistent misreports), the search also starts from, and writes back to, the buffer."""
        valuations = fold_shared(valuations, self.members)
        with torch.enable_grad():
            misreports = find_misreports(self.mechanism, valuations, search, self.low, self.high, generator,
                                         init=recall(self, indices))
        remember(self, indices, misreports)
        terms = regret(self.mechanism, valuations, misreports)
        return terms.payment.sum(-1), terms.regret, terms.allocation

    def member_losses(self, revenue: Tensor, regrets: Tensor) -> Tensor:
        """Every member's Lagrangian ``(K,)`` of folded revenue ``(batch * K,)`` and regrets ``(batch * K, agents)``."""
        multipliers, rho = member_penalties(self)
        return member_losses(revenue, regrets, multipliers, rho,
                             quadratic_penalty=self.quadratic_penalty, penalty_over_agents=self.penalty_over_agents)

    def _loss(self, revenue: Tensor, regrets: Tensor) -> Tensor:
        """The sum of the members' Lagrangians: member ``k``'s parameters get member ``k``'s gradient only."""
        return self.member_losses(revenue, regrets).sum()

    def training_step(self, batch: TrainBatch | Tensor, batch_idx: int) -> dict[str, Tensor]:
        """One augmented-Lagrangian step of every member on a :class:`TrainBatch` (or plain valuations
        ``(batch, agents, items)``).  Returns ``{"loss": sum, "member_losses": (K,), REGRET_KEY: (K, agents)}``
        (detached; a single run: ``REGRET_KEY`` ``(agents,)``) for the Lagrangian callbacks."""
        indices, valuations = split_batch(batch, self.persistent_misreports)
        optimizer = self.optimizers()
        try:
            if self._fast_step is not None:  # gradients computed by the (captured) fast step
                calibrated = self._fast_step.last_calibration
                outputs = self._fast_step(fold_shared(valuations, self.members), recall(self, indices))
                remember(self, indices, outputs.misreports)
                revenue, regrets = outputs.revenue, outputs.regrets
                if self._fast_step.last_calibration is not calibrated:
                    log_calibration(self, self._fast_step.last_calibration)
                losses = self.member_losses(revenue, regrets)
            else:
                revenue, regrets, _ = self._regret(valuations, self.train_search, indices=indices)
                losses = self.member_losses(revenue, regrets)
                optimizer.zero_grad()
                self.manual_backward(losses.sum())
        except ValueError:  # e.g. "bids contain NaN" from the search: first check whether training diverged
            self._check_finite()
            raise
        loss = losses.sum()
        self._watch.record(self.global_step, loss, (p.grad for p in self.mechanism.parameters()),
                           self.lagrange_multipliers, self.rho, self.mechanism.parameters())
        if self._fast_step is None or self.global_step % self.trainer.log_every_n_steps == 0:
            self._watch.check()  # the fast step: at logging steps only (one host synchronization)
        # on .grad, after the eager or the (captured) fast backward pass (None: no clipping)
        norms = clip_member_gradients(self.mechanism.parameters(), self.members, self.clip_grad_norm)
        rates = lr_schedule.optimizer_step(optimizer, self.lr_schedulers(), self.global_step, self._total_steps,
                                           self.learning_rates)  # this step's: the schedule's value
        losses = losses.detach()
        revenue, regrets = (unfold(x.detach(), self.members) for x in (revenue, regrets))
        log_member_steps(self, revenue, regrets, losses, rates, norms)
        regret = regrets.mean(0)
        return {"loss": loss.detach(), "member_losses": losses, REGRET_KEY: regret[0] if self.members == 1 else regret}

    def on_validation_start(self) -> None:
        """Stop a diverged run before validating it (:class:`training.divergence.DivergenceWatch`)."""
        self._check_finite()

    def _check_finite(self) -> None:
        """:class:`training.divergence.TrainingDiverged` if a training step or the current state was not finite."""
        self._watch.check()
        self._watch.check_state(self.global_step, self.mechanism.parameters(), self.lagrange_multipliers, self.rho)

    def validation_generator(self, step: int, batch_index: int, device: torch.device | str = "cpu") -> torch.Generator:
        """:func:`training.validation.validation_generator` seeded by ``test_seed`` (several members: one for the
        folded batch, so their starts differ from their single runs')."""
        return validation_generator(self.test_seed, step, batch_index, device)

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        """Every member's revenue, regret and each bidder's allocated mass on a validation batch (epoch aggregates)."""
        # This process holds batches rank, rank + world_size, ... of the validation set.
        index = batch_idx * self.trainer.world_size + self.trainer.global_rank
        generator = self.validation_generator(self.global_step, index, batch.device)
        measured = self._regret(batch, self.val_search, generator)
        log_member_validation(self, *(unfold(x, self.members) for x in measured))  # with the truthful allocation

    def on_validation_epoch_end(self) -> None:
        """Log the reference revenues and, as hp_metric, the members' mean validation revenue (at test: the test's)."""
        self.log_dict(self.references)
        if all(metrics["revenue"].update_called for metrics in self.val_metrics):  # this validation's (all processes)
            self.log("hp_metric", torch.stack([metrics["revenue"].compute() for metrics in self.val_metrics]).mean())

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        """Measure every member with the test protocol on the test set (one batch) into :attr:`test_results`."""
        if batch_idx:
            raise ValueError("the test loader must yield the whole test set as one batch")
        results = [measure_member(self, k, batch) for k in range(self.members)]
        self.references.update(baseline_references_on(self.mechanism, batch, self.distribution))  # same profiles
        self.test_results, revenue, logged = test_outcome(results)
        self.log_dict({**logged, **self.references}, batch_size=batch.shape[0])
        self.log("hp_metric", revenue, batch_size=batch.shape[0])  # docs/training.md: the test revenue
