"""benchmarks/run_sweep.py: a run whose training and test outlast their time says so (no audit is attempted)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmarks import run_sweep


@pytest.mark.parametrize(("code", "status"), [(124, "timed out: training and test over 25 min (--test-minutes)"),
                                              (1, "train failed (1)")])
def test_a_run_without_metrics_is_reported_as_timed_out_or_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   code: int, status: str) -> None:
    calls = []
    monkeypatch.setattr(run_sweep, "_call", lambda command, log, timeout: calls.append(timeout) or code)
    run = run_sweep.parse_runs("r cpu seed=0")[0]
    run_sweep.execute(run, tmp_path, argparse.Namespace(minutes=15, test_minutes=10))
    assert run.status == status and calls == [25 * 60]  # the training call only: nothing to audit
    assert status in run_sweep.summary([run])
