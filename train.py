"""Train and test a learned auction: ``python train.py [overrides]`` (see docs/training.md).

Exit status: 2 for a bad configuration or a run directory holding another run's results (one line on stderr,
before anything runs); 143 or 130 for SIGTERM or Ctrl-C (:mod:`runs.interrupt`); 3 for a diverged run.  A
multirun with a failed or interrupted job lists the jobs by outcome and exits non-zero.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from training.divergence import TrainingDiverged
from runs.members import build_run
from runs.interrupt import Interrupted, resume_command
from runs.run import run
from runs.run_dir import check_run_dir, claim_run_dir

CONF = Path(__file__).resolve().parent / "conf"

# The data lives in memory and is served as whole batches: workers would only add overhead.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
# Under DDP, plain self.log serves process-independent values; the validation metrics are synchronized torchmetrics.
warnings.filterwarnings("ignore", message=r".*It is recommended to use `self.log\(.*sync_dist=True.*")


DIVERGED = 3  # exit status of a run stopped by training.divergence
JOBS: list[tuple[list[str] | None, str]] = []  # the jobs run so far in this process: (overrides, outcome)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Validate, train, test; returns the test revenue (the objective for Hydra sweepers; None in a DDP helper process)."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None  # None: no Hydra job
    try:
        check_run_dir(cfg.output_dir, cfg.get("resume"))
        components = build_run(cfg)  # built once, here (several members: one batched model, docs/ensembles.md)
        release = claim_run_dir(cfg.output_dir)
    except ValueError as error:
        print(f"error: invalid configuration: {error}", file=sys.stderr)
        JOBS.append((overrides, "refused"))
        sys.exit(2)
    outcome = "failed"  # unless one below
    try:
        metrics, outcome = run(cfg, components), "finished"
    except Interrupted as stop:
        saved = "nothing was saved" if stop.checkpoint is None else f"saved {stop.checkpoint}"
        command = "" if stop.checkpoint is None else (
            f"; resume with: {resume_command(overrides, Path(cfg.output_dir), stop.checkpoint)}")
        print(f"interrupted by {stop.signal_name} at step {stop.step}: {saved}{command}", file=sys.stderr)
        outcome = "interrupted"
        sys.exit(stop.exit_status)
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        outcome = "diverged"
        if HydraConfig.initialized() and HydraConfig.get().mode.name == "MULTIRUN":
            return None  # the other jobs of the sweep still run; the summary reports this one
        sys.exit(DIVERGED)
    finally:
        release()
        JOBS.append((overrides, outcome))
    if metrics and "ensemble" in metrics:
        return metrics["ensemble"]["summary"]["revenue_mean_members_mean"]
    return float(metrics["test"]["revenue_mean"]) if metrics else None


def sweep_jobs(argv: list[str]) -> tuple[list[list[str]], set[str]] | None:
    """The jobs of a ``-m`` command line as Hydra's basic sweeper expands them (overrides of each), and the swept
    keys; ``None`` for other Hydra flags or a line Hydra cannot parse."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    overrides = [arg for arg in argv if arg not in ("-m", "--multirun")]
    if any(arg.startswith("-") for arg in overrides):
        return None
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        jobs = [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
        swept = {override.get_key_element() for override in parsed if override.is_sweep_override()}
    except HydraException:
        return None
    return jobs, swept


def sweep_summary(jobs: list[list[str]] | None, swept: set[str], ran: list[tuple[list[str] | None, str]]) -> str:
    """One line: the sweep's jobs by outcome (finished, diverged, refused, interrupted, never started)."""
    def label(number: int, overrides: list[str] | None) -> str:
        values = [o for o in overrides or [] if o.split("=", 1)[0] in swept]
        return f"#{number}" + (f" ({' '.join(values)})" if values else "")

    outcomes: dict[str, list[str]] = {}
    for number, (overrides, outcome) in enumerate(ran):
        outcomes.setdefault(outcome, []).append(label(number, overrides))
    for number in range(len(ran), len(jobs or [])):
        outcomes.setdefault("never started", []).append(label(number, jobs[number]))
    parts = [f"{outcome} {len(items)}: {', '.join(items)}" for outcome, items in outcomes.items()]
    total = len(jobs) if jobs is not None else len(ran)
    return f"multirun of {total} job(s): " + "; ".join(parts)


def _single_run_dir_check(argv: list[str]) -> str | None:
    """Before Hydra writes its record into an explicit ``hydra.run.dir``: the error line if it holds another run's results."""
    values = dict(arg.split("=", 1) for arg in argv if "=" in arg and not arg.startswith("-"))
    if "hydra.run.dir" not in values:
        return None  # the default run directory is new (its name has microseconds)
    try:
        check_run_dir(values["hydra.run.dir"], values.get("resume"))
    except ValueError as error:
        return f"error: invalid configuration: {error}"
    return None


def validate_sweep(argv: list[str]) -> str | None:
    """For ``-m``/``--multirun``, before the first job starts: the first job (as Hydra's basic sweeper expands
    them) whose configuration is invalid, as an error line (``None``: all valid).  Other launchers (e.g. SLURM)
    skip the machine checks: their jobs validate themselves where they run."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import open_dict

    expanded = sweep_jobs(argv)
    if expanded is None:
        return None  # other Hydra flags, or Hydra's own parse errors: every job still validates itself
    jobs, swept = expanded
    placeholder = [] if any(o.lstrip("+~").startswith("output_dir=") for o in argv) else ["output_dir=."]
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
                raise ValueError("trainer.devices x trainer.num_nodes must be 1 in a local multirun (DDP's helper "
                                 "processes would start the sweep again): use hydra/launcher=slurm, or sweep one "
                                 "device per job")
            build_run(cfg, check_machine=basic)
        except ValueError as error:
            values = " ".join(o for o in job if o.split("=", 1)[0] in swept)
            return f"error: invalid configuration of job {number} ({values}): {error}; no job was started"
    return None


def _main() -> None:
    """The command line: ``logger=null`` (no logger) as Hydra spells it (``~logger``), checks, then Hydra."""
    sys.argv[1:] = ["~logger" if arg in ("logger=null", "logger=None") else arg for arg in sys.argv[1:]]
    argv = sys.argv[1:]
    multirun = "-m" in argv or "--multirun" in argv
    line = validate_sweep(argv) if multirun else _single_run_dir_check(argv)
    if line is not None:
        print(line, file=sys.stderr)
        sys.exit(2)
    if not multirun:
        main()
        return
    jobs, swept = sweep_jobs(argv) or (None, set())
    try:
        main()
    except SystemExit as stop:  # a job was interrupted (or refused): the rest of the sweep does not run
        if stop.code not in (0, None):
            print(sweep_summary(jobs, swept, JOBS), file=sys.stderr)
        raise
    if any(outcome != "finished" for _, outcome in JOBS):  # (empty when another launcher ran the jobs elsewhere)
        print(sweep_summary(jobs, swept, JOBS), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    _main()
