"""benchmarks/bench_step.py never overwrites the recorded results file unless --json names it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench_step():
    spec = importlib.util.spec_from_file_location("bench_step_under_test", ROOT / "benchmarks" / "bench_step.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_default_output_keeps_a_recorded_file(tmp_path: Path) -> None:
    default_output = _bench_step().default_output
    assert default_output(tmp_path, "cpu") == tmp_path / "step_cpu.json"  # nothing recorded yet
    (tmp_path / "step_cpu.json").write_text("{}")
    other = default_output(tmp_path, "cpu")
    assert other.parent == tmp_path and other.name.startswith("step_cpu_") and other.suffix == ".json"
    assert (tmp_path / "step_cpu.json").read_text() == "{}"
