"""Train and test a learned auction: ``python train.py [overrides]`` (see README, "Training").

The configuration is checked before anything runs: a bad setting exits with
one line on stderr and status 2.
"""

from __future__ import annotations

import sys
import warnings

import hydra
from omegaconf import DictConfig

from training.config import validate_config
from training.run import run

# The data lives in memory (on the training device) and is served as whole batches: workers would only add overhead.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
# Under DDP the module logs process-independent values (references, hp_metric) and the test (first process only)
# with plain self.log; the validation metrics are torchmetrics objects, synchronized across processes.
warnings.filterwarnings("ignore", message=r".*It is recommended to use `self.log\(.*sync_dist=True.*")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Validate, train, test; returns the test revenue (the objective for Hydra sweepers; None in a DDP helper process)."""
    try:
        validate_config(cfg)
    except ValueError as error:
        print(f"error: invalid configuration: {error}", file=sys.stderr)
        sys.exit(2)
    metrics = run(cfg)
    return float(metrics["test"]["revenue_mean"]) if metrics else None


if __name__ == "__main__":
    main()
