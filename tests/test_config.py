"""Hydra configuration: every demand x mechanism composes; invalid settings fail early, in one line."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from runs.config import validate_config

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
DEMANDS = sorted(p.stem for p in (CONF / "demand").glob("*.yaml"))
MECHANISMS = sorted(p.stem for p in (CONF / "mechanism").glob("*.yaml"))
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("paper_*.yaml"))
STD_PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("std_additive_*.yaml"))


def make_config(*overrides: str, output_dir: Path | str = "unused") -> DictConfig:
    """Compose ``conf/config.yaml`` with ``overrides`` (Hydra's compose API)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[f"output_dir={output_dir}", *overrides])


def test_groups_are_complete() -> None:
    assert DEMANDS == ["additive", "exactly_k", "k_demand", "unit"]
    assert MECHANISMS == ["lottery_ama", "regretnet", "sequential_menu", "sinkhorn", "sinkhorn_potential"]
    assert {"cpu", "gpu", "default", "debug"} <= {p.stem for p in (CONF / "trainer").glob("*.yaml")}
    assert len(PRESETS) == 9  # the rows of the paper's Tables 1 and 2 (RegretNet exactly-one is N/A)


# With 2 agents and 3 items RegretNet's softmax outputs cannot force "exactly k" for
# several agents, nor cap an agent at k=2 < 3 items (paper section 4.4); Sinkhorn handles all.
REGRETNET_CANNOT = {"exactly_k", "k_demand"}


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("demand", DEMANDS)
def test_every_demand_and_mechanism_composes(demand: str, mechanism: str) -> None:
    cfg = make_config(f"demand={demand}", f"mechanism={mechanism}", "agents=2", "items=3")
    assert cfg.mechanism.demand == demand and cfg.mechanism.n_items == 3
    if mechanism == "regretnet" and demand in REGRETNET_CANNOT:
        with pytest.raises(ValueError, match="RegretNet cannot represent"):
            validate_config(cfg)
    elif mechanism == "sequential_menu" and demand != "exactly_k":
        with pytest.raises(ValueError, match="sequential_menu is for exactly-one demand"):
            validate_config(cfg)
    else:
        validate_config(cfg)


@pytest.mark.parametrize("preset", PRESETS)
def test_paper_presets_match_the_tables(preset: str) -> None:
    cfg = make_config(f"experiment={preset}")
    size = preset.split("_")[1]
    assert f"{cfg.agents}x{cfg['items']}" == size
    assert cfg.mechanism._target_.endswith("RegretNet" if preset.endswith("regretnet") else "SinkhornMechanism")
    assert cfg.demand.name == ("exactly_k" if "exactly_one" in preset else "unit") and cfg.demand.k == 1
    # section 4.5
    assert (cfg.data.train_size, cfg.data.batch_size, cfg.trainer.max_epochs) == (2**19, 4096, 100)
    assert (cfg.model.lr, cfg.model.train_search.steps, cfg.model.train_search.lr) == (1e-3, 25, 0.1)
    assert (cfg.callbacks.rho.every_n_steps, cfg.callbacks.lagrange.every_n_steps) == (2, 100)
    assert (cfg.sinkhorn.eps_init, cfg.sinkhorn.eps_final, cfg.sinkhorn.eps_steps, cfg.sinkhorn.tol) == (
        1.0,
        0.05,
        10,
        0.01,
    )
    assert (cfg.data.test_size, cfg.model.test_search.steps, cfg.model.test_search.restarts) == (1000, 1000, 10)


# RegretNet's released configuration, transcribed from github saisrivatsan/deep-opt-auctions at 466e154,
# regretNet/cfgs/additive_<setting>_uniform_config.py: (num_a_layers = num_p_layers, w_rgt_init_val, update_rate,
# up_op_add, up_op_frequency). 2x5 has no released cfg: its presets take 2x3's (docs/standard_settings.md).
REGRETNET_CFGS = {
    "1x2": (3, 5.0, 1.0, 50.0, 10000),
    "2x2": (3, 5.0, 1.0, 5.0, 10000),
    "2x3": (3, 5.0, 1.0, 10.0, 10000),
    "2x5": (3, 5.0, 1.0, 10.0, 10000),
    "3x10": (6, 5.0, 1.0, 1.0, 10000),
    "5x10": (6, 1.0, 0.25, 0.25, 100000),
}


def test_every_standard_setting_has_both_presets() -> None:
    assert STD_PRESETS == sorted(f"std_additive_{s}{suffix}" for s in REGRETNET_CFGS for suffix in ("", "_regretnet"))


@pytest.mark.parametrize("preset", STD_PRESETS)
def test_standard_presets_follow_regretnets_released_configuration(preset: str) -> None:
    cfg = make_config(f"experiment={preset}")
    validate_config(cfg)
    setting = preset.split("_")[2]
    layers, lambda_init, rho_init, rho_increment, rho_every = REGRETNET_CFGS[setting]
    assert f"{cfg.agents}x{cfg['items']}" == setting and cfg.demand.name == "additive"
    assert cfg.mechanism._target_.endswith("RegretNet" if preset.endswith("regretnet") else "SinkhornMechanism")
    for net in (cfg.mechanism.allocation_net, cfg.mechanism.payment_net):
        assert (list(net.hidden), net.activation) == ([100] * (layers - 1), "tanh")  # hidden layers + output
    # batch 128 x 5000 batches, 400,000 iterations, Adam 1e-3, 25 misreport steps at lr 0.1, cached misreports
    assert (cfg.data.batch_size, cfg.data.train_size, cfg.trainer.max_epochs) == (128, 640_000, 80)
    assert cfg.trainer.max_epochs * cfg.data.train_size // cfg.data.batch_size == 400_000
    assert (cfg.model.lr, cfg.model.train_search.steps, cfg.model.train_search.lr) == (1e-3, 25, 0.1)
    assert cfg.model.train_search.restarts == 0 and cfg.model.persistent_misreports
    # the Lagrangian: lambda += rho * rgt every 100 iterations, rho += up_op_add every up_op_frequency iterations
    assert (cfg.callbacks.lagrange.every_n_steps, cfg.callbacks.rho.every_n_steps) == (100, rho_every)
    assert (cfg.lagrangian.lambda_init, cfg.lagrangian.rho_init, cfg.lagrangian.rho_increment) == (
        lambda_init, rho_init, rho_increment)
    assert (cfg.lagrangian.quadratic_penalty, cfg.lagrangian.penalty_over_agents, cfg.lagrangian.max_rho) == (
        "batch_mean", "sum", None)
    # validation: 20 batches of 128, 2000 steps at lr 0.1, every 10,000 iterations
    assert (cfg.data.val_size, cfg.model.val_search.steps, cfg.model.val_search.lr) == (2560, 2000, 0.1)
    assert cfg.trainer.check_val_every_n_epoch * cfg.data.train_size // cfg.data.batch_size == 10_000


def test_the_searches_sinkhorn_and_test_size_come_from_python() -> None:
    """The composed defaults are the Python constants (runs/config_store.py), and overrides still win."""
    import dataclasses

    from hydra.utils import instantiate

    from adversary.search import TEST_SAMPLES, TEST_SEARCH, TRAIN_SEARCH, VAL_SEARCH
    from mechanisms.sinkhorn import SinkhornSettings
    from adversary.protocol import PAPER_PROTOCOL

    cfg = make_config("experiment=paper")  # the paper's searches (the default job warm-starts a shorter one)
    for key, search in (("train_search", TRAIN_SEARCH), ("val_search", VAL_SEARCH), ("test_search", TEST_SEARCH)):
        node = cfg.model[key]
        assert (node.steps, node.lr, node.restarts) == (search.steps, search.lr, search.restarts), key
        expected = {k: list(v) if isinstance(v, tuple) else v  # a tuple field is a list in the config
                    for k, v in dataclasses.asdict(search).items() if k != "optimizer"}  # adam: the default
        assert OmegaConf.to_container(node) == {"_target_": "adversary.search.MisreportSearch", **expected}, key
        assert instantiate(node) == search, key
    assert cfg.data.test_size == TEST_SAMPLES
    assert PAPER_PROTOCOL.search == TEST_SEARCH
    paper = SinkhornSettings()
    assert OmegaConf.to_container(cfg.sinkhorn) == {
        "_target_": "mechanisms.sinkhorn.SinkhornSettings",
        **{name: getattr(paper, name) for name in ("eps_init", "eps_final", "eps_steps", "tol", "max_iter", "grad")},
    }
    assert instantiate(cfg.sinkhorn) == paper
    assert instantiate(cfg.mechanism).settings == paper
    default = make_config().model
    assert (default.train_search.steps, default.persistent_misreports) == (10, True)
    # a user override still wins over the stored defaults
    cfg = make_config(
        "model.test_search.steps=2", "model.val_search.restarts=1", "sinkhorn.eps_final=0.1", "data.test_size=8"
    )
    assert (cfg.model.test_search.steps, cfg.model.test_search.restarts) == (2, TEST_SEARCH.restarts)
    assert (cfg.model.val_search.restarts, cfg.model.val_search.steps) == (1, VAL_SEARCH.steps)
    assert (cfg.sinkhorn.eps_final, cfg.mechanism.sinkhorn.eps_final, cfg.sinkhorn.tol) == (0.1, 0.1, paper.tol)
    assert cfg.data.test_size == 8
    cfg = make_config("experiment=paper", "model/search@model.train_search=val")  # or choose another stored search
    assert instantiate(cfg.model.train_search) == VAL_SEARCH


def test_command_line_beats_preset() -> None:
    cfg = make_config("experiment=paper_2x3_exactly_one", "demand=unit", "agents=3")
    assert (cfg.demand.name, cfg.agents, cfg.mechanism.n_agents) == ("unit", 3, 3)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["demand=exactly_k", "agents=3", "items=2"], "exactly_k needs items >= sum"),
        (["demand=exactly_k", "demand.k=2", "agents=2", "items=3"], "exactly_k needs items >= sum"),
        (["mechanism=regretnet", "demand=exactly_k", "agents=2", "items=3"], "RegretNet cannot represent"),
        (["sinkhorn.eps_final=0"], "epsilon must be positive"),
        (["sinkhorn.eps_init=-1"], "epsilon must be positive"),
        (["data.batch_size=64", "data.train_size=32"], "batch_size=64"),
        (["demand.name=bogus"], "unknown demand 'bogus'"),
        (["agents=0"], "agents must be"),
        (["demand=k_demand", "demand.k=[1,2,3]", "agents=2"], "3 entries but there are 2 agents"),
        (["data.high=[1.0]", "agents=2"], "1 entries but there are 2 agents"),
        (["model.train_search.steps=-1"], "steps must be"),
        (["trainer.inference_mode=true"], "inference_mode must be false"),
        (["+trainer.gradient_clip_val=1.0"], "manual optimization"),
        (["callbacks.budget.budget=-1"], "budget"),
    ],
)
def test_invalid_settings_are_rejected_in_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        validate_config(make_config(*overrides))
    assert "\n" not in str(error.value)


def _train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_cli_rejects_a_bad_setting_with_one_line(tmp_path: Path) -> None:
    result = _train("demand=exactly_k", "agents=3", "items=2", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: invalid configuration: demand: exactly_k"), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_rejects_an_unknown_group_option_without_traceback(tmp_path: Path) -> None:
    result = _train("demand=bogus", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode != 0
    assert "demand/bogus" in result.stderr and "Traceback" not in result.stderr
