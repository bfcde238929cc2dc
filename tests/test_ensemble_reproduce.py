"""runs.reproduce --seeds: the seeds of a row trained as one ensemble job, tabulated over the seeds."""

import json
import statistics
from pathlib import Path

import pytest

from runs import reproduce
from runs.seeds import parse_seeds, seed_overrides
from reporting.tables import mean_std
from tests.test_reporting import _table_row
from tests.test_training import TINY


@pytest.mark.slow  # a train.py subprocess
def test_reproduction_trains_the_seeds_of_a_row_as_one_ensemble(tmp_path: Path) -> None:
    budget = [override for override in TINY if not override.startswith(("seed", "mechanism.allocation_net", "mechanism.payment_net"))]
    argv = ["paper_1x2_unit", "--seeds", "3,5", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "r.md")]
    assert reproduce.main([*argv, *(f"--override={o}" for o in budget)]) == 0
    metrics = json.loads((tmp_path / "runs" / "paper_1x2_unit" / "metrics.json").read_text())
    assert metrics["ensemble"]["size"] == 2 and metrics["ensemble"]["data_seed"] == 3
    assert [m["seed"] for m in metrics["members"]] == [3, 5]
    revenues = [m["test"]["revenue_mean"] for m in metrics["members"]]
    row = _table_row((tmp_path / "r.md").read_text(), "paper_1x2_unit")
    assert row[1].startswith(mean_std(statistics.mean(revenues), statistics.stdev(revenues)) + " [seeds 3,5")
    assert row[4] == "-"  # an ensemble run is not audited here (its exported members are, with evaluate.py --audit)


def test_seed_lists_are_checked_and_become_overrides() -> None:
    assert seed_overrides(parse_seeds("0,1,2")) == ["seed=0", "ensemble.size=3", "ensemble.vary.seed=[0,1,2]"]
    assert seed_overrides([4]) == ["seed=4"]
    for bad in ("0,0", "a,b", "-1,2"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)
