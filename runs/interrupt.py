"""Interrupts (SIGTERM, SIGINT) end a run with a checkpoint, one line and a non-zero status (docs/scaling_out.md).

Lightning alone finishes the epoch on SIGTERM and exits 0, and exits 1 on Ctrl-C without a resumable checkpoint.
:class:`StopOnSignal` instead stops at the end of the current training batch, writes ``checkpoints/last.ckpt`` and
raises :class:`Interrupted` (``train.py``: one line, status ``128 + signal``); under DDP, Lightning raises on every
process at the next batch and the checkpoint is written from ``on_exception``.
"""

from __future__ import annotations

import shlex
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Iterator, Sequence

import lightning.pytorch as pl
from lightning.pytorch.utilities.exceptions import SIGTERMException

__all__ = ["Interrupted", "StopOnSignal", "resume_command", "stop_testing_on_signal"]


class Interrupted(Exception):
    """A run stopped by a signal after saving ``checkpoint`` (``None``: nothing could be saved) at ``step``."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.signal_name = signal.Signals(signum).name  # SIGTERM, SIGINT, ...
        self.exit_status = 128 + signum  # the shell's convention for a process ended by a signal
        super().__init__(f"{self.signal_name} at step {step}")


def resume_command(overrides: Sequence[str] | None, run_dir: Path, checkpoint: Path) -> str:
    """``python train.py <the run's overrides> hydra.run.dir=<run dir> resume=<checkpoint>`` (shell-quoted);
    ``overrides`` ``None``: unknown, shown as ``<your overrides>``."""
    kept = ["<your overrides>"] if overrides is None else [
        shlex.quote(o) for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra.run.dir="))]
    return " ".join(["python train.py", *kept, shlex.quote(f"hydra.run.dir={run_dir}"), shlex.quote(f"resume={checkpoint}")])


class StopOnSignal(pl.Callback):
    """Stop training at the end of the batch during which SIGTERM or SIGINT arrived, after saving ``last.ckpt``
    into ``dirpath`` (``<run dir>/checkpoints``)."""

    def __init__(self, dirpath: Path | str) -> None:
        self.dirpath = Path(dirpath)
        self.signum: int | None = None
        self.saved: Path | None = None
        self._previous_sigint: Any = None

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # the second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.signum, self.saved = None, None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after Lightning's handlers (its teardown restores the one replaced); an ignored SIGINT (nohup) stays so
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _restore(self) -> None:
        if self._previous_sigint is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore()

    def _save(self, trainer: pl.Trainer) -> Path | None:
        if self.saved is None and not trainer.fast_dev_run:
            trainer.save_checkpoint(self.dirpath / "last.ckpt", weights_only=False)
            self.saved = self.dirpath / "last.ckpt"
        return self.saved

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        signum = self.signum if self.signum is not None else int(signal.SIGTERM) if trainer.received_sigterm else None
        if signum is None or (trainer.world_size > 1 and signum == signal.SIGTERM):
            return  # nothing, or DDP's SIGTERM: Lightning raises on every process at the next batch
        raise Interrupted(signum, trainer.global_step, self._save(trainer))

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):  # Lightning's stop (DDP, or during validation)
            self._save(trainer)
        self._restore()  # (Lightning calls no teardown hook after an exception)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        """A run resumed from a mid-epoch checkpoint (e.g. this callback's) goes on with the epoch's next batch:
        the data module's next training loader skips the batches the checkpoint's epoch has processed."""
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress", {})
        done = int(progress.get("current", {}).get("processed", 0))
        if done and hasattr(trainer.datamodule, "resume_batches"):
            trainer.datamodule.resume_batches = done


@contextmanager
def stop_testing_on_signal(step: int, checkpoint: Path | None) -> Iterator[None]:
    """Inside: SIGTERM or SIGINT raises :class:`Interrupted` at once (``step``, ``checkpoint``: the trained run's),
    for the test after training (one long batch; resuming runs it again).  Lightning calls the handler it finds
    after its own.  A signal ignored on entry (``nohup``) stays ignored; the previous handlers come back on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum, step, checkpoint)

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
