"""Stop signals during training: SIGTERM (what SLURM and most schedulers send before a kill), SIGINT (Ctrl-C)
and SIGUSR2 (submitit's signal before a SLURM time limit or preemption) ask the trainer to finish its step and
save; the trainer then raises src.utils.errors.Preempted and the entry point exits with 128 + the signal.

A second Ctrl-C stops at once (Python's KeyboardInterrupt). After the save, a handler that was installed before
ours (submitit's, which requeues the SLURM job) still runs: `replaced()` hands it to the entry point, which calls it
after writing status.json.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = tuple(s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR2", None)) if s is not None)


class StopSignals:
    """While entered (main thread only: Python delivers signals there), a stop signal is recorded, not fatal."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now, without saving
        self.received = signum
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        log.warning("%s received: finishing this step and saving a checkpoint%s", signal.Signals(signum).name,
                    " (Ctrl-C again stops at once)" if signum == signal.SIGINT else "")

    def replaced(self):
        """The handler ours replaced for the received signal when it is a Python function (submitit's requeue on
        SIGUSR2), to be called once the checkpoint and status.json are written; None for the default actions, which
        are ours to replace, not to run."""
        previous = self._previous.get(self.received) if self.received is not None else None
        return previous if callable(previous) and previous is not signal.default_int_handler else None
