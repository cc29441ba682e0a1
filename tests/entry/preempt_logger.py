"""A preemption drill for tests/entry/test_submitit_local.py (a helper module, not tests): a ConsoleLogger that sends
its own process SIGUSR2 once step ``step`` is logged, in sweep job number ``job`` only and in its first attempt only
(a marker file in the job dir disarms the requeued attempt). SIGUSR2 is what submitit has SLURM send before a job's
time limit (`--signal=USR2@signal_delay_s`) and what its job environment answers with checkpoint and requeue.

The job processes import it by name: the test puts this directory on their PYTHONPATH and sets
`logger._target_=preempt_logger.PreemptOnce +logger.step=N +logger.job=J`.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from src.training.loggers import ConsoleLogger

MARKER = "preempted_at_step"


class PreemptOnce(ConsoleLogger):
    """Logs like ConsoleLogger; SIGUSR2 to itself after step ``step``, once, in sweep job ``job``."""

    def __init__(self, step: int, job: int = 0, log_every_to_console: bool = True) -> None:
        super().__init__(log_every_to_console)
        self.step, self.job = step, job
        self.armed = False

    def start(self, run_dir: str | Path, config: dict) -> None:
        super().start(run_dir, config)
        self.marker = Path(run_dir) / MARKER
        self.armed = Path(run_dir).name.split("_", 1)[0] == str(self.job) and not self.marker.exists()

    def log_metrics(self, metrics: dict, step: int) -> None:
        super().log_metrics(metrics, step)
        if self.armed and step >= self.step and "loss" in metrics:
            self.armed = False
            self.marker.write_text(str(step))
            os.kill(os.getpid(), signal.SIGUSR2)  # the handler runs here, in the main thread, before the next step
