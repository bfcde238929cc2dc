"""The SLURM and parallel launcher configs compose (no cluster needed; skipped without their extras)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from tests.test_config import CONF

def _needs_submitit() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason='needs pip install -e ".[cluster]"')


def test_slurm_launcher_composes_with_one_task_per_device() -> None:
    _needs_submitit()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["hydra/launcher=slurm", "trainer=gpu", "trainer.devices=4", "trainer.num_nodes=2",
                       "hydra.launcher.partition=gpu", "output_dir=unused"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert launcher.partition == "gpu" and launcher.timeout_min == 240
    assert launcher.submitit_folder.endswith("/.submitit/%j")


def test_slurm_launcher_cpu_only_job() -> None:
    _needs_submitit()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["hydra/launcher=slurm", "trainer=cpu", "hydra.launcher.gpus_per_node=0", "output_dir=unused"],
            return_hydra_config=True,
        )
    assert (cfg.hydra.launcher.tasks_per_node, cfg.hydra.launcher.gpus_per_node) == (1, 0)


def test_parallel_launcher_composes() -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason='needs pip install -e ".[parallel]"')
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config", overrides=["hydra/launcher=parallel", "hydra.launcher.n_jobs=3", "output_dir=unused"],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher._target_ == "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert cfg.hydra.launcher.n_jobs == 3
