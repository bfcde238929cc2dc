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


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Validate, train, test; returns the test revenue (the objective for Hydra sweepers)."""
    try:
        validate_config(cfg)
    except ValueError as error:
        print(f"error: invalid configuration: {error}", file=sys.stderr)
        sys.exit(2)
    return float(run(cfg)["test"]["revenue_mean"])


if __name__ == "__main__":
    main()
