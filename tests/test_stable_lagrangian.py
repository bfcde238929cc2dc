"""The stable Lagrangian options (issue 16): the annealed regret target, the target-regret controller,
rho softening, gradient clipping; a resumed stable run equals the uninterrupted one."""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from lagrangian.paper import RhoSchedule

from lagrangian.target_regret import TargetRegretUpdate
from mechanisms.networks import MLP
from mechanisms.regretnet import RegretNet
from tests.test_config import make_config
from tests.test_training import TINY, _checkpoint_state
from training.fast_step import FastStepSettings
from lagrangian.target_regret import TargetRegretRule, TargetSchedule
from training.module import AuctionModule
from runs.run import run

# TINY without the paper schedule's callback overrides (lagrangian=stable drops callbacks.rho).
STABLE_TINY = [o for o in TINY if not o.startswith(("callbacks.rho", "callbacks.lagrange"))] + ["lagrangian=stable"]


def test_target_schedule_anneals_geometrically_or_linearly_then_stays() -> None:
    geometric = TargetSchedule(0.01, 0.0001, 4, "geometric")
    # 0.01 * (0.0001 / 0.01) ** (step / 4): 0.01, 10^-2.5, 10^-3, 10^-3.5, then 10^-4
    assert [geometric(s) for s in range(6)] == pytest.approx([1e-2, 10**-2.5, 1e-3, 10**-3.5, 1e-4, 1e-4])
    linear = TargetSchedule(0.01, 0.0001, 4, "linear")
    assert [linear(s) for s in (0, 2, 4, 9)] == pytest.approx([0.01, 0.00505, 0.0001, 0.0001])
    assert TargetSchedule(0.01, 0.002, 0)(0) == 0.002  # no annealing: the end target throughout
    for bad in (dict(tau_start=0.0), dict(tau_end=-1.0), dict(anneal_steps=-1), dict(shape="cosine")):
        with pytest.raises(ValueError):
            TargetSchedule(**bad)


def test_controller_follows_the_hand_computed_trajectory() -> None:
    """eta 2, tau 0.1, rho + 1 (cap 2.5) while the mean regret > tau, lambda may fall but not below 0."""
    rule = TargetRegretRule(eta=2.0, every_n_steps=1, rho_increment=1.0, max_rho=2.5, target=TargetSchedule(0.1, 0.1))
    multipliers, rho = torch.tensor([1.0, 0.2]), torch.tensor(1.0)
    scripted = [[0.3, 0.0], [0.1, 0.05], [0.5, 0.3], [0.0, 0.1]]
    # by hand: lambda_i + 2 (rgt_i - 0.1), floored at 0; mean regrets 0.15, 0.075, 0.4, 0.05
    expected = [([1.4, 0.0], 2.0), ([1.4, 0.0], 2.0), ([2.2, 0.4], 2.5), ([2.0, 0.4], 2.5)]
    for step, (regret, (lam, r)) in enumerate(zip(scripted, expected), start=1):
        rule.apply(multipliers, rho, torch.tensor(regret), step)
        assert multipliers.tolist() == pytest.approx(lam) and float(rho) == pytest.approx(r), step


def test_controller_uses_the_target_of_the_step_and_its_period() -> None:
    rule = TargetRegretRule(eta=1.0, every_n_steps=2, rho_increment=0.5, target=TargetSchedule(0.4, 0.1, 2, "linear"))
    assert [rule.due(s) for s in range(1, 5)] == [False, True, False, True]
    multipliers, rho = torch.tensor([0.0]), torch.tensor(1.0)
    rule.apply(multipliers, rho, torch.tensor([0.3]), step=1)  # tau(1) = 0.25: lambda 0.05, rho 1.5
    assert float(multipliers) == pytest.approx(0.05) and float(rho) == 1.5
    rule.apply(multipliers, rho, torch.tensor([0.12]), step=2, grow_rho=False)  # tau 0.1: lambda 0.07, rho held
    assert float(multipliers) == pytest.approx(0.07) and float(rho) == 1.5


def test_softened_rho_staircase_halves_holds_then_grows_and_survives_a_checkpoint() -> None:
    schedule = RhoSchedule(increment=1.0, every_n_steps=2, max_rho=None, rho_init=1.0)
    rho = torch.tensor(schedule.rho(10))
    assert float(rho) == 6.0
    schedule.soften(10, hold_steps=4, rho=rho)  # 3 until step 14, then +1 every 2 steps from there
    assert float(rho) == 3.0
    assert [schedule.rho(s) for s in (10, 13, 14, 15, 16, 20)] == [3.0, 3.0, 3.0, 3.0, 4.0, 6.0]
    restored = RhoSchedule(increment=1.0, every_n_steps=2, max_rho=None, rho_init=1.0)
    restored.load_state_dict(schedule.state_dict())
    assert [restored.rho(s) for s in range(30)] == [schedule.rho(s) for s in range(30)]


class Crash(pl.Callback):
    """Kills the run (an exception) before the batch at global step ``at_step``, as a preempted job."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: object, batch_idx: int) -> None:
        if trainer.global_step == self.at_step:
            raise RuntimeError("crash")


def test_stable_run_resumed_mid_schedule_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    """The run is killed in epoch 3 (its last.ckpt: epoch 2, step 8, mid-anneal) and resumed."""
    def fit(directory: Path, *extra: str) -> dict:
        overrides = [*STABLE_TINY, "trainer.max_epochs=4", "lagrangian.tau_anneal_fraction=0.75",
                     "lagrangian.tau_start=0.05", "lagrangian.tau_end=0.0001", "lagrangian.eta=3.0",
                     "trainer.check_val_every_n_epoch=1"]
        return run(make_config(*overrides, *extra, output_dir=directory))

    straight = fit(tmp_path / "straight")
    with pytest.raises(RuntimeError, match="crash"):
        fit(tmp_path / "part", f"+callbacks.crash._target_={__name__}.Crash", "+callbacks.crash.at_step=10")
    resumed = fit(tmp_path / "resumed", f"resume={tmp_path / 'part' / 'checkpoints' / 'last.ckpt'}")
    assert resumed["global_step"] == straight["global_step"] == 16
    assert resumed["rho"] == straight["rho"] and 1.0 < straight["rho"] <= 100.0  # rho grew, within the cap
    assert resumed["lambda"] == pytest.approx(straight["lambda"], rel=1e-5)
    a = _checkpoint_state(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    b = _checkpoint_state(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name


def test_the_stable_group_swaps_the_paper_callbacks_for_the_controller() -> None:
    cfg = make_config("lagrangian=stable")
    assert cfg.callbacks.rho is None and cfg.callbacks.lagrange._target_ == "lagrangian.TargetRegretUpdate"
    assert cfg.model.clip_grad_norm == cfg.lagrangian.clip_grad_norm == 1.0
    paper = make_config()
    assert paper.callbacks.lagrange._target_ == "lagrangian.LagrangeUpdate" and paper.model.clip_grad_norm is None
    with pytest.raises(ValueError, match="anneal_fraction"):
        TargetRegretUpdate(anneal_fraction=1.5)


@pytest.mark.parametrize("fast", [False, True], ids=["eager", "fast-step"])
def test_gradient_clipping_equals_the_clipped_step_by_hand(fast: bool) -> None:
    torch.manual_seed(0)
    mechanism, clip, lr = RegretNet(1, 2, allocation_net=MLP((8,)), payment_net=MLP((8,))), 1e-3, 0.5
    start, valuations = copy.deepcopy(mechanism), torch.rand(16, 1, 2)
    module = AuctionModule(mechanism, lr=lr, optimizer=functools.partial(torch.optim.SGD), clip_grad_norm=clip,
                           fast=FastStepSettings(enabled=fast, cuda_graph=False))
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, inference_mode=False)
    trainer.fit(module, train_dataloaders=DataLoader(valuations, batch_size=16))

    reference = AuctionModule(start)  # same lambda (5) and rho (1) at step 0
    revenue, regrets, _ = reference._regret(valuations, reference.train_search)
    reference._loss(revenue, regrets).backward()
    grads = [p.grad for p in start.parameters()]
    norm = math.sqrt(sum(float((g**2).sum()) for g in grads))
    assert norm > 10 * clip  # the clip does bind
    scale = clip / (norm + 1e-6)  # torch.nn.utils.clip_grad_norm_'s rule, written out
    for p_trained, p_start, g in zip(mechanism.parameters(), start.parameters(), grads):
        assert torch.allclose(p_trained.detach(), p_start.detach() - lr * scale * g, atol=1e-7)
    with pytest.raises(ValueError, match="clip_grad_norm"):
        AuctionModule(RegretNet(1, 2), clip_grad_norm=0.0)


def test_checkpoints_from_before_the_new_settings_resume_when_they_stay_off() -> None:
    from runs.resume_checks import resume_differences

    old = {"model": {"lr": 0.001}, "lagrangian": {"max_rho": None}}
    assert resume_differences(old, {"model": {"lr": 0.001, "clip_grad_norm": None}, "lagrangian": {"max_rho": None}}) == []
    assert resume_differences(old, {"model": {"lr": 0.001, "clip_grad_norm": 1.0}, "lagrangian": {"max_rho": None}}) == [
        ("model.clip_grad_norm", "<absent>", 1.0)
    ]
