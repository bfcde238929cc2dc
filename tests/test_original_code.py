"""The original code's conventions as options: penalty forms of the loss and the original_* presets."""

from pathlib import Path

import pytest
import torch

from tests.test_config import make_config
from runs.config import build_components, validate_config
from lagrangian.loss import lagrangian_loss

CONF = Path(__file__).resolve().parents[1] / "conf"
ORIGINAL = sorted(p.stem for p in (CONF / "experiment").glob("original_*.yaml"))
PAPER = sorted(p.stem for p in (CONF / "experiment").glob("paper_*.yaml"))

# B = 2 profiles, n = 2 agents; per-agent batch means rgt = (0.2, 0.1), batch means of squares (0.05, 0.02).
REVENUE = torch.tensor([0.2, 0.4], dtype=torch.float64)  # mean 0.3
REGRETS = torch.tensor([[0.1, 0.0], [0.3, 0.2]], dtype=torch.float64)
LAMBDA = torch.tensor([1.0, 2.0], dtype=torch.float64)
RHO = torch.tensor(4.0, dtype=torch.float64)


@pytest.mark.parametrize(
    "options, expected",
    [
        # Eq. 1: -0.3 + (1 * 0.2 + 2 * 0.1) + 4/2 * (0.2^2 + 0.1^2) = -0.3 + 0.4 + 0.1
        ({}, 0.2),
        ({"quadratic_penalty": "batch_mean", "penalty_over_agents": "sum"}, 0.2),
        # per-sample squares: -0.3 + 0.4 + 2 * (0.05 + 0.02)
        ({"quadratic_penalty": "per_sample"}, 0.24),
        # mean over agents: -0.3 + (0.4 + 0.1) / 2
        ({"penalty_over_agents": "mean"}, -0.05),
        # the original code, written out: mean_{b,i} lambda_i r = (0.1 + 0 + 0.3 + 0.4) / 4 = 0.2,
        # rho/2 mean_{b,i} r^2 = 2 * (0.01 + 0 + 0.09 + 0.04) / 4 = 0.07; -0.3 + 0.2 + 0.07
        ({"quadratic_penalty": "per_sample", "penalty_over_agents": "mean"}, -0.03),
    ],
)
def test_penalty_options_match_hand_computed_losses(options: dict, expected: float) -> None:
    loss = lagrangian_loss(REVENUE, REGRETS, LAMBDA, RHO, **options)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_penalty_options_keep_the_gradient_path() -> None:
    regrets = REGRETS.clone().requires_grad_(True)
    lagrangian_loss(REVENUE, regrets, LAMBDA, RHO, quadratic_penalty="per_sample", penalty_over_agents="mean").backward()
    # d/dr[b,i] of mean_{b,i} (lambda_i r + rho/2 r^2) = (lambda_i + rho r[b,i]) / (B n)
    assert torch.allclose(regrets.grad, (LAMBDA + RHO * REGRETS) / 4)


@pytest.mark.parametrize("options", [{"quadratic_penalty": "squared"}, {"penalty_over_agents": "max"}])
def test_unknown_penalty_options_are_rejected(options: dict) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        lagrangian_loss(REVENUE, REGRETS, LAMBDA, RHO, **options)


def test_the_model_config_passes_the_options_and_rejects_bad_ones_in_one_line() -> None:
    cfg = make_config("model.quadratic_penalty=per_sample", "model.penalty_over_agents=mean")
    model = build_components(cfg).model
    assert (model.quadratic_penalty, model.penalty_over_agents) == ("per_sample", "mean")
    default = build_components(make_config()).model
    assert (default.quadratic_penalty, default.penalty_over_agents) == ("batch_mean", "sum")  # Eq. 1
    with pytest.raises(ValueError, match="quadratic_penalty must be one of") as error:
        validate_config(make_config("model.quadratic_penalty=bogus"))
    assert "\n" not in str(error.value)


def test_there_is_an_original_preset_for_every_paper_row() -> None:
    assert [name.replace("original_", "") for name in ORIGINAL] == [name.replace("paper_", "") for name in PAPER]


# rho_incr_iter of the row's notebook in github urolyi1/MechanismDesign (unit-demand 1x2: 1, otherwise 2)
RHO_EVERY = {"1x2_unit": 1, "1x2_unit_regretnet": 1}


@pytest.mark.parametrize("preset", ORIGINAL)
def test_original_presets_follow_the_original_code(preset: str) -> None:
    row = preset.replace("original_", "")
    cfg, paper = make_config(f"experiment={preset}"), make_config(f"experiment=paper_{row}")
    # the same setting as the paper's row
    for key in ("agents", "items"):
        assert cfg[key] == paper[key]
    assert (cfg.demand.name, cfg.demand.k, cfg.mechanism._target_) == (
        paper.demand.name, paper.demand.k, paper.mechanism._target_,
    )
    # what the original code does differently
    assert list(cfg.mechanism.allocation_net.hidden) == list(cfg.mechanism.payment_net.hidden) == [128, 128, 128]
    assert (cfg.model.quadratic_penalty, cfg.model.penalty_over_agents) == ("per_sample", "mean")
    assert cfg.callbacks.rho.every_n_steps == RHO_EVERY.get(row, 2)
    # what both do
    assert (cfg.data.train_size, cfg.data.batch_size, cfg.trainer.max_epochs) == (2**19, 4096, 100)
    assert (cfg.model.lambda_init, cfg.model.rho_init, cfg.callbacks.rho.increment) == (5.0, 1.0, 1.0)
    assert cfg.callbacks.lagrange.every_n_steps == 100
    assert (cfg.model.train_search.steps, cfg.model.train_search.lr, cfg.model.lr) == (25, 0.1, 1e-3)
    # kept from the paper: Sinkhorn schedule and test protocol
    assert (cfg.sinkhorn.eps_init, cfg.sinkhorn.eps_final, cfg.sinkhorn.eps_steps, cfg.sinkhorn.tol) == (1.0, 0.05, 10, 0.01)
    assert (cfg.data.test_size, cfg.model.test_search.steps, cfg.model.test_search.restarts) == (1000, 1000, 10)
    validate_config(make_config(f"experiment={preset}", "data.train_size=4096", "data.val_size=4096"))
