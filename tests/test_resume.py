"""Resume restores every random state it uses and the learning-rate schedule; old-format checkpoints load and resume;
hp_metric at test is the test revenue (issue 10, point 4)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from runs.checkpoints import load_checkpoint
from tests.test_config import make_config
from tests.test_training import TINY
from runs.config import validate_config
from runs.run import run

# Random starts in the training search (the global torch RNG) and in the validation search (seeded generators).
RANDOM = ["model.train_search.restarts=1", "model.val_search.restarts=2", "trainer.check_val_every_n_epoch=1"]


def _fit(directory: Path, epochs: int, resume: Path | None = None) -> tuple[dict, list[dict]]:
    record = directory.parent / f"{directory.name}.jsonl"
    overrides = [*TINY, *RANDOM, f"trainer.max_epochs={epochs}", "+callbacks.record._target_=tests.probes.ValidationRecorder",
                 f"+callbacks.record.path={record}"]
    if resume is not None:
        overrides.append(f"resume={resume}")
    metrics = run(make_config(*overrides, output_dir=directory))
    return metrics, [json.loads(line) for line in record.read_text().splitlines()]


def test_validation_after_a_resume_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    straight, straight_vals = _fit(tmp_path / "straight", 4)
    _fit(tmp_path / "part", 2)  # as if killed after epoch 2: everything after its last checkpoint is lost
    resumed, resumed_vals = _fit(tmp_path / "resumed", 4, resume=tmp_path / "part" / "checkpoints" / "last.ckpt")
    assert [v["step"] for v in straight_vals] == [4, 8, 12, 16] and [v["step"] for v in resumed_vals] == [12, 16]
    for after, before in zip(resumed_vals, straight_vals[2:]):
        assert after == before  # bit for bit: same weights, same training and validation random starts
    assert resumed["test"] == straight["test"]


def test_hp_metric_is_the_test_revenue(tmp_path: Path) -> None:
    metrics = run(make_config(*TINY, output_dir=tmp_path))
    accumulator = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    accumulator.Reload()
    events = sorted(accumulator.Scalars("hp_metric"), key=lambda event: event.wall_time)
    assert events[-1].value == pytest.approx(metrics["test"]["revenue_mean"], rel=1e-6)
    assert events[-1].step == metrics["global_step"]
    assert all(event.step == 0 for event in events if event.value == -1)  # Lightning's placeholders at step 0


COSINE = ["model.lr=0.001", "model.lr_final=0.0001", "trainer.log_every_n_steps=1", "trainer.check_val_every_n_epoch=1"]
# every validation's checkpoint is kept: best-epoch=<e>-step=<s>.ckpt
KEEP_ALL = "callbacks.checkpoint.save_top_k=-1"


def _cosine(step: int, total: int = 16) -> float:
    return 1e-4 + (1e-3 - 1e-4) * 0.5 * (1 + math.cos(math.pi * step / total))


def _learning_rates(directory: Path) -> dict[int, float]:
    """``{step: train/lr}`` as logged to TensorBoard."""
    accumulator = EventAccumulator(str(directory / "tensorboard"), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {event.step: event.value for event in accumulator.Scalars("train/lr")}


def test_the_cosine_learning_rate_resumes_on_the_step(tmp_path: Path) -> None:
    straight = run(make_config(*TINY, *COSINE, KEEP_ALL, "trainer.max_epochs=4", output_dir=tmp_path / "straight"))
    middle = tmp_path / "straight" / "checkpoints" / "best-epoch=1-step=8.ckpt"  # as if killed after epoch 2
    resumed = run(make_config(*TINY, *COSINE, "trainer.max_epochs=4", f"resume='{middle}'", output_dir=tmp_path / "resumed"))
    # the last of 16 steps (index 15) on the cosine of the whole run, in both runs
    assert resumed["fit"]["train/lr"] == straight["fit"]["train/lr"] == pytest.approx(_cosine(15), rel=1e-6)
    assert resumed["test"] == straight["test"]
    # A 2-epoch run continued to 4 epochs: from the step it resumes at, the cosine spans the 4 epochs.
    run(make_config(*TINY, *COSINE, "trainer.max_epochs=2", output_dir=tmp_path / "short"))
    short = tmp_path / "short" / "checkpoints" / "last.ckpt"
    run(make_config(*TINY, *COSINE, "trainer.max_epochs=4", f"resume={short}", output_dir=tmp_path / "longer"))
    whole, longer = _learning_rates(tmp_path / "straight"), _learning_rates(tmp_path / "longer")
    assert len(whole) == 16 and len(longer) == 8 and longer == {step: whole[step] for step in longer}


def _hydra_keys_dropped(node: Any) -> Any:
    """A configuration without Hydra's ``_..._`` keys other than ``_target_``."""
    if isinstance(node, dict):
        return {k: _hydra_keys_dropped(v) for k, v in node.items() if k == "_target_" or not k.startswith("_")}
    return [_hydra_keys_dropped(v) for v in node] if isinstance(node, list) else node


def _old_format(path: Path, out: Path) -> Path:
    """``path`` rewritten as train.py wrote checkpoints before the run configuration kept ``_target_`` (it held
    ``target``, no other ``_..._`` key, no ``model.optimizer``) and before the learning-rate scheduler (no
    scheduler state; the optimizer's learning rate was the one of the last step, ``global_step - 1``)."""

    def renamed(node: Any) -> Any:
        if isinstance(node, dict):
            return {("target" if k == "_target_" else k): renamed(v) for k, v in node.items()}
        return [renamed(v) for v in node] if isinstance(node, list) else node

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    config = renamed(_hydra_keys_dropped(checkpoint["hyper_parameters"]["run_config"]))
    del config["model"]["optimizer"]
    checkpoint["hyper_parameters"]["run_config"] = config
    checkpoint["lr_schedulers"] = []
    for group in checkpoint["optimizer_states"][0]["param_groups"]:
        group.pop("initial_lr")
        group["lr"] = _cosine(checkpoint["global_step"] - 1)
    torch.save(checkpoint, out)
    return out


def test_old_format_checkpoints_load_and_resume(tmp_path: Path) -> None:
    straight = run(make_config(*TINY, *COSINE, KEEP_ALL, "trainer.max_epochs=4", output_dir=tmp_path / "straight"))
    new = tmp_path / "straight" / "checkpoints" / "best-epoch=1-step=8.ckpt"
    old = _old_format(new, tmp_path / "old.ckpt")

    loaded, reference = load_checkpoint(old), load_checkpoint(new)
    expected = _hydra_keys_dropped(reference.config)
    del expected["model"]["optimizer"]
    assert loaded.config == expected  # with its _target_ keys back
    bids = torch.rand(5, 1, 2)
    for got, want in zip(loaded.mechanism(bids), reference.mechanism(bids)):
        assert torch.equal(got, want)

    with pytest.raises(ValueError, match=r"model\.optimizer\._target_: '<absent>' in the checkpoint"):
        validate_config(make_config(*TINY, *COSINE, "trainer.max_epochs=4", f"resume='{old}'"))
    overrides = [*TINY, *COSINE, "trainer.max_epochs=4", f"resume='{old}'", "resume_allow_changes=true"]
    resumed = run(make_config(*overrides, output_dir=tmp_path / "resumed"), validate_config(make_config(*overrides)))
    assert resumed["fit"]["train/lr"] == straight["fit"]["train/lr"]
    assert resumed["test"] == straight["test"]


def test_checkpoints_naming_moved_targets_resume_unchanged(tmp_path: Path) -> None:
    """A checkpoint from before the packages by role names the schedules callbacks.RhoSchedule and
    callbacks.LagrangeUpdate: runs.checkpoints.RENAMED_TARGETS maps them, so it resumes with no change."""
    straight = run(make_config(*TINY, "trainer.max_epochs=2", output_dir=tmp_path / "straight"))
    part = run(make_config(*TINY, "trainer.max_epochs=1", output_dir=tmp_path / "part"))
    assert part["global_step"] == straight["global_step"] // 2
    checkpoint = torch.load(tmp_path / "part" / "checkpoints" / "last.ckpt", weights_only=False)
    callbacks = checkpoint["hyper_parameters"]["run_config"]["callbacks"]
    assert callbacks["rho"]["_target_"] == "lagrangian.RhoSchedule"
    callbacks["rho"]["_target_"], callbacks["lagrange"]["_target_"] = "callbacks.RhoSchedule", "callbacks.LagrangeUpdate"
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    overrides = [*TINY, "trainer.max_epochs=2", f"resume='{old}'"]
    resumed = run(make_config(*overrides, output_dir=tmp_path / "resumed"), validate_config(make_config(*overrides)))
    assert resumed["test"] == straight["test"] and resumed["lambda"] == straight["lambda"]
