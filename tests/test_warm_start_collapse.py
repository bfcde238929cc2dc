"""The warm start from a baseline and the collapse guard (issue 16, parts 2 and 3)."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from callbacks.collapse import CollapseGuard
from lagrangian.paper import RhoSchedule
from callbacks.warm_start import WarmStart
from distributions import Setting
from mechanisms.demand import Demand
from baselines.optimal import posted_price
from mechanisms.networks import MLP
from mechanisms.regretnet import RegretNet
from tests.test_config import make_config
from tests.test_training import TINY
from runs.config import build_components
from training.module import AuctionModule
from runs.run import format_table, run
from baselines.teachers import resolve_teacher
from training.warm_start import fit_to_teacher


def test_fit_to_teacher_recovers_a_network_teacher() -> None:
    torch.manual_seed(0)
    small = {"allocation_net": MLP((16,)), "payment_net": MLP((16,))}
    teacher, student = RegretNet(1, 2, **small), RegretNet(1, 2, **small)
    profiles = torch.rand(256, 1, 2)
    with torch.no_grad():
        allocation, payment = teacher(profiles)
        before = float((student(profiles)[0] - allocation).pow(2).mean())
    stats = fit_to_teacher(student, teacher, profiles, steps=100, lr=1e-2, batch_size=64,
                           generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fitted_allocation, fitted_payment = student(profiles)
    assert stats.allocation_mse == pytest.approx(float((fitted_allocation - allocation).pow(2).mean()), rel=1e-4)
    assert stats.allocation_mse < before / 10
    assert stats.teacher_revenue == pytest.approx(float(payment.sum(-1).mean()), rel=1e-6)
    assert stats.revenue == pytest.approx(float(fitted_payment.sum(-1).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="profiles"):
        fit_to_teacher(student, teacher, torch.rand(4, 2), steps=1)


def test_teacher_names_resolve_or_fail_in_one_line() -> None:
    unit = Demand("unit")
    teacher = resolve_teacher("posted_price", Setting.uniform(1, 2, unit))
    (price,) = teacher.prices
    bids = torch.rand(256, 1, 2)
    allocation, payment = teacher.mechanism(bids)
    # a posted price p per item, unit demand: the bidder buys its best item iff its value is at least p
    surplus = bids[:, 0] - price
    bought = torch.nn.functional.one_hot(surplus.argmax(-1), 2) * (surplus.amax(-1, keepdim=True) >= 0)
    assert torch.equal(allocation[:, 0], bought.to(allocation)) and torch.allclose(payment[:, 0], price * bought.sum(-1))
    assert resolve_teacher("best", Setting.uniform(1, 2, "exactly_k")).name == "pay_to_choose"  # its only baseline
    for bad in ("none", "vcg"):
        with pytest.raises(ValueError, match="init must be one of"):
            resolve_teacher(bad, Setting.uniform(1, 2, unit))
    with pytest.raises(ValueError, match="init must be one of"):
        WarmStart(init="posted")


def test_warm_start_runs_before_training_and_is_reported(tmp_path: Path) -> None:
    cfg = make_config(*TINY, "init=posted_price", "init_steps=20", "trainer.check_val_every_n_epoch=1", output_dir=tmp_path)
    parts = build_components(cfg)
    metrics = run(cfg, parts)
    report = metrics["warm_start"]
    assert report["init"] == "posted_price" and report["fit"]["steps"] == 20
    assert report["teacher_revenue"] == pytest.approx(posted_price().expected_revenue, abs=0.01)  # near Pavlov's optimum
    assert 0 <= report["val_revenue"] and report["audit_regret_mean_over_agents"] >= 0
    # the allocated mass logged at the last validation is the mass of the final weights on the validation set
    validation = parts.datamodule.splits["val"].valuations
    with torch.no_grad():
        mass = parts.mechanism(validation)[0].sum(-1).mean(0)
    assert metrics["fit"]["val/allocated_mass_agent0"] == pytest.approx(float(mass[0]), rel=1e-5)
    assert run(make_config(*TINY, output_dir=tmp_path / "cold"))["warm_start"] is None


def _trainer(revenue: float, step: int, callbacks: list, best: str = "") -> SimpleNamespace:
    checkpoint = SimpleNamespace(monitor="val/budgeted_revenue", best_model_path=best)
    return SimpleNamespace(sanity_checking=False, callback_metrics={"val/revenue": torch.tensor(revenue)},
                           global_step=step, loggers=[], callbacks=callbacks, checkpoint_callbacks=[checkpoint])


def test_collapse_guard_warns_after_warmup_and_restores_the_best_weights(tmp_path: Path) -> None:
    module = AuctionModule(RegretNet(1, 2, allocation_net=MLP((8,)), payment_net=MLP((8,))))
    module.rho.fill_(40.0)
    best = tmp_path / "best.ckpt"
    torch.save({"state_dict": copy.deepcopy(module.state_dict())}, best)
    saved = copy.deepcopy(module.state_dict())
    guard, schedule = CollapseGuard(warmup_steps=100, fraction=0.5, on_collapse="restore", hold_steps=10), RhoSchedule()
    guard.on_validation_end(_trainer(0.30, 50, [schedule], str(best)), module)
    guard.on_validation_end(_trainer(0.10, 60, [schedule], str(best)), module)  # in the warm-up: no collapse
    assert guard.collapses == []
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    module.rho.fill_(900.0)
    guard.on_validation_end(_trainer(0.16, 200, [schedule], str(best)), module)  # 0.16 >= 0.5 x 0.30
    assert guard.collapses == []
    with pytest.warns(UserWarning, match="collapse at step 300"):
        guard.on_validation_end(_trainer(0.14, 300, [schedule], str(best)), module)
    assert guard.collapses == [300]
    for name, value in module.state_dict().items():
        if name != "rho":
            assert torch.equal(value, saved[name]), name
    assert float(module.rho) == 20.0 and schedule.rho(305) == 20.0 and schedule.rho(312) == 21.0  # halved, held 10 steps
    restored = CollapseGuard()
    restored.load_state_dict(guard.state_dict())
    assert restored.best == pytest.approx(0.30) and restored.collapses == [300]
    with pytest.raises(ValueError, match="on_collapse"):
        CollapseGuard(on_collapse="stop")


def test_both_checkpoints_are_tested_and_tabled(tmp_path: Path) -> None:
    common = [*TINY, "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=1"]
    both = run(make_config(*common, "test_checkpoint=both", output_dir=tmp_path / "both"))
    best = run(make_config(*common, "test_checkpoint=best", output_dir=tmp_path / "best"))
    last = run(make_config(*common, output_dir=tmp_path / "last"))
    assert both["test"] == last["test"] and both["tested_weights"] == "last"
    assert {k: v for k, v in both["test_best"].items() if k != "checkpoint"} == best["test"]
    assert "best checkpoint, test" in format_table(both) and "best checkpoint, test" not in format_table(last)
