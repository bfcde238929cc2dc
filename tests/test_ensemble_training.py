"""An ensemble's training equals its members' single runs, step by step (CPU, float64)."""

from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lagrangian.paper import LagrangeUpdate, RhoSchedule

from lagrangian.target_regret import TargetRegretUpdate
from mechanisms.ensemble import member_state_dict
from tests.test_config import make_config
from tests.test_training import TINY
from runs.config import build_components
from runs.members import build_ensemble, main, member_configs, pack_multirun

SCHEDULES = (RhoSchedule, LagrangeUpdate, TargetRegretUpdate)
SETTING = ["agents=2", "items=3", "model.train_search.steps=4"]
TIGHT_SINKHORN = ["sinkhorn.tol=1e-12", "sinkhorn.max_iter=5000", "sinkhorn.eps_steps=2", "sinkhorn.eps_final=0.05"]


class Recorder(pl.Callback):
    """After every training batch (and the Lagrange update): every member's loss, weights, lambda and rho."""

    def __init__(self) -> None:
        self.steps: list[list[dict[str, Any]]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, i: int) -> None:
        if module.members == 1:  # a single run
            state = {k: v.clone() for k, v in module.mechanism.state_dict().items()}
            self.steps.append([dict(loss=outputs["loss"].clone(), weights=state, lam=module.lagrange_multipliers.clone(),
                                    rho=module.rho.clone())])
            return
        self.steps.append([
            dict(loss=outputs["member_losses"][k].clone(), weights=member_state_dict(module.mechanism, k),
                 lam=module.lagrange_multipliers[k].clone(), rho=module.rho[k].clone())
            for k in range(module.members)
        ])


def _fit(cfg: Any, parts: Any) -> list[list[dict[str, Any]]]:
    recorder = Recorder()
    callbacks = [c for c in parts.callbacks if isinstance(c, SCHEDULES)] + [recorder]
    trainer = instantiate(cfg.trainer, precision="64-true", logger=False, callbacks=callbacks, enable_checkpointing=False,
                          limit_val_batches=0, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(parts.model, datamodule=parts.datamodule)
    assert trainer.global_step == 4
    return recorder.steps


def _single(*overrides: str) -> list[dict[str, Any]]:
    cfg = make_config(*TINY, *SETTING, *overrides)
    return [step[0] for step in _fit(cfg, build_components(cfg))]


def _assert_equal(ensemble: list[list[dict[str, Any]]], singles: list[list[dict[str, Any]]]) -> None:
    for k, single in enumerate(singles):
        for step, (mine, theirs) in enumerate(zip((steps[k] for steps in ensemble), single, strict=True)):
            where = f"member {k}, step {step}"
            torch.testing.assert_close(mine["loss"], theirs["loss"], atol=1e-6, rtol=0, msg=where)
            torch.testing.assert_close(mine["lam"], theirs["lam"], atol=1e-6, rtol=0, msg=where)
            torch.testing.assert_close(mine["rho"], theirs["rho"], atol=1e-6, rtol=0, msg=where)
            assert mine["weights"].keys() == theirs["weights"].keys()
            for name, value in theirs["weights"].items():
                torch.testing.assert_close(mine["weights"][name], value, atol=1e-6, rtol=0, msg=f"{where}: {name}")
    # the members did train apart: their weights differ after 4 steps
    assert not torch.allclose(ensemble[-1][0]["loss"], ensemble[-1][1]["loss"])


@pytest.mark.parametrize("mechanism, extra", [
    ("regretnet", []), pytest.param("sinkhorn", TIGHT_SINKHORN, marks=pytest.mark.slow)])
def test_three_seeds_train_as_their_single_runs(mechanism: str, extra: list[str]) -> None:
    overrides = [f"mechanism={mechanism}", *extra]
    cfg = make_config(*TINY, *SETTING, *overrides, "ensemble.size=3")
    ensemble = _fit(cfg, build_ensemble(cfg))
    # the single runs of seeds 0, 1, 2 on the ensemble's data (data.seed of seed 0)
    _assert_equal(ensemble, [_single(*overrides, f"seed={k}", "data.seed=0") for k in range(3)])


NETWORKS = [o for o in TINY if o.startswith("mechanism.")]
BASE = [o for o in TINY if not o.startswith(("mechanism.", "callbacks.rho", "callbacks.lagrange"))]
MECHANISM_OVERRIDES = {  # potential, lottery: member by member (state outside nn.Linear), exact on any stopping rule
    "regretnet": NETWORKS,
    "sinkhorn_potential": ["mechanism.allocation_net.hidden=[16,16]"],
    "lottery_ama": ["mechanism.options=8"],
    "sequential_menu": ["demand=exactly_k", "mechanism.options=4"],
}
LAGRANGIANS = {
    "paper": ["lagrangian.rho_every_n_steps=1", "lagrangian.lambda_every_n_steps=2"],
    "original": ["lagrangian=original", "lagrangian.rho_every_n_steps=1", "lagrangian.lambda_every_n_steps=2"],
    "stable": ["lagrangian=stable", "lagrangian.clip_grad_norm=0.05"],  # the clip binds: per-member norms
}


def _single_of(overrides: list[str], *more: str) -> list[dict[str, Any]]:
    cfg = make_config(*BASE, *SETTING, *overrides, *more)
    return [step[0] for step in _fit(cfg, build_components(cfg))]


@pytest.mark.parametrize("lagrangian", list(LAGRANGIANS))
@pytest.mark.parametrize("mechanism", list(MECHANISM_OVERRIDES))
def test_every_mechanism_and_lagrangian_trains_members_as_their_single_runs(mechanism: str, lagrangian: str) -> None:
    overrides = [f"mechanism={mechanism}", *MECHANISM_OVERRIDES[mechanism], *LAGRANGIANS[lagrangian]]
    cfg = make_config(*BASE, *SETTING, *overrides, "ensemble.size=2", "ensemble.vary.lr=[0.003,0.001]")
    ensemble = _fit(cfg, build_ensemble(cfg))
    singles = [_single_of(overrides, f"seed={k}", "data.seed=0", f"model.lr={lr}") for k, lr in enumerate((0.003, 0.001))]
    _assert_equal(ensemble, singles)


def test_members_with_their_own_hyperparameters_train_as_their_single_runs() -> None:
    varied = {"seed": [4, 4], "lr": [0.001, 0.003], "lambda_init": [5.0, 1.0], "rho_increment": [1.0, 0.5],
              "lambda_every_n_steps": [2, 1], "lr_final": [0.0005, 0.002]}
    vary = [f"ensemble.vary.{key}=[{','.join(map(str, values))}]" for key, values in varied.items()]
    common = ["mechanism=regretnet", "model.persistent_misreports=true", "seed=7"]
    cfg = make_config(*TINY, *SETTING, *common, "ensemble.size=2", *vary)
    ensemble = _fit(cfg, build_ensemble(cfg))
    singles = [
        _single(*common, "seed=4", "data.seed=7", f"model.lr={varied['lr'][k]}", f"model.lr_final={varied['lr_final'][k]}",
                f"lagrangian.lambda_init={varied['lambda_init'][k]}", f"lagrangian.rho_increment={varied['rho_increment'][k]}",
                f"lagrangian.lambda_every_n_steps={varied['lambda_every_n_steps'][k]}")
        for k in range(2)
    ]
    _assert_equal(ensemble, singles)


def test_the_fast_step_trains_members_as_their_single_fast_runs() -> None:
    overrides = ["mechanism=regretnet", "model.fast.enabled=true", "model.persistent_misreports=true"]
    cfg = make_config(*TINY, *SETTING, *overrides, "ensemble.size=3")
    ensemble = _fit(cfg, build_ensemble(cfg))
    _assert_equal(ensemble, [_single(*overrides, f"seed={k}", "data.seed=0") for k in range(3)])


def test_member_configurations_are_single_runs() -> None:
    cfg = make_config("seed=3", "ensemble.size=3", "ensemble.vary.lambda_init=[1,2,3]")
    members = member_configs(cfg)
    assert [(m.seed, m.data.seed, m.model.test_seed, m.model.lambda_init, m.ensemble.size) for m in members] == [
        (3, 3, 3, 1, 1), (4, 3, 4, 2, 1), (5, 3, 5, 3, 1)]


@pytest.mark.parametrize("override, message", [
    ("ensemble.vary.lr=[0.1]", r"ensemble.vary.lr must list one value per member \(3\)"),
    ("+ensemble.vary.hidden=[1,2,3]", "ensemble.vary.hidden cannot vary per member"),
    ("ensemble.vary.seed=[1,1,1]", "equal seeds and settings would train identically"),
    ("ensemble.size=0", "ensemble.size"),
])
def test_bad_ensemble_configurations_fail_in_one_line(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_ensemble(make_config("ensemble.size=3", override))


def test_a_packed_multirun_has_one_member_per_job_of_the_multirun() -> None:
    sweeps = ["seed=0,1", "model.lr=0.001,0.003", "lagrangian.lambda_init=1.0,5.0"]
    packed = pack_multirun(sweeps)
    assert packed[0] == "ensemble.size=8"
    members = member_configs(make_config(*packed))
    jobs = [(s, lr, lam) for s in (0, 1) for lr in (0.001, 0.003) for lam in (1.0, 5.0)]  # Hydra's order: last fastest
    for member, (seed, lr, lam) in zip(members, jobs, strict=True):
        job = make_config(f"seed={seed}", f"model.lr={lr}", f"lagrangian.lambda_init={lam}")
        for key in ("seed", "model.lr", "model.lambda_init", "callbacks.rho.rho_init", "model.test_seed"):
            assert OmegaConf.select(member, key) == OmegaConf.select(job, key), key
        assert member.data.seed == 0  # the ensemble's data: the first seed's, shared
    with pytest.raises(ValueError, match="cannot pack 'mechanism.allocation_net.activation=tanh,relu'"):
        pack_multirun(["mechanism.allocation_net.activation=tanh,relu"])


def test_the_packing_command_prints_the_job_or_fails_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed=0,1", "model.lr=0.1,0.2"]) == 0
    assert capsys.readouterr().out.split() == [
        "ensemble.size=4", "ensemble.vary.seed=[0,0,1,1]", "ensemble.vary.lr=[0.1,0.2,0.1,0.2]"]
    assert main(["data.batch_size=8,16"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: cannot pack 'data.batch_size=8,16'") and error.count("\n") == 1
