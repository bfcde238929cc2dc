"""benchmarks/ab_checkouts.py: two checkouts' workers take turns and the ratio is that of their medians."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "ab_checkouts.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # two worker processes import torch and the project (about 10 s)
def test_both_checkouts_are_timed_in_turns_and_the_ratio_is_of_the_medians(tmp_path: Path) -> None:
    out = tmp_path / "ab.json"
    done = _run(str(ROOT), str(ROOT), "--mechanism", "lottery_ama", "--batch", "4", "--search-steps", "1",
                "--calls", "3", "--warmup", "0", "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert len(result["times_a"]) == len(result["times_b"]) == 3 and min(result["times_a"] + result["times_b"]) > 0
    assert result["median_s_a"] == statistics.median(result["times_a"])
    assert result["ratio_a_over_b"] == pytest.approx(result["median_s_a"] / result["median_s_b"])
    assert _run(str(ROOT), str(ROOT), "--json", str(out)).returncode == 2  # never over an existing file


def test_a_directory_that_is_not_a_checkout_is_refused_in_one_line(tmp_path: Path) -> None:
    done = _run(str(tmp_path), str(ROOT))
    assert done.returncode == 2 and "is not a checkout of the project" in done.stderr.splitlines()[-1]
