"""Resume restores every random state it uses; hp_metric at test is the test revenue (issue 10, point 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.test_config import make_config
from tests.test_training import TINY
from training.run import run

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
