"""An ensemble refuses, before any work, what it cannot continue or train; a diverging member stops the run."""

from pathlib import Path

import pytest
import torch

from tests.test_config import make_config
from tests.test_training import TINY
from training.divergence import TrainingDiverged
from runs.export import main as export_main
from runs.members import build_run
from runs.run import run

SMALL = [*TINY, "trainer.check_val_every_n_epoch=1"]


def _run(directory: Path, *overrides: str) -> dict:
    cfg = make_config(*SMALL, *overrides, output_dir=directory)
    return run(cfg, build_run(cfg))


@pytest.fixture(scope="module")
def ensemble_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ensemble")
    _run(directory, "mechanism=regretnet", "ensemble.size=2")
    return directory / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("overrides, message", [
    (["ensemble.size=3"], r"another setting or architecture \(ensemble.size: 2 in the checkpoint, 3 now\)"),
    (["ensemble.size=1"], r"another setting or architecture \(ensemble.size: 2 in the checkpoint, 1 now\)"),
    (["ensemble.size=2", "ensemble.vary.lr=[0.001,0.003]"], r"differs from the checkpoint's \(ensemble.vary.lr: None"),
    (["ensemble.vary.lambda_init=[1,2,3]", "resume_allow_changes=true", "ensemble.size=3"],
     "another setting or architecture"),
])
def test_a_resume_that_changes_the_members_is_refused_in_one_line(ensemble_checkpoint: Path, overrides: list[str],
                                                                     message: str) -> None:
    cfg = make_config(*SMALL, "mechanism=regretnet", "trainer.max_epochs=2",
                      f"resume={ensemble_checkpoint}", *overrides)
    with pytest.raises(ValueError, match=message) as error:
        build_run(cfg)
    assert "\n" not in str(error.value)


def test_a_single_checkpoint_is_not_resumed_as_an_ensemble(tmp_path: Path) -> None:
    _run(tmp_path / "single", "mechanism=regretnet")
    cfg = make_config(*SMALL, "mechanism=regretnet", "trainer.max_epochs=2", "ensemble.size=2",
                      f"resume={tmp_path / 'single' / 'checkpoints' / 'last.ckpt'}")
    with pytest.raises(ValueError, match=r"ensemble.size: 1 in the checkpoint, 2 now"):
        build_run(cfg)


@pytest.mark.parametrize("overrides, message", [
    (["+ensemble.foo=1"], "ensemble.foo is not a setting of the ensemble node"),
    (["ensemble.size=4096"], "ensemble.size=4096: at most 256 members"),
    (["ensemble.size=2", "callbacks.collapse.on_collapse=restore"], "on_collapse=restore does not apply to an ensemble"),
])
def test_bad_ensemble_settings_fail_before_any_member_is_built(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_run(make_config(*SMALL, "mechanism=regretnet", *overrides))


def test_an_exploding_member_stops_the_run_at_its_first_step(tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged, match="at step 1: non-finite or exploding weights"):
        _run(tmp_path, "mechanism=regretnet", "ensemble.size=2", "ensemble.vary.lr=[0.001,1e30]")


def test_each_member_is_warm_started_as_its_single_run(tmp_path: Path) -> None:
    warm = ["mechanism=regretnet", "init=posted_price", "init_steps=5", "trainer.max_steps=1"]
    members = _run(tmp_path / "ensemble", *warm, "ensemble.size=2")["warm_start"]["members"]
    for k in range(2):
        single = _run(tmp_path / f"single{k}", *warm, f"seed={k}", "data.seed=0")["warm_start"]
        assert members[k]["fit"]["loss_last"] == pytest.approx(single["fit"]["loss_last"], rel=1e-6, abs=1e-9)
        assert members[k]["val_revenue"] == pytest.approx(single["val_revenue"], rel=1e-5, abs=1e-7)
    assert members[0]["fit"]["loss_first"] != members[1]["fit"]["loss_first"]  # each from its own initialization


def test_the_export_never_replaces_a_file_without_force(ensemble_checkpoint: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "member.ckpt"
    out.write_text("an earlier file")
    assert export_main([str(ensemble_checkpoint), "--member", "1", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == "an earlier file"
    assert export_main([str(ensemble_checkpoint), "--member", "1", "--out", str(ensemble_checkpoint), "--force"]) == 2
    assert export_main([str(ensemble_checkpoint), "--member", "1", "--out", str(out), "--force"]) == 0
    assert torch.load(out, weights_only=True)["ensemble_member"]["member"] == 1
