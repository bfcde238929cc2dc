"""Ensemble runs end to end: metrics.json, exported members that evaluate like the members, bitwise resume."""

import json
from pathlib import Path

import pytest
import torch

from adversary.regret import measure
from adversary.search import MisreportSearch
from mechanisms.ensemble import fold, unfold
from runs.checkpoints import load_checkpoint, read_checkpoint
from tests.test_config import make_config
from tests.test_training import TINY
from runs.members import build_ensemble
from runs.export import export_member, main as export_main
from runs.run import run

ENSEMBLE = [*TINY, "agents=2", "items=3", "ensemble.size=3", "trainer.check_val_every_n_epoch=1"]


def _run(directory: Path, *overrides: str) -> dict:
    cfg = make_config(*ENSEMBLE, *overrides, output_dir=directory)
    return run(cfg, build_ensemble(cfg))


@pytest.mark.parametrize("mechanism", [pytest.param("sinkhorn", marks=pytest.mark.slow), "regretnet"])
def test_exported_members_evaluate_exactly_like_the_members_inside(mechanism: str, tmp_path: Path) -> None:
    metrics = _run(tmp_path, f"mechanism={mechanism}", "ensemble.vary.lambda_init=[1,5,9]", "test_checkpoint=best")
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored["ensemble"]["size"] == 3 and [m["seed"] for m in stored["members"]] == [0, 1, 2]
    assert [m["varied"] for m in stored["members"]] == [{"lambda_init": v} for v in (1, 5, 9)]
    revenues = [m["test"]["revenue_mean"] for m in stored["members"]]
    summary = stored["ensemble"]["summary"]
    assert summary["revenue_mean_members_mean"] == pytest.approx(sum(revenues) / 3)
    assert summary["revenue_mean_members_worst"] == min(revenues)
    assert summary["revenue_mean_members_sd"] == pytest.approx(torch.tensor(revenues, dtype=torch.float64).std().item())

    ensemble = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    cfg = make_config(*ENSEMBLE, f"mechanism={mechanism}", output_dir=tmp_path)
    parts = build_ensemble(cfg)
    parts.model.load_state_dict(ensemble["state_dict"])
    bids, stacked = torch.rand(16, 3, 2, 3), parts.model.mechanism
    # on the tolerance rule the folded batch iterates until its worst profile converges: compare on a fixed schedule
    schedule = stacked.calibrate(fold(bids)).iterations if mechanism == "sinkhorn" else None
    if schedule:
        stacked.settings = stacked.settings.with_fixed_iterations(schedule)
    allocation, payment = stacked(fold(bids))
    for k, member in enumerate(stored["members"]):
        run = load_checkpoint(member["exported"]["last"])
        assert run.config["seed"] == k and run.config["ensemble"]["size"] == 1
        if schedule:
            run.mechanism.settings = run.mechanism.settings.with_fixed_iterations(schedule)
        alone = run.mechanism(bids[:, k])
        torch.testing.assert_close(alone[0], unfold(allocation, 3)[:, k], atol=1e-6, rtol=0)
        torch.testing.assert_close(alone[1], unfold(payment, 3)[:, k], atol=1e-6, rtol=0)
        # the test of the exported best weights, as evaluate.py runs it (the run's test seed and protocol)
        best = load_checkpoint(member["exported"]["best"])
        assert member["tested_weights"] == member["exported"]["best"]
        parts.datamodule.setup("test")
        profiles = parts.datamodule.splits["test"].valuations
        search = MisreportSearch(steps=2, restarts=1)
        generator = torch.Generator().manual_seed(best.test_seed)
        assert measure(best.mechanism, profiles, search, generator=generator).to_dict() == member["test"]
    assert metrics["members"][0]["best_checkpoint"].endswith(".ckpt")


def test_export_refuses_other_checkpoints_in_one_line(tmp_path: Path) -> None:
    _run(tmp_path / "ens", "mechanism=regretnet", "trainer.max_epochs=1")
    member = tmp_path / "ens" / "members" / "member_0.ckpt"
    with pytest.raises(ValueError, match="not an ensemble checkpoint"):
        export_member(member, 0, tmp_path / "x.ckpt")
    with pytest.raises(ValueError, match=r"member must be an integer in \[0, 3\)"):
        export_member(tmp_path / "ens" / "checkpoints" / "last.ckpt", 3, tmp_path / "x.ckpt")
    with pytest.raises(ValueError, match="an ensemble checkpoint of 3 members"):
        load_checkpoint(tmp_path / "ens" / "checkpoints" / "last.ckpt")
    assert export_main([str(tmp_path / "ens" / "checkpoints" / "last.ckpt"), "--member", "2", "--out", str(tmp_path / "m.ckpt")]) == 0
    assert load_checkpoint(tmp_path / "m.ckpt").config["seed"] == 2


@pytest.mark.parametrize("extra", [pytest.param([], marks=pytest.mark.slow),
                                   ["model.persistent_misreports=true", "model.fast.enabled=true"]],
                         ids=["eager", "fast-persistent"])
def test_resume_of_an_ensemble_is_bitwise(extra: list[str], tmp_path: Path) -> None:
    common = ["mechanism=regretnet", "ensemble.vary.lr=[0.001,0.002,0.003]", "callbacks.lagrange.every_n_steps=3", *extra]
    _run(tmp_path / "straight", *common, "trainer.max_epochs=3")
    _run(tmp_path / "part", *common, "trainer.max_epochs=1")
    _run(tmp_path / "resumed", *common, "trainer.max_epochs=3", f"resume={tmp_path / 'part' / 'checkpoints' / 'last.ckpt'}")
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert a["global_step"] == b["global_step"] == 12
    assert a["state_dict"].keys() == b["state_dict"].keys() and "lagrange_multipliers" in a["state_dict"]
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
    assert not torch.equal(a["state_dict"]["lagrange_multipliers"], torch.full((3, 2), 5.0))
    (state_a,), (state_b,) = a["optimizer_states"], b["optimizer_states"]
    for index, slots in state_a["state"].items():
        for name, value in slots.items():
            assert (value == state_b["state"][index][name]) if not torch.is_tensor(value) else torch.equal(value, state_b["state"][index][name])
