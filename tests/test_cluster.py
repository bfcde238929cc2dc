"""The SLURM launcher config composes (no cluster needed; skipped without the ``cluster`` extra)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from tests.test_config import CONF

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason='needs pip install -e ".[cluster]"')


def test_slurm_launcher_composes_with_one_task_per_device() -> None:
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
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["hydra/launcher=slurm", "trainer=cpu", "hydra.launcher.gpus_per_node=0", "output_dir=unused"],
            return_hydra_config=True,
        )
    assert (cfg.hydra.launcher.tasks_per_node, cfg.hydra.launcher.gpus_per_node) == (1, 0)
