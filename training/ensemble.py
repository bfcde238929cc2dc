"""The LightningModule that trains K mechanisms as one batched model: an ensemble (docs/ensembles.md).

:class:`EnsembleModule` is assembled from K ordinary :class:`training.AuctionModule`
members (each built from its own configuration and seed, so member ``k`` starts
exactly where the single run of seed ``k`` starts) and trains them as one:

* the mechanism is :func:`mechanisms.ensemble.stack_members` of the members'
  mechanisms; a batch of valuations ``(batch, agents, items)`` is shared by
  every member (the same data order) and folded to ``(batch * K, agents, items)``,
  member innermost, so the misreport search, the regret and the fast step run
  on it unchanged;
* ``rho`` ``(K,)``, ``lagrange_multipliers`` ``(K, agents)`` and, with persistent
  misreports, ``misreport_buffer`` ``(train_size, K, agents, items)`` carry the
  member dimension; the schedules are :mod:`callbacks.ensemble`;
* the loss is the sum of the members' Lagrangians (:func:`training.lagrangian.lagrangian_loss`
  of each member, vectorized), so each member's gradient is its own;
* one :class:`training.member_adam.MemberAdam` steps all members, with each
  member's learning rate (and cosine schedule, :func:`training.lr_schedule.cosine_lr`);
* validation logs ``member_<k>/val/...``; the test measures every member
  with the test protocol and its own test seed, as its single run would.

Settings every member must share (refused otherwise, in one line): the searches,
the value range, the penalty forms, persistent misreports, the fast step and the
optimizer (Adam; betas and eps).  Training is single-process.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Sequence

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from adversary.regret import measure, regret
from adversary.search import find_misreports
from datamodules.valuations import TrainBatch
from mechanisms.ensemble import fold, member_mechanism, stack_members, unfold
from training.checkpoint_state import restore_state, save_state
from training.fast_step import FastStep
from training.lagrangian import REGRET_KEY, lagrangian_loss
from training.lr_schedule import cosine_lr
from training.member_adam import MemberAdam
from training.metric_logging import flatten, log_calibration, log_training, reference_revenues
from training.module import AuctionModule
from training.validation import log_validation, validation_generator, validation_metrics

__all__ = ["EnsembleModule", "ensemble_summary", "member_lagrangian"]

SHARED = ("train_search", "val_search", "test_search", "quadratic_penalty", "penalty_over_agents",
          "persistent_misreports", "test_batch_size", "fast")
"""AuctionModule attributes every member must share."""
ADAM_OPTIONS = ("betas", "eps")


def _adam_options(member: AuctionModule) -> dict[str, Any]:
    """The member's Adam options, or a one-line ``ValueError`` if its optimizer is not plain Adam."""
    factory = member.optimizer_factory
    func, args, keywords = (getattr(factory, name, None) for name in ("func", "args", "keywords"))
    if func is not torch.optim.Adam or args or not set(keywords or {}) <= set(ADAM_OPTIONS):
        raise ValueError(
            "an ensemble trains with Adam (training/member_adam.py): model.optimizer must be torch.optim.Adam "
            f"with at most {', '.join(ADAM_OPTIONS)}, got {factory!r}"
        )
    return dict(keywords or {})


def _check_members(members: Sequence[AuctionModule]) -> None:
    if not members:
        raise ValueError("an ensemble needs at least one member")
    first = members[0]
    for k, member in enumerate(members[1:], 1):
        for name in SHARED:
            if getattr(member, name) != getattr(first, name):
                raise ValueError(f"ensemble members must share {name}: member {k} has {getattr(member, name)!r}, "
                                 f"member 0 {getattr(first, name)!r}")
        if member.distribution != first.distribution:
            raise ValueError(f"ensemble members must share the valuation distribution (data.low/high, distribution): "
                             f"member {k} differs")
        if _adam_options(member) != _adam_options(first):
            raise ValueError(f"ensemble members must share the Adam options: member {k} differs")


def member_lagrangian(
    revenue: Tensor, regrets: Tensor, multipliers: Tensor, rho: Tensor, *,
    quadratic_penalty: str = "batch_mean", penalty_over_agents: str = "sum",
) -> Tensor:
    """Every member's :func:`training.lagrangian.lagrangian_loss` ``(K,)``, vectorized over the members.

    ``revenue`` ``(batch * K,)`` and ``regrets`` ``(batch * K, agents)`` are folded (member innermost);
    ``multipliers`` ``(K, agents)``, ``rho`` ``(K,)``.
    """
    size = multipliers.shape[0]
    loss = functools.partial(lagrangian_loss, quadratic_penalty=quadratic_penalty, penalty_over_agents=penalty_over_agents)
    return torch.func.vmap(loss, in_dims=(1, 1, 0, 0))(unfold(revenue, size), unfold(regrets, size), multipliers, rho)


class _MemberView:
    """Member ``k`` as the logging helpers (:mod:`training.metric_logging`, :mod:`training.validation`)
    see a module: its ``rho``, ``lagrange_multipliers``, the mechanism, and ``log`` under ``member_<k>/``."""

    def __init__(self, module: "EnsembleModule", k: int) -> None:
        self.module, self.prefix = module, f"member_{k}/"
        self.rho, self.lagrange_multipliers = module.rho[k], module.lagrange_multipliers[k]
        self.mechanism = module.mechanism

    def log(self, name: str, value: Any, **kwargs: Any) -> None:
        self.module.log(self.prefix + name, value, **kwargs)


def ensemble_summary(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean, sd (over the members, ``ddof=1``; 0 for one member) and worst member of revenue and both regrets.

    ``results``: the members' test dicts (:class:`adversary.regret.Measurement` fields).  Worst: the lowest
    revenue, the highest regret.
    """
    summary: dict[str, float] = {}
    for name, worst in (("revenue_mean", min), ("regret_mean_over_agents_mean", max), ("regret_sum_over_agents_mean", max)):
        values = [float(result[name]) for result in results]
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        summary.update({f"{name}_members_mean": mean, f"{name}_members_sd": sd, f"{name}_members_worst": worst(values)})
    return summary


class EnsembleModule(pl.LightningModule):
    """Trains the K ``members`` (built, not trained, :class:`training.AuctionModule`s) as one batched model.

    ``member_configs``: each member's resolved run configuration (what an exported member checkpoint
    carries); ``run_config``: the ensemble's.  Both are stored with the hyperparameters.
    After ``trainer.test``, :attr:`test_results` holds ``{"members": [test dict per member], "summary": ...}``.
    """

    def __init__(
        self,
        members: Sequence[AuctionModule],
        member_configs: Sequence[Mapping[str, Any]] = (),
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _check_members(members)
        first = members[0]
        self.automatic_optimization = False
        self.save_hyperparameters({"run_config": run_config, "member_configs": list(member_configs)})
        self.size = len(members)
        self.mechanism = stack_members([m.mechanism for m in members])
        self.n_agents: int = first.n_agents
        self.train_search, self.val_search, self.test_search = first.train_search, first.val_search, first.test_search
        self.quadratic_penalty, self.penalty_over_agents = first.quadratic_penalty, first.penalty_over_agents
        self.test_batch_size, self.fast = first.test_batch_size, first.fast
        self.adam_options = _adam_options(first)
        self.learning_rates = [(m.lr, m.lr_final) for m in members]
        self.test_seeds = [m.test_seed for m in members]
        self.distribution = first.distribution
        self.register_buffer("low", first.low.clone(), persistent=False)
        self.register_buffer("high", first.high.clone(), persistent=False)
        self.register_buffer("lagrange_multipliers", torch.stack([m.lagrange_multipliers for m in members]).clone())
        self.register_buffer("rho", torch.stack([m.rho for m in members]).clone())
        self.persistent_misreports = first.persistent_misreports
        if self.persistent_misreports:
            self.register_buffer("misreport_buffer", torch.stack([m.misreport_buffer for m in members], 1).clone())
        self.total_steps = 1
        self.test_results: dict[str, Any] = {}
        self.references: dict[str, float] = {}
        self._fast_step: FastStep | None = None
        self.val_metrics = nn.ModuleList([validation_metrics() for _ in members])

    # ------------------------------------------------------------------ setup
    def configure_optimizers(self) -> torch.optim.Optimizer:
        """One :class:`MemberAdam` over the stacked parameters, each member at its own learning rate."""
        if any(final is not None for _, final in self.learning_rates):
            self.total_steps = int(self.trainer.estimated_stepping_batches)
        return MemberAdam(self.mechanism.parameters(), lr=self.member_learning_rates(0), **self.adam_options)

    def member_learning_rates(self, step: int) -> list[float]:
        """Every member's learning rate at optimizer step ``step`` (constant, or its cosine decay)."""
        return [cosine_lr(step, self.total_steps, lr, final) for lr, final in self.learning_rates]

    def setup(self, stage: str) -> None:
        """The setting's reference revenues (every member's setting is the same)."""
        if not self.references:
            self.references = reference_revenues(self.mechanism, self.distribution)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the random states; accept checkpoints with or without a misreport buffer."""
        restore_state(checkpoint, self.misreport_buffer if self.persistent_misreports else None)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the random states (resume draws what an uninterrupted run would)."""
        save_state(checkpoint)

    def on_fit_start(self) -> None:
        """Refuse several processes; check the misreport buffer against the training set; build the fast step."""
        if self.trainer.world_size > 1:
            raise ValueError("an ensemble trains in one process: set trainer.devices=1 and trainer.num_nodes=1")
        sizes = getattr(getattr(self.trainer, "datamodule", None), "sizes", None)
        if self.persistent_misreports and isinstance(sizes, dict) and sizes.get("train") != len(self.misreport_buffer):
            raise ValueError(
                f"the misreport buffer holds {len(self.misreport_buffer)} profiles but the training set "
                f"{sizes.get('train')}: set model.train_size to data.train_size"
            )
        if self.fast.active(self.device):
            self._fast_step = FastStep(self.mechanism, self.train_search, self._loss, self.low, self.high, self.fast)

    # ----------------------------------------------------------------- shared
    def _fold(self, valuations: Tensor) -> Tensor:
        """Valuations ``(batch, agents, items)`` shared by every member, folded: ``(batch * K, agents, items)``."""
        return fold(valuations.unsqueeze(1).expand(-1, self.size, -1, -1))

    def member_losses(self, revenue: Tensor, regrets: Tensor) -> Tensor:
        """Every member's Lagrangian ``(K,)`` from folded revenue ``(batch * K,)`` and regrets ``(batch * K, agents)``."""
        return member_lagrangian(revenue, regrets, self.lagrange_multipliers, self.rho,
                                 quadratic_penalty=self.quadratic_penalty, penalty_over_agents=self.penalty_over_agents)

    def _loss(self, revenue: Tensor, regrets: Tensor) -> Tensor:
        """The sum of the members' Lagrangians: member ``k``'s parameters get member ``k``'s gradient only."""
        return self.member_losses(revenue, regrets).sum()

    # --------------------------------------------------------------- training
    def training_step(self, batch: TrainBatch | Tensor, batch_idx: int) -> dict[str, Tensor]:
        """One augmented-Lagrangian step of every member on a shared batch.

        Returns ``{"loss": sum, "member_losses": (K,), REGRET_KEY: (K, agents)}`` (detached).
        """
        indices, valuations = batch if isinstance(batch, tuple) else (None, batch)
        if self.persistent_misreports and indices is None:
            raise ValueError("persistent_misreports needs training batches (indices, valuations), e.g. TrainBatch")
        indices = indices if self.persistent_misreports else None
        folded = self._fold(valuations)
        init = None if indices is None else fold(self.misreport_buffer[indices])
        optimizer = self.optimizers()
        if self._fast_step is not None:
            calibrated = self._fast_step.last_calibration
            outputs = self._fast_step(folded, init)
            revenue, regrets, misreports = outputs.revenue, outputs.regrets, outputs.misreports
            losses = self.member_losses(revenue, regrets)
            if self._fast_step.last_calibration is not calibrated:
                log_calibration(self, self._fast_step.last_calibration)
        else:
            with torch.enable_grad():
                misreports = find_misreports(self.mechanism, folded, self.train_search, self.low, self.high, init=init)
            terms = regret(self.mechanism, folded, misreports)
            revenue, regrets = terms.payment.sum(-1), terms.regret
            losses = self.member_losses(revenue, regrets)
            optimizer.zero_grad()
            self.manual_backward(losses.sum())
        if indices is not None:
            self.misreport_buffer[indices] = unfold(misreports, self.size)
        rates = self.member_learning_rates(self.global_step)
        optimizer.param_groups[0]["lr"] = rates
        optimizer.step()
        revenue, regrets, losses = unfold(revenue.detach(), self.size), unfold(regrets.detach(), self.size), losses.detach()
        for k in range(self.size):
            log_training(_MemberView(self, k), revenue[:, k], regrets[:, k], losses[k], rates[k])
        return {"loss": losses.sum(), "member_losses": losses, REGRET_KEY: regrets.mean(0)}

    # ------------------------------------------------------------- validation
    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        """Every member's revenue and regret on validation valuations ``(batch, agents, items)``.

        The random starts are drawn for the folded batch from one generator (seeded by member 0's test seed,
        the step and the batch), so they differ from a single run's draws.
        """
        folded = self._fold(batch)
        generator = validation_generator(self.test_seeds[0], self.global_step, batch_idx, batch.device)
        with torch.enable_grad():
            misreports = find_misreports(self.mechanism, folded, self.val_search, self.low, self.high, generator)
        terms = regret(self.mechanism, folded, misreports)
        revenue, regrets = unfold(terms.payment.sum(-1), self.size), unfold(terms.regret, self.size)
        for k in range(self.size):
            log_validation(_MemberView(self, k), self.val_metrics[k], revenue[:, k], regrets[:, k])

    def on_validation_epoch_end(self) -> None:
        """The reference revenues, and the members' mean validation revenue as hp_metric."""
        for name, value in self.references.items():
            self.log(name, value)
        if all(metrics["revenue"].update_called for metrics in self.val_metrics):
            self.log("hp_metric", torch.stack([metrics["revenue"].compute() for metrics in self.val_metrics]).mean())

    # ------------------------------------------------------------------- test
    def test_member(self, k: int, valuations: Tensor, mechanism: nn.Module | None = None) -> dict[str, Any]:
        """Member ``k`` (or ``mechanism``, e.g. its best weights) measured with the test protocol on
        ``valuations`` ``(samples, agents, items)`` with its own test seed: what its single run's test reports."""
        generator = torch.Generator(device=valuations.device).manual_seed(self.test_seeds[k])
        mechanism = member_mechanism(self.mechanism, k) if mechanism is None else mechanism
        with torch.enable_grad():
            evaluation = measure(mechanism, valuations, self.test_search, low=self.low,
                                 high=self.high, batch_size=self.test_batch_size or valuations.shape[0],
                                 generator=generator)
        return evaluation.to_dict()

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        """Test every member on the test valuations ``(batch, agents, items)`` (one batch: the test set)."""
        if batch_idx:
            raise ValueError("the test loader must yield the whole test set as one batch")
        results = [self.test_member(k, batch) for k in range(self.size)]
        self.test_results = {"members": results, "summary": ensemble_summary(results)}
        logged = {**flatten(self.test_results["summary"], "test/"), **self.references}
        for k, result in enumerate(results):
            logged.update(flatten(result, f"member_{k}/test/"))
        for name, value in logged.items():
            self.log(name, value, batch_size=batch.shape[0])
        self.log("hp_metric", self.test_results["summary"]["revenue_mean_members_mean"], batch_size=batch.shape[0])
