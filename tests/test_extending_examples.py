"""The worked examples of docs/extending.md: a new mechanism and a new Lagrangian rule, each one file and one YAML
(tests/toy_mechanism.py with tests/conf/mechanism/smooth_reserve.yaml; tests/toy_rule.py with
tests/conf/lagrangian/decaying_dual.yaml), selected by name and trained like the shipped ones."""

import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from baselines.optimal import myerson_revenue
from lagrangian import REGRET_KEY
from mechanisms.ensemble import ensemble_size
from runs.members import build_run
from runs.run import run
from tests.test_config import make_config
from tests.toy_rule import DecayingDualAscent

ROOT = Path(__file__).resolve().parents[1]
SEARCHPATH = f"hydra.searchpath=[file://{ROOT / 'tests' / 'conf'}]"
QUIET = ["callbacks.progress=null", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "~logger",
         "callbacks.heatmaps=null", "callbacks.audit=null"]


@pytest.mark.parametrize("files", [("toy_mechanism.py", "conf/mechanism/smooth_reserve.yaml"),
                                   ("toy_rule.py", "conf/lagrangian/decaying_dual.yaml")])
def test_the_docs_show_each_example_as_it_stands(files: tuple[str, str]) -> None:
    page = (ROOT / "docs" / "extending.md").read_text()
    for name in files:
        assert (ROOT / "tests" / name).read_text() in page, name


def test_the_learned_reserve_reaches_myersons(tmp_path: Path) -> None:
    """One bidder, one item U[0, 1]: the optimal auction is a posted price 1/2 earning 1/4 (Myerson)."""
    cfg = make_config(
        SEARCHPATH, "mechanism=smooth_reserve", "demand=additive", "agents=1", "items=1", "model.lr=0.01",
        "trainer.max_steps=150", "trainer.max_epochs=-1", "data.train_size=8192", "data.batch_size=128",
        "data.val_size=128", "data.test_size=2000", "model.train_search.steps=5", "model.val_search.steps=5",
        "model.val_search.restarts=0", "model.test_search.steps=20", "model.test_search.restarts=2", *QUIET,
        output_dir=tmp_path)
    parts = build_run(cfg)
    metrics = run(cfg, parts)
    assert float(parts.mechanism.reserves) == pytest.approx(0.5, abs=0.03)  # from 0.2
    assert metrics["test"]["revenue_mean"] == pytest.approx(myerson_revenue(1), abs=0.02)
    assert metrics["test"]["regret_mean_over_agents_mean"] < 0.005


class Recorder(pl.Callback):
    """After each batch (and the rule's update): the step, the members' regret (K, agents), lambda and rho."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, i: int) -> None:
        self.steps.append(dict(step=trainer.global_step, regret=outputs[REGRET_KEY].clone(),
                               lam=module.lagrange_multipliers.clone(), rho=module.rho.clone()))


def test_the_rule_moves_every_members_multipliers_as_defined(tmp_path: Path) -> None:
    cfg = make_config(
        SEARCHPATH, "lagrangian=decaying_dual", "lagrangian.lambda_every_n_steps=2", "lagrangian.eta=3.0",
        "mechanism=smooth_reserve", "demand=additive", "agents=2", "items=2", "ensemble.size=2",
        "data.train_size=48", "data.batch_size=8", "data.val_size=8", "data.test_size=8", "trainer.max_epochs=1",
        "model.train_search.steps=3", *QUIET, output_dir=tmp_path)
    parts = build_run(cfg)
    assert ensemble_size(parts.mechanism) == 2 and any(isinstance(c, DecayingDualAscent) for c in parts.callbacks)
    recorder = Recorder()
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         limit_val_batches=0, enable_model_summary=False,
                         callbacks=[c for c in parts.callbacks if isinstance(c, DecayingDualAscent)] + [recorder])
    trainer.fit(parts.model, datamodule=parts.datamodule)
    expected = torch.full((2, 2), 5.0, dtype=torch.float64)  # lagrangian.lambda_init
    for record in recorder.steps:
        if record["step"] % 2 == 0:
            expected += 3.0 / math.sqrt(1 + record["step"] / 2) * record["regret"].double()
        torch.testing.assert_close(record["lam"].double(), expected, rtol=1e-6, atol=1e-6)
        assert torch.equal(record["rho"], torch.ones(2))  # no staircase: rho stays at rho_init
    assert len(recorder.steps) == 6 and not torch.equal(expected, torch.full((2, 2), 5.0, dtype=torch.float64))
