"""Tiny end-to-end runs: every valid demand x mechanism trains, checkpoints rho/lambda, resumes, tests, sweeps."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.test_config import DEMANDS, MECHANISMS, REGRETNET_CANNOT, ROOT, make_config
from runs.config import build_components, validate_config
from runs.run import run

TINY = [
    "data.train_size=32",
    "data.batch_size=8",
    "data.val_size=8",
    "data.test_size=8",
    "trainer.max_epochs=1",
    "mechanism.allocation_net.hidden=[16,16]",
    "mechanism.payment_net.hidden=[16,16]",
    "model.train_search.steps=3",
    "model.val_search.steps=2",
    "model.val_search.restarts=1",
    "model.test_search.steps=2",
    "model.test_search.restarts=1",
    "callbacks.rho.every_n_steps=1",
    "callbacks.lagrange.every_n_steps=2",
    "callbacks.progress=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
# lottery_ama and sequential_menu have no networks (their own tests train them through their config nodes)
VALID = [(d, m) for d in DEMANDS for m in MECHANISMS
         if m not in ("lottery_ama", "sequential_menu") and not (m == "regretnet" and d in REGRETNET_CANNOT)]


def _checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.parametrize("demand, mechanism", VALID)
def test_tiny_run_trains_and_checkpoints_the_multipliers(demand: str, mechanism: str, tmp_path: Path) -> None:
    tiny = [o for o in TINY if mechanism != "sinkhorn_potential" or not o.startswith("mechanism.payment_net")]
    cfg = make_config(*tiny, f"demand={demand}", f"mechanism={mechanism}", "agents=2", "items=3", output_dir=tmp_path)
    metrics = run(cfg)
    assert math.isfinite(metrics["fit"]["train/loss"])
    assert metrics["global_step"] == 4
    # rho + 1 before batches 1, 2, 3; lambda updated after batches 2 and 4 with non-negative regrets
    assert metrics["rho"] == 4.0
    assert all(value >= 5.0 for value in metrics["lambda"]) and len(metrics["lambda"]) == 2
    state = _checkpoint_state(tmp_path / "checkpoints" / "last.ckpt")
    assert float(state["rho"]) == metrics["rho"]
    assert state["lagrange_multipliers"].tolist() == metrics["lambda"]
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["test"]["n_samples"] == 8
    # one thread: the process's CPU time while training is positive and at most a little above its wall time
    assert 0 < written["train_cpu_s"] <= written["train_time_s"] * 1.5 + 0.5 and written["hardware"].startswith("CPU: ")


def test_per_agent_value_ranges_train_with_the_baselines_only(tmp_path: Path) -> None:
    cfg = make_config(*TINY, "agents=2", "data.low=[0.0,0.5]", "data.high=[1.0,2.0]", output_dir=tmp_path)
    metrics = run(cfg)
    assert math.isfinite(metrics["fit"]["train/loss"])
    # optimum and VCG references assume i.i.d. bidders; the truthful baselines take per-agent ranges
    assert set(metrics["references"]) == {"reference/posted_price_revenue", "reference/vcg_reserve_revenue",
                                          "reference/best_truthful_baseline_revenue", "reference/best_truthful_baseline"}


@pytest.mark.parametrize("persistent", [False, True], ids=["cold", "persistent-misreports"])
def test_resume_continues_the_schedules_where_they_stopped(persistent: bool, tmp_path: Path) -> None:
    def fit(directory: Path, epochs: int, resume: Path | None = None) -> dict:
        overrides = [*TINY, f"trainer.max_epochs={epochs}", "callbacks.lagrange.every_n_steps=3"]
        overrides.append(f"model.persistent_misreports={str(persistent).lower()}")
        if resume is not None:
            overrides.append(f"resume={resume}")
        return run(make_config(*overrides, output_dir=directory))

    straight = fit(tmp_path / "straight", 4)
    fit(tmp_path / "part", 2)
    resumed = fit(tmp_path / "resumed", 4, resume=tmp_path / "part" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == straight["global_step"] == 16
    assert resumed["rho"] == straight["rho"] == 16.0
    assert resumed["lambda"] == pytest.approx(straight["lambda"], rel=1e-5)
    assert resumed["lambda"] != [5.0] * len(resumed["lambda"])  # the Lagrange updates did happen
    a = _checkpoint_state(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    b = _checkpoint_state(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert ("misreport_buffer" in a) is persistent and a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name


def test_persistent_misreports_are_kept_per_profile_and_checkpointed(tmp_path: Path) -> None:
    cfg = make_config(*TINY, "model.persistent_misreports=true", output_dir=tmp_path)
    torch.manual_seed(0)
    fresh = build_components(cfg).model.misreport_buffer.clone()
    assert fresh.shape == (32, 1, 2) and 0.0 <= float(fresh.min()) and float(fresh.max()) <= 1.0
    run(cfg)
    state = _checkpoint_state(tmp_path / "checkpoints" / "last.ckpt")
    buffer = state["misreport_buffer"]
    # every profile was visited once (1 epoch of 4 batches of 8): each row was searched and written back
    assert buffer.shape == fresh.shape and not torch.equal(buffer, fresh)
    data = build_components(cfg).datamodule
    data.setup()
    profiles = data.splits["train"].valuations
    assert float(buffer.min()) >= 0.0 and float(buffer.max()) <= 1.0
    assert not torch.equal(buffer, profiles)  # some profitable misreports were found


def test_persistent_misreports_need_the_training_set_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="misreport buffer holds 16 profiles but the training set 32"):
        run(make_config(*TINY, "model.persistent_misreports=true", "model.train_size=16", output_dir=tmp_path))


@pytest.mark.parametrize("first, then", [(False, True), (True, False)])
def test_runs_with_and_without_persistent_misreports_resume_each_other(first: bool, then: bool, tmp_path: Path) -> None:
    flag = lambda value: f"model.persistent_misreports={str(value).lower()}"  # noqa: E731
    run(make_config(*TINY, flag(first), output_dir=tmp_path / "a"))
    resume = f"resume={tmp_path / 'a' / 'checkpoints' / 'last.ckpt'}"
    metrics = run(make_config(*TINY, flag(then), "trainer.max_epochs=2", resume, output_dir=tmp_path / "b"))
    assert metrics["global_step"] == 8
    state = _checkpoint_state(tmp_path / "b" / "checkpoints" / "last.ckpt")
    assert ("misreport_buffer" in state) is then


def test_misreport_search_runs_under_trainer_test(tmp_path: Path) -> None:
    def test_regret(steps: int) -> float:
        search = [f"model.test_search.steps={steps}", "model.test_search.restarts=0"]
        cfg = make_config(*TINY, *search, output_dir=tmp_path)
        torch.manual_seed(0)
        parts = build_components(cfg)
        trainer = instantiate(cfg.trainer, logger=False, callbacks=[])
        trainer.test(parts.model, datamodule=parts.datamodule, verbose=False)
        return parts.model.test_results["regret_mean_over_agents_mean"]

    # From the truthful start alone regret is exactly 0; gradient steps on the bids find profitable lies.
    assert test_regret(0) == 0.0
    assert test_regret(20) > 1e-4


def test_multirun_sweeps_the_final_epsilon(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", "sinkhorn.eps_final=0.05,0.1", *TINY]
        + [f"hydra.sweep.dir={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for job, eps in enumerate((0.05, 0.1)):
        metrics = json.loads((tmp_path / str(job) / "metrics.json").read_text())
        assert metrics["test"]["n_samples"] == 8
        hparams = (tmp_path / str(job) / "tensorboard" / "hparams.yaml").read_text()
        assert f"eps_final: {eps}" in hparams


def test_cosine_learning_rate_decay_follows_the_step(tmp_path: Path) -> None:
    cfg = make_config(*TINY, "model.lr=0.001", "model.lr_final=0.0001", output_dir=tmp_path)
    metrics = run(cfg)
    assert metrics["global_step"] == 4
    # the last of 4 optimizer steps (step index 3) uses the cosine from 1e-3 to 1e-4 at 3/4 of the run
    expected = 1e-4 + (1e-3 - 1e-4) * 0.5 * (1 + math.cos(math.pi * 3 / 4))
    assert metrics["fit"]["train/lr"] == pytest.approx(expected, rel=1e-6)


def test_last_checkpoint_holds_the_tested_weights_when_training_stops_mid_epoch(tmp_path: Path) -> None:
    # 4 batches per epoch, validation after each; max_steps stops in the third epoch, after the last validation
    cfg = make_config(*TINY, "trainer.max_epochs=3", "trainer.max_steps=10", "trainer.check_val_every_n_epoch=1",
                      output_dir=tmp_path)
    metrics = run(cfg)
    assert metrics["global_step"] == 10 and metrics["tested_weights"] == "last"
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 10
    assert float(checkpoint["state_dict"]["rho"]) == metrics["rho"]
    assert checkpoint["state_dict"]["lagrange_multipliers"].tolist() == metrics["lambda"]
    assert metrics["best_checkpoint"] and Path(metrics["best_checkpoint"]).name.startswith("best-")


def test_validation_builds_the_components_the_run_trains(tmp_path: Path) -> None:
    cfg = make_config(*TINY, output_dir=tmp_path)
    parts = validate_config(cfg)
    metrics = run(cfg, parts)
    assert parts.model.trainer.global_step == metrics["global_step"] == 4 and parts.model.test_results == metrics["test"]
    stored = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    config = stored["hyper_parameters"]["run_config"]
    assert config["mechanism"]["_target_"] == cfg.mechanism._target_  # the resolved config, _target_ kept
    assert config["model"]["train_search"] == OmegaConf.to_container(cfg.model.train_search, resolve=True)
    assert "_target_" in config["model"]["train_search"] and config["model"]["train_search"]["steps"] == 3


def test_results_table_shows_a_late_collapse_beside_the_best_checkpoint() -> None:
    from runs.run import format_table

    test = {f"{name}_{stat}": 0.1 for name in ("revenue", "regret_mean_over_agents", "regret_sum_over_agents")
            for stat in ("mean", "std", "max")}
    metrics = {"setting": "2 agent(s) x 15 item(s)", "references": {}, "tested_weights": "last", "wall_time_s": 1.0,
               "train_time_s": 1.0, "test_time_s": 0.0, "test": test, "best_score": 0.8735,
               "best_checkpoint": "/run/checkpoints/best-epoch=24-step=3200.ckpt"}
    collapsed = format_table({**metrics, "fit": {"val/budgeted_revenue": 0.00001}})
    assert ("best validation score     0.8735 (best-epoch=24-step=3200.ckpt); last validation 0.0000; "
            "test_checkpoint=best tests it") in collapsed
    steady = format_table({**metrics, "fit": {"val/budgeted_revenue": 0.8735}})
    assert "last validation 0.8735" in steady and "test_checkpoint=best" not in steady
    assert "best validation score" not in format_table({**metrics, "fit": {}, "tested_weights": "/run/best.ckpt"})
