"""Preemption and Ctrl-C: on SIGTERM, SIGUSR1 or SIGINT, write a resumable checkpoint at the batch
boundary, then exit; and keep ``last.ckpt`` fresh on a G-step and wall-time interval.

How Lightning 2.6 handles these signals by itself (``trainer/connectors/signal_connector.py``):

- SIGTERM: its handler only sets ``trainer.received_sigterm``; the training loop raises
  ``SIGTERMException`` (a ``SystemExit``) at the end of the current batch. Nothing is saved.
- SIGUSR1: handled only on SLURM with auto-requeue, where the handler writes
  ``hpc_ckpt_<n>.ckpt`` *from inside the signal handler* (possibly between the D and the G step of
  a batch) and requeues the job. Elsewhere SIGUSR1 keeps its default action: the process dies.

- SIGINT (Ctrl-C): Python raises ``KeyboardInterrupt`` wherever the code is (possibly inside an
  optimizer step); Lightning catches it, prints "Detected KeyboardInterrupt", exits 1, saves nothing.

This callback builds on that. For SIGTERM it reads ``trainer.received_sigterm``; for the other
signals (SIGUSR1, SIGINT by default) it installs, at train start, a handler that sets a flag and then
calls whatever handler was there (Lightning's SLURM requeue handler, when there is one), except for
SIGINT: the first Ctrl-C only sets the flag (the batch finishes, the checkpoint is written, the run
ends with ``SIGTERMException``); a second Ctrl-C before that raises ``KeyboardInterrupt`` at once.

Between signals, ``last.ckpt`` is also written every ``every_n_g_steps`` G steps and every
``every_minutes`` minutes of training (whichever comes first; None turns either off), at a batch
boundary, so that a kill -9 or a crash loses at most that much. At the end of a
training batch (``on_train_batch_end``: both players have stepped, the counters are up to date,
like a ``ModelCheckpoint(every_n_train_steps=...)`` save) it writes the checkpoint and lets the run
end the way Lightning ends it on SIGTERM (``SIGTERMException``; for SIGUSR1 the callback raises it).

Where: ``path`` when given, else ``last.ckpt`` (``ModelCheckpoint.CHECKPOINT_NAME_LAST``) in the
first ``ModelCheckpoint``'s folder, which is where ``--ckpt_path last`` looks (Lightning resolves
"last" to the newest ``last*.ckpt`` of each ModelCheckpoint's folder). The file is written beside
the target and renamed over it, so a kill during the write leaves the previous ``last.ckpt`` whole;
then every logger's ``after_save_checkpoint`` runs, as after a ModelCheckpoint save (the per-seed
W&B logger makes the history logged so far durable there).

A SIGTERM that arrives during validation (Lightning raises inside the validation loop) is saved
from ``on_exception`` instead, single-process runs only. Under DDP the decision to save is reduced
over ranks each batch (one all-reduce of a flag) so that all ranks take part in the save.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence

from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gan_lab.console import say
from gan_lab.errors import ConfigError, check_int, check_weight
from gan_lab.files import fsync_folder


class PreemptionCheckpoint(Callback):
    """Save a checkpoint that ``--ckpt_path last`` resumes from when the job is told to stop.

    Args:
        path: where to write the checkpoint; None: ``last.ckpt`` in the ModelCheckpoint folder
            (``<default_root_dir>/checkpoints`` when there is none; resume it then by its path).
        signals: the signals that trigger it, by name. ``SIGTERM`` is observed through Lightning's
            own handler; every other one gets a chained handler for the duration of training.
        every_n_g_steps: also write the checkpoint every this many G steps (None: never).
        every_minutes: also write it when this many minutes of training have passed since the
            last write (None: never).

    Attributes:
        saved: ``(signal name, path, global_step)`` of the last preemption save, or None.
    """

    def __init__(
        self,
        path: str | None = None,
        signals: Sequence[str] = ("SIGTERM", "SIGUSR1", "SIGINT"),
        every_n_g_steps: int | None = 500,
        every_minutes: float | None = 10.0,
    ) -> None:
        super().__init__()
        names = [signals] if isinstance(signals, str) else list(signals)
        for name in names:
            if not isinstance(getattr(signal, str(name), None), signal.Signals) or name in (
                "SIGKILL",
                "SIGSTOP",
            ):
                raise ConfigError(f"PreemptionCheckpoint: {name!r} is not a signal that can be caught")
        self.path = None if path is None else os.fspath(path)
        self.signals = tuple(names)
        self.every_n_g_steps = (
            None if every_n_g_steps is None else check_int("every_n_g_steps", every_n_g_steps)
        )
        self.every_minutes = None if every_minutes is None else check_weight("every_minutes", every_minutes)
        self._last_write = time.monotonic()
        self._last_interval_g = -1  # the G step of the last interval save
        self.saved: tuple[str, str, int] | None = None
        self._received: str | None = None
        self._stop: str | None = None
        self._previous: dict[signal.Signals, object] = {}
        self._handler = self._on_signal  # one bound method, so that it can be recognised later
        self._training = False

    # ------------------------------------------------------------------------------------------
    # Signal handlers (other than SIGTERM, which Lightning owns)
    # ------------------------------------------------------------------------------------------

    def _on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if name == "SIGINT":
            if self._received == "SIGINT":  # a second Ctrl-C: stop now, without a checkpoint
                raise KeyboardInterrupt
            self._received = name
            return
        self._received = name
        previous = self._previous.get(signal.Signals(signum))
        if callable(previous):
            previous(signum, frame)

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            rank_zero_warn("PreemptionCheckpoint: not in the main thread, so only SIGTERM is observed")
            return
        for name in self.signals:
            signum = signal.Signals[name]
            if signum == signal.SIGTERM or signum in self._previous:
                continue
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handler)

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            if signal.getsignal(signum) == self._handler and previous is not None:
                signal.signal(signum, previous)
        self._previous = {}

    # ------------------------------------------------------------------------------------------
    # Where and how
    # ------------------------------------------------------------------------------------------

    def checkpoint_path(self, trainer) -> str:
        """The file this callback writes: ``path``, or the ModelCheckpoint folder's ``last.ckpt``."""
        if self.path is not None:
            return self.path
        for cb in trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.dirpath:
                name = cb.CHECKPOINT_NAME_LAST
                if "{" in name:  # a templated last name ("{epoch}-last")
                    metrics = {"epoch": trainer.current_epoch, "step": trainer.global_step}
                    return cb.format_checkpoint_name(metrics, name)
                return os.path.join(cb.dirpath, name + cb.FILE_EXTENSION)
        return os.path.join(trainer.default_root_dir, "checkpoints", "last.ckpt")

    def save(self, trainer, reason: str, announce: bool = True) -> str:
        """Write the checkpoint (all ranks call this; rank 0 writes) and return its path;
        ``announce`` prints where it is and how to resume."""
        path = self.checkpoint_path(trainer)
        for cb in trainer.checkpoint_callbacks:
            # The ModelCheckpoint that owns `last.ckpt` records it as its own (it is part of the
            # saved state), so that it overwrites this file later instead of writing last-v1.ckpt.
            if (
                isinstance(cb, ModelCheckpoint)
                and cb.save_last
                and cb.dirpath
                and os.path.dirname(os.path.abspath(path)) == os.path.abspath(cb.dirpath)
            ):
                cb.last_model_path = path
        local = "://" not in path
        # Beside the target under a name gan_lab.files.clean_orphans knows, then renamed over it:
        # whichever checkpoint writer the trainer has, a kill leaves the previous file whole.
        target = (
            os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.preempt.tmp") if local else path
        )
        trainer.save_checkpoint(target)  # ends with a barrier
        if local and trainer.is_global_zero:
            os.replace(target, path)
            fsync_folder(os.path.dirname(path) or ".")
        for logger in trainer.loggers:  # the per-seed W&B runs make what they logged so far durable
            if hasattr(logger, "log_member_metrics"):  # (Lightning's own loggers expect a ModelCheckpoint)
                logger.after_save_checkpoint(self)
        self._last_write = time.monotonic()
        if not announce:
            return path
        self.saved = (reason, path, trainer.global_step)
        module = trainer.lightning_module
        counters = f"g_steps={getattr(module, 'g_steps', '?')}, d_steps={getattr(module, 'd_steps', '?')}"
        say(
            f"{reason}: saved {path} ({counters}, global_step={trainer.global_step}); "
            "resume with --ckpt_path last (or this path)"
        )
        return path

    # ------------------------------------------------------------------------------------------
    # Hooks
    # ------------------------------------------------------------------------------------------

    def _requested(self, trainer) -> str | None:
        if self._received is not None:
            return self._received
        if "SIGTERM" in self.signals and trainer.received_sigterm:
            return "SIGTERM"
        return None

    def on_train_start(self, trainer, pl_module) -> None:
        # After Lightning registered its handlers (it does so after on_fit_start), so they chain.
        self._training = True
        self._stop: str | None = None  # set once a signal's checkpoint is written
        self._last_write = time.monotonic()
        self._install()

    def _interval_due(self, pl_module) -> tuple[bool, bool]:
        """(the G-step interval is due at this batch, the wall-time interval is due on this rank)"""
        g = getattr(pl_module, "g_steps", 0)
        by_steps = (
            self.every_n_g_steps is not None
            and g > 0
            and g % self.every_n_g_steps == 0
            and g != self._last_interval_g
        )
        by_time = (
            self.every_minutes is not None and time.monotonic() - self._last_write >= 60 * self.every_minutes
        )
        return by_steps, by_time

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        reason = self._requested(trainer)
        by_steps, by_time = self._interval_due(pl_module)
        # One reduction a batch: ranks agree on the G-step interval, not on signals or clocks.
        if not trainer.strategy.reduce_boolean_decision(reason is not None or by_time, all=False):
            if by_steps:
                self._last_interval_g = pl_module.g_steps
                self.save(trainer, "interval", announce=False)
            return
        if not trainer.strategy.reduce_boolean_decision(reason is not None, all=False):
            self._last_interval_g = pl_module.g_steps
            self.save(trainer, "interval", announce=False)
            return
        self.save(trainer, reason or "preemption on another rank")
        if not trainer.received_sigterm:
            # End the run as Lightning ends it on SIGTERM: after this batch's metrics are logged
            # (Lightning logs them after this hook), so at the start of the next batch.
            self._stop = f"{reason}: checkpoint saved"

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._stop is not None:
            raise SIGTERMException(self._stop)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        try:
            if (
                isinstance(exception, SIGTERMException)
                and self._training
                and trainer.world_size == 1
                and self._requested(trainer) is not None
                and (self.saved is None or self.saved[2] != trainer.global_step)
            ):
                self.save(trainer, self._requested(trainer) or "SIGTERM")
        finally:
            self._training = False
            self._restore()

    def on_train_end(self, trainer, pl_module) -> None:
        self._training = False
        self._restore()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._restore()
