"""Rho schedule, Lagrange update and the regret-budget checkpoint criterion."""

from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from callbacks import RegretBudgetScore, budgeted_score

from lagrangian import LagrangeUpdate, RhoSchedule


class _Buffers(torch.nn.Module):
    def __init__(self, n_agents: int = 2, rho: float = 1.0, lam: float = 5.0) -> None:
        super().__init__()
        self.register_buffer("rho", torch.tensor(rho))
        self.register_buffer("lagrange_multipliers", torch.full((n_agents,), lam))


def _simulate(steps: int, rho_cb: RhoSchedule, lambda_cb: LagrangeUpdate, regret: torch.Tensor):
    """Drive the callbacks like the fit loop: batch start, optimizer step (global_step += 1), batch end."""
    module, trainer = _Buffers(), SimpleNamespace(global_step=0)
    rho_seen = []
    for batch in range(steps):
        rho_cb.on_train_batch_start(trainer, module, None, batch)
        rho_seen.append(float(module.rho))
        trainer.global_step += 1
        lambda_cb.on_train_batch_end(trainer, module, {"regret": regret}, None, batch)
    return module, rho_seen


def test_rho_follows_the_closed_form_schedule() -> None:
    # batch t (0-based) trains with rho = min(1 + 0.5 * floor(t / 2), 3)
    _, rho_seen = _simulate(12, RhoSchedule(0.5, 2, max_rho=3.0), LagrangeUpdate(1000), torch.zeros(2))
    assert rho_seen == [min(1 + 0.5 * (t // 2), 3.0) for t in range(12)]


def test_lambda_accumulates_rho_times_regret_every_n_batches() -> None:
    regret = torch.tensor([0.1, 0.3])
    module, rho_seen = _simulate(10, RhoSchedule(1.0, 2), LagrangeUpdate(3), regret)
    # updates after batches 3, 6, 9 (1-based), each with the rho that batch used
    expected = 5.0 + sum(rho_seen[t - 1] for t in (3, 6, 9)) * regret
    assert torch.allclose(module.lagrange_multipliers, expected)


def test_callbacks_reject_bad_settings_and_outputs() -> None:
    with pytest.raises(ValueError, match="every_n_steps"):
        RhoSchedule(every_n_steps=0)
    with pytest.raises(ValueError, match="increment"):
        RhoSchedule(increment=-1.0)
    with pytest.raises(ValueError, match="regret"):
        LagrangeUpdate(1).on_train_batch_end(SimpleNamespace(global_step=1), _Buffers(), {"loss": 0.0}, None, 0)
    with pytest.raises(ValueError, match="budget"):
        RegretBudgetScore(budget=-0.1)


def test_budgeted_score_ranks_feasible_above_infeasible() -> None:
    assert budgeted_score(0.30, 0.001, budget=0.002) == 0.30
    assert budgeted_score(0.50, 0.003, budget=0.002) == -0.003
    candidates = [(0.40, 0.010), (0.30, 0.002), (0.35, 0.0015), (0.20, 0.0)]
    best = max(candidates, key=lambda c: budgeted_score(*c, budget=0.002))
    assert best == (0.35, 0.0015)  # highest revenue within budget, despite 0.40 over it
    over = [(0.40, 0.010), (0.10, 0.004)]
    assert max(over, key=lambda c: budgeted_score(*c, budget=0.002)) == (0.10, 0.004)


class _Scripted(pl.LightningModule):
    """Logs a scripted (revenue, regret) pair at each validation epoch."""

    def __init__(self, script: list[tuple[float, float]]) -> None:
        super().__init__()
        self.script = script
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        revenue, regret = self.script[self.current_epoch]
        self.log("val/revenue", revenue)
        self.log("val/regret_mean_over_agents", regret)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_checkpoint_keeps_the_best_run_within_budget(tmp_path: Path) -> None:
    script = [(0.20, 0.001), (0.45, 0.010), (0.33, 0.0019), (0.30, 0.0005)]
    loader = torch.utils.data.DataLoader(torch.ones(2, 1), batch_size=1)
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path, filename="best-{epoch}", monitor="val/budgeted_revenue", mode="max", save_last=True
    )
    trainer = pl.Trainer(
        max_epochs=len(script),
        callbacks=[checkpoint, RegretBudgetScore(budget=0.002)],  # checkpoint listed first on purpose
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=1,
        limit_val_batches=1,
    )
    trainer.fit(_Scripted(script), train_dataloaders=loader, val_dataloaders=loader)
    assert Path(checkpoint.best_model_path).name == "best-epoch=2.ckpt"
    assert float(checkpoint.best_model_score) == pytest.approx(0.33)
    assert (tmp_path / "last.ckpt").exists()
