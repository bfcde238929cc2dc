"""One training run: build from the config, fit, test, report (the body of ``train.py``).

:func:`run` fits the components :func:`runs.config.validate_config` built, tests the ``cfg.test_checkpoint``
weights, prints :func:`format_table` and writes ``metrics.json``.  Under DDP the test runs once, in the first
process, which alone reports.  An ensemble run (docs/ensembles.md) exports and reports every member.
"""

from __future__ import annotations

import math
import time
from inspect import signature
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from torch.nn.parallel import DistributedDataParallel
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy, Strategy
from lightning.pytorch.utilities import rank_zero_warn
from omegaconf import DictConfig

from callbacks.collapse import CollapseGuard
from callbacks.warm_start import WarmStart
from utils.atomic import write_json
from utils.hardware import describe
from reporting.tables import allocation_tolerance, allocation_warning, baseline_rows
from runs.checkpoints import load_checkpoint
from runs.config import Components, build_components, world_size
from runs.export import export_member
from runs.interrupt import StopOnSignal, stop_testing_on_signal
from runs.members import VARY
from runs.no_revenue import allocated_mass, no_revenue_warning
from training.members import ensemble_summary
from training.metric_logging import best_baseline_reference
from training.validation import measure_member
from utils.checks import finite_or_none

__all__ = ["ensemble_members", "format_ensemble_table", "format_table", "run"]


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


def _checkpoint(trainer: pl.Trainer) -> ModelCheckpoint | None:
    """The checkpoint callback that keeps the best score (the one with a ``monitor``)."""
    return next((c for c in trainer.checkpoint_callbacks if c.monitor is not None), None)


def _save_last(trainer: pl.Trainer) -> Path | None:
    """``checkpoints/last.ckpt`` := the weights at the end of fit (tested as ``last``; the ``latest`` callback's
    may predate them after ``max_time``/``max_steps``); its path, ``None`` without a checkpoint folder or in a
    fast_dev_run.  Every process calls this (DDP)."""
    latest = next((c for c in trainer.checkpoint_callbacks if c.monitor is None and c.dirpath), None)
    if latest is None or trainer.fast_dev_run:
        return None
    path = Path(latest.dirpath) / "last.ckpt"
    trainer.save_checkpoint(path, weights_only=False)  # optimizer etc.: resumable
    return path


def _test_weights(trainer: pl.Trainer, choice: str) -> str | None:
    """Checkpoint path to test (``choice``: last or best, checked by :mod:`runs.config`), or ``None`` for the
    weights in memory (the last ones)."""
    checkpoint = _checkpoint(trainer)
    return (checkpoint.best_model_path or None) if choice == "best" and checkpoint is not None else None


def trainer_strategy(trainer_cfg: DictConfig) -> str | Strategy:
    """``trainer.strategy`` as Lightning takes it: DDP without buffer broadcasts for several processes (every
    buffer is constant or identical in every process, and processes may validate different numbers of batches)."""
    name = str(trainer_cfg.get("strategy", "auto"))
    if name == "ddp" or (name == "auto" and world_size(trainer_cfg) > 1):
        sync = "forward_sync_buffers" if "forward_sync_buffers" in signature(DistributedDataParallel).parameters else "broadcast_buffers"
        return DDPStrategy(**{sync: False})
    return name


def _best_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """The best checkpoint's rows: where the last weights are tested, its validation score beside the last
    validation's (a late collapse shows here); with ``test_checkpoint=both``, its test revenue and regret."""
    rows = []
    best, tested = metrics.get("best_score"), metrics.get("test_best")
    last = metrics.get("fit", {}).get("val/budgeted_revenue")
    if metrics["tested_weights"] == "last" and best is not None and last is not None and math.isfinite(last):
        text = f"{best:.4f} ({Path(metrics['best_checkpoint']).name}); last validation {last:.4f}"
        hint = last < best and not tested  # test_checkpoint=both: its test row follows
        rows.append(("best validation score", text + ("; test_checkpoint=best tests it" if hint else "")))
    if tested:
        rows.append(("best checkpoint, test", f"revenue {tested['revenue_mean']:.4f}, regret (mean over agents) "
                     f"{tested['regret_mean_over_agents_mean']:.4f} ({Path(tested['checkpoint']).name})"))
    return rows


def _test_best(trainer: pl.Trainer, parts: Components) -> dict[str, Any] | None:
    """``test_checkpoint=both``: the best checkpoint's test results (the model keeps the last weights' in
    ``test_results``); ``None`` without a best checkpoint."""
    best = _test_weights(trainer, "best")
    if best is None:
        return None
    last_results = parts.model.test_results
    trainer.test(parts.model, datamodule=parts.datamodule, ckpt_path=best, verbose=False)
    results, parts.model.test_results = parts.model.test_results, last_results
    return {"checkpoint": best, **results}


def format_table(metrics: dict[str, Any]) -> str:
    """A short plain-text table of the final metrics written by :func:`run`."""
    test, refs = metrics["test"], metrics["references"]

    def stat(name: str) -> str:
        extras = ", ".join(f"{k} {test[f'{name}_{k}']:.4f}" for k in ("std", "max") if f"{name}_{k}" in test)
        return f"{test[f'{name}_mean']:.4f} ({extras})"

    optimal = refs.get("reference/optimal_revenue")
    rows = [
        ("setting", metrics["setting"]),
        ("test revenue", stat("revenue")),
        ("regret, mean over agents", stat("regret_mean_over_agents")),
        ("regret, sum over agents", stat("regret_sum_over_agents")),
        ("optimal revenue", "unknown" if optimal is None else f"{optimal:.4f}"),
        ("VCG revenue", f"{refs['reference/vcg_revenue']:.4f}" if "reference/vcg_revenue" in refs else "n/a"),
        *baseline_rows(test["revenue_mean"], best_baseline_reference(refs)),
        ("tested weights", metrics["tested_weights"]),
        *_best_rows(metrics),
        ("wall time", f"{_duration(metrics['wall_time_s'])} (train {_duration(metrics['train_time_s'])}, "
                      f"test {_duration(metrics['test_time_s'])})")]
    rows += [("warning", text) for text in metrics.get("warnings", [])]
    warning = allocation_warning(test.get("allocation_violation_max"), metrics.get("allocation_tolerance"))
    if warning:
        rows.insert(4, ("allocation violation", warning))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def format_ensemble_table(metrics: dict[str, Any]) -> str:
    """One line per member and the summary: test revenue and regret (mean over agents)."""
    lines = [f"{metrics['setting']}: ensemble of {metrics['ensemble']['size']}"]
    for member in metrics["members"]:
        test, varied = member["test"], "".join(f", {k}={v}" for k, v in member["varied"].items())
        lines.append(f"member {member['member']} (seed {member['seed']}{varied}): revenue {test['revenue_mean']:.4f}, "
                     f"regret {test['regret_mean_over_agents_mean']:.5f} (sum over agents "
                     f"{test['regret_sum_over_agents_mean']:.5f}), tested {Path(member['tested_weights']).name}")
    s = metrics["ensemble"]["summary"]
    for name, label in (("revenue_mean", "revenue"), ("regret_mean_over_agents_mean", "regret")):
        lines.append(f"{label}: mean {s[f'{name}_members_mean']:.4f}, sd {s[f'{name}_members_sd']:.4f}, "
                     f"worst {s[f'{name}_members_worst']:.4f}")
    return "\n".join(lines)


def ensemble_members(trainer: pl.Trainer, parts: Components, cfg: DictConfig, saved: Path | None,
                     choice: str) -> dict[str, Any]:
    """After the ensemble's test: export every member, test its best weights when ``choice`` is ``best``;
    ``{"ensemble": {size, data_seed, summary}, "members": [...], "warm_start": ...}`` for ``metrics.json``."""
    model, output, vary = parts.model, Path(cfg.output_dir), cfg.ensemble.get("vary") or {}
    members = []
    for k, config in enumerate(model.hparams["member_configs"]):
        prefix = f"member_{k}/"
        best = next((c for c in trainer.checkpoint_callbacks if c.monitor and c.monitor.startswith(prefix)), None)
        best_path = best.best_model_path if best is not None else ""
        exported = {}
        if saved is not None:
            exported["last"] = str(export_member(saved, k, output / "members" / f"member_{k}.ckpt"))
        if best_path:
            exported["best"] = str(export_member(best_path, k, output / "members" / f"member_{k}-best.ckpt"))
        test, tested = model.test_results["members"][k], "last"
        if choice == "best" and "best" in exported:
            parts.datamodule.setup("test")
            valuations = parts.datamodule.splits["test"].valuations.to(model.device)
            test = measure_member(model, k, valuations, load_checkpoint(exported["best"], model.device).mechanism)
            tested = exported["best"]
        members.append({
            "member": k, "seed": config["seed"],
            "varied": {key: vary[key][k] for key in VARY if vary.get(key) is not None},
            "test": test, "tested_weights": tested, "rho": float(model.rho[k]),
            "lambda": model.lagrange_multipliers[k].tolist(), "best_checkpoint": best_path,
            "best_score": finite_or_none(best.best_model_score) if best else None, "exported": exported})
    summary = ensemble_summary([m["test"] for m in members])
    return {"ensemble": {"size": model.members, "data_seed": cfg.data.seed, "summary": summary},
            "members": members, "warm_start": _warm_start(parts)}


def run(cfg: DictConfig, parts: Components | None = None) -> dict[str, Any]:
    """Train and test the configured mechanism; returns (and writes as ``metrics.json``) the final metrics.
    ``parts``: the components :func:`runs.config.validate_config` built (``None``: built here, unchecked)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    parts = parts or build_components(cfg)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    stop = StopOnSignal(Path(cfg.output_dir) / "checkpoints")  # SIGTERM/SIGINT: last.ckpt, then Interrupted
    trainer: pl.Trainer = instantiate(cfg.trainer, strategy=trainer_strategy(cfg.trainer),
                                      callbacks=[*parts.callbacks, stop], logger=logger)
    trainer.fit(parts.model, datamodule=parts.datamodule, ckpt_path=cfg.get("resume"))
    saved = _save_last(trainer)
    fitted, cpu_fitted = time.perf_counter(), time.process_time()
    fit_metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    choice = cfg.get("test_checkpoint", "last")
    members = parts.model.members  # an ensemble tests its members' last weights here, their best below
    weights = _test_weights(trainer, "last" if choice == "both" or members > 1 else choice)
    with stop_testing_on_signal(trainer.global_step, saved):
        trainer.test(parts.model, datamodule=parts.datamodule, ckpt_path=weights, verbose=False)
        test_best = _test_best(trainer, parts) if choice == "both" and members == 1 else None
        members_report = ensemble_members(trainer, parts, cfg, saved, choice) if members > 1 else None
    done = time.perf_counter()
    if not trainer.is_global_zero:
        return {}
    model, mechanism = parts.model, parts.mechanism
    best = best_baseline_reference(model.references)  # its name joins the references in metrics.json
    metrics: dict[str, Any] = {
        "setting": f"{cfg['agents']} agent(s) x {cfg['items']} item(s), {cfg.demand.name} demand, "
                   f"{type(mechanism).__name__}",
        "fit": fit_metrics,
        "references": {**model.references, **({} if best is None else {"reference/best_truthful_baseline": best[0]})},
        "allocation_tolerance": allocation_tolerance(mechanism), "global_step": trainer.global_step}
    if members_report is None:
        checkpoint = _checkpoint(trainer)
        metrics.update({
            "test": model.test_results, "tested_weights": weights or "last", "rho": float(model.rho),
            "lambda": model.lagrange_multipliers.tolist(),
            "best_checkpoint": checkpoint.best_model_path if checkpoint else "",
            "best_score": finite_or_none(checkpoint.best_model_score) if checkpoint else None, "test_best": test_best,
            "warm_start": _warm_start(parts), "warnings": _warnings(trainer, parts, model.test_results)})
    else:
        metrics.update(members_report)
    metrics.update({
        "train_time_s": fitted - start,
        "train_cpu_s": cpu_fitted - cpu_start,  # this process's CPU time: the train time a loaded CPU does not inflate
        "test_time_s": done - fitted, "wall_time_s": done - start, "hardware": describe(parts.model.device)})
    write_json(Path(cfg.output_dir) / "metrics.json", metrics)
    print(format_table(metrics) if members_report is None else format_ensemble_table(metrics))
    return metrics


def _warm_start(parts: Components) -> dict[str, Any] | None:
    """The warm start's report (:class:`callbacks.warm_start.WarmStart`), ``None`` without one."""
    return next((c.report for c in parts.callbacks if isinstance(c, WarmStart) and c.report), None)


def _warnings(trainer: pl.Trainer, parts: Components, test: dict[str, Any]) -> list[str]:
    """Warnings about the tested mechanism (:mod:`runs.no_revenue`), also written to the log and TensorBoard."""
    datamodule, model = parts.datamodule, parts.model
    valuations = datamodule.splits["test"].valuations.to(model.device)
    scale = float(model.high.mean())
    guard = next((c for c in parts.callbacks if isinstance(c, CollapseGuard) and math.isfinite(c.best)), None)
    warning = no_revenue_warning(float(test["revenue_mean"]), allocated_mass(parts.mechanism, valuations), scale,
                                 None if guard is None else guard.best)
    if warning is None:
        return []
    rank_zero_warn(warning)
    experiment = getattr(trainer.logger, "experiment", None)
    if hasattr(experiment, "add_text"):  # TensorBoard
        experiment.add_text("warnings/no_revenue", warning, global_step=trainer.global_step)
    return [warning]
