"""Distributed training (DDP on CPU, gloo): processes stay in sync, validation metrics are those of the whole set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed

from adversary.regret import regret
from adversary.search import find_misreports
from tests.test_config import ROOT, make_config
from runs.config import build_components

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or len(__import__("os").sched_getaffinity(0)) < 2,
    reason="needs torch.distributed and 2 CPU cores",
)

DDP_TINY = [
    "data.train_size=64",
    "data.batch_size=8",
    "data.val_size=40",  # 5 validation batches: 3 in the first process, 2 in the second
    "data.val_batch_size=8",
    "data.test_size=8",
    "trainer.max_epochs=2",
    "trainer.check_val_every_n_epoch=1",
    "mechanism.allocation_net.hidden=[16,16]",
    "mechanism.payment_net.hidden=[16,16]",
    "model.train_search.steps=3",
    "model.val_search.steps=3",
    "model.val_search.restarts=2",
    "model.test_search.steps=2",
    "model.test_search.restarts=1",
    "callbacks.rho.every_n_steps=1",
    "callbacks.lagrange.every_n_steps=2",
    "callbacks.progress=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "threads=1",
]


def _whole_validation_set(state: dict, val_step: int) -> dict[str, float]:
    """The validation metrics of the final weights on the whole validation set, in this one process."""
    parts = build_components(make_config(*DDP_TINY))
    model = parts.model
    model.load_state_dict(state)
    parts.datamodule.setup()
    valuations = parts.datamodule.splits["val"].valuations
    revenue, regrets = [], []
    for index, batch in enumerate(valuations.split(8)):
        generator = model.validation_generator(val_step, index)
        misreports = find_misreports(model.mechanism, batch, model.val_search, model.low, model.high, generator)
        with torch.no_grad():
            terms = regret(model.mechanism, batch, misreports)
        revenue.append(terms.payment.sum(-1))
        regrets.append(terms.regret)
    revenue_all, regret_all = torch.cat(revenue).double(), torch.cat(regrets).double()  # (40,), (40, agents)
    assert len(revenue_all) == 40
    return {
        "val/revenue": revenue_all.mean().item(),
        "val/regret_mean_over_agents": regret_all.mean(1).mean().item(),
        "val/regret_sum_over_agents": regret_all.sum(1).mean().item(),
        "val/regret_max": regret_all.max().item(),
    }


def test_two_process_ddp_ranks_agree_and_validate_the_whole_set(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *DDP_TINY, "trainer.accelerator=cpu", "trainer.devices=2",
         "trainer.strategy=ddp", "+callbacks.probe._target_=tests.probes.StateProbe", f"+callbacks.probe.dirpath={probe}",
         f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(probe / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # Sharded training: 8 batches per epoch, 4 to each process, 2 epochs; global steps count a process's steps.
    assert [r["train_batches"] for r in ranks] == [8, 8] and ranks[0]["global_step"] == 8
    # Identical weights, lambda and rho in both processes, and the Lagrange updates did happen.
    a, b = ranks[0]["state_dict"], ranks[1]["state_dict"]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert torch.equal(ranks[0]["lambda"], ranks[1]["lambda"]) and torch.equal(ranks[0]["rho"], ranks[1]["rho"])
    assert float(ranks[0]["rho"]) == 8.0 and bool((ranks[0]["lambda"] > 5.0).all())
    # Both processes logged the same validation metrics: those of the whole validation set in one process.
    truth = _whole_validation_set(a, ranks[0]["val_step"])
    for rank in ranks:
        assert rank["val_metrics"].keys() >= truth.keys()
        for key, value in truth.items():
            assert rank["val_metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    # The test ran once: one table, one metrics.json (in the run directory).
    assert result.stdout.count("test revenue") == 1, result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["n_samples"] == 8 and metrics["lambda"] == ranks[0]["lambda"].tolist()
    assert sorted(p.name for p in tmp_path.rglob("metrics.json")) == ["metrics.json"]
