"""evaluate.py: checkpoints reproduce train.py's test, baselines against closed forms, references on the same profiles, errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import evaluate
from datamodules import ValuationDataModule
from runs.checkpoints import load_checkpoint
from runs.evaluation_target import evaluation_target
from tests.brute_force import best_welfare
from tests.test_config import ROOT, make_config
from runs.run import run

TINY = [
    "data.train_size=64",
    "data.batch_size=32",
    "data.val_size=32",
    "data.test_size=24",
    "trainer.max_epochs=2",
    "mechanism.allocation_net.hidden=[16,16]",
    "mechanism.payment_net.hidden=[16,16]",
    "model.train_search.steps=3",
    "model.val_search.steps=2",
    "model.val_search.restarts=1",
    "model.test_search.steps=4",
    "model.test_search.restarts=2",
    "trainer.log_every_n_steps=1",
    "callbacks.progress=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "seed=3",
]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 bidder x 2 items unit-demand Sinkhorn run of a few steps (checkpoints, TensorBoard, metrics.json)."""
    directory = tmp_path_factory.mktemp("run")
    run(make_config(*TINY, output_dir=directory))
    return directory


def _evaluate(*argv: str) -> dict:
    """Run the CLI in-process; returns the JSON it wrote."""
    assert evaluate.main([*argv, "--no-progress"]) == 0
    out = Path(argv[argv.index("--out") + 1])
    return json.loads((out / "evaluation.json").read_text())


def test_checkpoint_evaluation_reproduces_the_test_of_train_py(tiny_run: Path, tmp_path: Path) -> None:
    # Same profiles (the run's seed), same search and random starts: the numbers train.py's Lightning test wrote.
    expected = json.loads((tiny_run / "metrics.json").read_text())["test"]
    report = _evaluate(str(tiny_run / "checkpoints" / "last.ckpt"), "--samples", "24", "--steps", "4", "--restarts", "2",
                       "--batch-size", "24", "--out", str(tmp_path))
    for key in ("revenue_mean", "revenue_std", "regret_sum_over_agents_mean", "regret_mean_over_agents_max"):
        assert report["metrics"][key] == pytest.approx(expected[key], rel=1e-5, abs=1e-8), key
    assert report["metrics"]["revenue_mean"] > 0 and report["metrics"]["n_samples"] == 24
    assert report["protocol"]["seed"] == report["protocol"]["data_seed"] == 3
    assert sorted(report["figures"]) == ["curves.png", "heatmaps.png"]
    for name in report["figures"]:
        assert (tmp_path / name).read_bytes().startswith(PNG)


def test_checkpoint_weights_are_loaded(tiny_run: Path) -> None:
    path = tiny_run / "checkpoints" / "last.ckpt"
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    loaded = load_checkpoint(path)
    assert loaded.run_dir == tiny_run and loaded.data_seed == 3 and not loaded.mechanism.training
    for name, value in loaded.mechanism.state_dict().items():
        assert torch.equal(value, state[f"mechanism.{name}"]), name


def test_test_time_epsilon_is_applied(tiny_run: Path, tmp_path: Path) -> None:
    report = _evaluate(str(tiny_run / "checkpoints" / "last.ckpt"), "--eps-final", "0.01", "--samples", "16",
                       "--steps", "1", "--restarts", "0", "--out", str(tmp_path))
    assert report["setting"]["eps_final"] == 0.01
    default = evaluate._parser().parse_args([str(tiny_run / "checkpoints" / "last.ckpt"), "--eps-final", "0.01"])
    assert evaluation_target(default, torch.device("cpu")).out == tiny_run / "evaluation" / "last_eps0.01"


def _test_split(agents: int, items: int, samples: int, seed: int) -> torch.Tensor:
    data = ValuationDataModule(agents, items, train_size=1, val_size=1, test_size=samples, batch_size=1, seed=seed, device="cpu")
    data.setup()
    return data.splits["test"].valuations.double()


def test_optimal_baseline_matches_the_posted_price_on_the_same_profiles(tmp_path: Path) -> None:
    report = _evaluate("--mechanism", "optimal", "--demand", "unit", "--agents", "1", "--items", "2", "--samples", "3000",
                       "--seed", "5", "--steps", "3", "--restarts", "3", "--out", str(tmp_path))
    values = _test_split(1, 2, 3000, 5)[:, 0]
    price = 1 / math.sqrt(3)
    revenue = price * (values.max(-1).values >= price).double()  # buy the better item iff it is worth the price
    metrics, refs = report["metrics"], report["references"]
    assert refs["optimal_revenue_mean"] == pytest.approx(revenue.mean().item(), abs=1e-6)
    assert metrics["revenue_mean"] == pytest.approx(revenue.mean().item(), abs=1e-6)
    assert metrics["revenue_mean"] == pytest.approx(2 / (3 * math.sqrt(3)), abs=3 * 0.24 / math.sqrt(3000))
    assert refs["optimal_revenue_closed_form"] == pytest.approx(2 / (3 * math.sqrt(3)))
    assert refs["vcg_revenue_mean"] == 0.0  # a lone bidder faces no competition
    assert metrics["regret_sum_over_agents_max"] == 0.0 and metrics["ir_violations"] == 0  # truthful and IR


def test_vcg_baseline_matches_brute_force_clarke_payments(tmp_path: Path) -> None:
    report = _evaluate("--mechanism", "vcg", "--demand", "exactly_k", "--agents", "2", "--items", "3", "--samples", "60",
                       "--seed", "1", "--steps", "2", "--restarts", "2", "--out", str(tmp_path))
    values = _test_split(2, 3, 60, 1).tolist()
    revenues = []
    for profile in values:
        welfare, owners = best_welfare(profile, [0, 1], [1, 1], exact=True)
        chosen = owners[0]
        paid = 0.0
        for agent in (0, 1):
            other = 1 - agent
            alone, _ = best_welfare(profile, [other], [1, 1], exact=True)
            paid += alone - sum(profile[other][j] for j, owner in enumerate(chosen) if owner == other)
        revenues.append(paid)
    expected = torch.tensor(revenues, dtype=torch.float64)
    assert report["metrics"]["revenue_mean"] == pytest.approx(expected.mean().item(), abs=1e-6)
    assert report["references"]["vcg_revenue_mean"] == pytest.approx(expected.mean().item(), abs=1e-6)
    assert report["references"]["optimal_revenue_mean"] is None  # no optimum known for 2 x 3
    assert report["metrics"]["regret_sum_over_agents_max"] == 0.0
    assert report["figures"] == [] and not (tmp_path / "heatmaps.png").exists()  # three items: no heatmaps


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing.ckpt"], "checkpoint not found"),
        ([], "either a checkpoint or --mechanism"),
        (["x.ckpt", "--mechanism", "vcg"], "either a checkpoint or --mechanism"),
        (["--mechanism", "vcg", "--eps-final", "0.01"], "Sinkhorn mechanisms only"),
        (["--mechanism", "optimal", "--agents", "2", "--items", "3"], "no optimal mechanism is known"),
        (["--mechanism", "vcg", "--steps", "-1"], "steps must be an integer >= 0"),
        (["--mechanism", "vcg", "--samples", "0"], "samples must be a positive integer"),
        (["--mechanism", "vcg", "--lr", "0"], "lr must be positive"),
        (["--mechanism", "vcg", "--device", "tpu"], "device"),
        (["--mechanism", "vcg", "--demand", "exactly_k", "--agents", "2", "--items", "1"], "exactly_k needs items"),
        (["--mechanism", "vcg", "--others", "nan"], "--others must be a finite number"),
    ],
)
def test_bad_input_fails_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert evaluate.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_file_that_is_not_a_train_py_checkpoint_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    garbage, foreign = tmp_path / "garbage.ckpt", tmp_path / "foreign.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    torch.save({"state_dict": {}}, foreign)
    assert evaluate.main([str(garbage)]) == 2
    assert "is not a PyTorch checkpoint written by train.py" in capsys.readouterr().err
    assert evaluate.main([str(foreign)]) == 2
    assert "was it written by train.py" in capsys.readouterr().err


def test_the_script_exits_with_status_2_and_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), str(tmp_path / "none.ckpt")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: checkpoint not found: {tmp_path / 'none.ckpt'}"]
