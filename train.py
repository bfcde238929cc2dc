"""Train and test a learned auction: ``python train.py [overrides]`` (see README, "Training").

The configuration is checked before anything runs: a bad setting exits with
one line on stderr and status 2.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig

from training.config import validate_config
from training.ensemble_config import build_ensemble, ensemble_size
from training.ensemble_run import run_ensemble
from training.run import run

CONF = Path(__file__).resolve().parent / "conf"

# The data lives in memory (on the training device) and is served as whole batches: workers would only add overhead.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
# Under DDP the module logs process-independent values (references, hp_metric) and the test (first process only)
# with plain self.log; the validation metrics are torchmetrics objects, synchronized across processes.
warnings.filterwarnings("ignore", message=r".*It is recommended to use `self.log\(.*sync_dist=True.*")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Validate, train, test; returns the test revenue (the objective for Hydra sweepers; None in a DDP helper process)."""
    try:
        ensemble = ensemble_size(cfg) > 1  # several members trained as one batched model: docs/ensembles.md
        components = build_ensemble(cfg) if ensemble else validate_config(cfg)  # built once, here; the run trains them
    except ValueError as error:
        print(f"error: invalid configuration: {error}", file=sys.stderr)
        sys.exit(2)
    if ensemble:
        return run_ensemble(cfg, components)["ensemble"]["summary"]["revenue_mean_members_mean"]
    metrics = run(cfg, components)
    return float(metrics["test"]["revenue_mean"]) if metrics else None


def validate_sweep(argv: list[str]) -> str | None:
    """For ``-m``/``--multirun``: the first job whose configuration is invalid, as an error line (``None``: all valid).

    Expands the sweep as Hydra's basic sweeper does and validates every job's configuration before the first
    job starts.  Checks that depend on the machine (GPUs, cores) are skipped for other launchers (e.g. SLURM:
    the jobs run elsewhere and validate themselves when they start).
    """
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import open_dict

    overrides = [arg for arg in argv if arg not in ("-m", "--multirun")]
    if any(arg.startswith("-") for arg in overrides):
        return None  # other Hydra flags (--config-name, ...): every job still validates itself
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
        swept = {override.get_key_element() for override in parsed if override.is_sweep_override()}
    except HydraException:
        return None  # Hydra reports its own parse errors
    placeholder = [] if any(o.lstrip("+~").startswith("output_dir=") for o in overrides) else ["output_dir=."]
    for number, job in enumerate(jobs):
        try:
            with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                cfg = compose("config", overrides=[*job, *placeholder], return_hydra_config=True)
        except HydraException:
            return None  # e.g. an unknown config group option: Hydra's own message follows
        basic = str(cfg.hydra.launcher.get("_target_", "")).endswith("BasicLauncher")
        with open_dict(cfg):
            del cfg["hydra"]
        try:
            if basic and (cfg.trainer.get("devices", 1) != 1 or cfg.trainer.get("num_nodes", 1) != 1):
                raise ValueError(
                    "trainer.devices x trainer.num_nodes must be 1 in a local multirun (DDP's helper processes would "
                    "start the sweep again): use hydra/launcher=slurm, or sweep one device per job"
                )
            (build_ensemble if ensemble_size(cfg) > 1 else validate_config)(cfg, check_machine=basic)
        except ValueError as error:
            values = " ".join(o for o in job if o.split("=", 1)[0] in swept)
            return f"error: invalid configuration of job {number} ({values}): {error}; no job was started"
    return None


if __name__ == "__main__":
    if "-m" in sys.argv[1:] or "--multirun" in sys.argv[1:]:
        line = validate_sweep(sys.argv[1:])
        if line is not None:
            print(line, file=sys.stderr)
            sys.exit(2)
    main()
