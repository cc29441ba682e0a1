"""Hydra callbacks: the output dir checked before Hydra writes to it, and the end-of-sweep summary (which
jobs failed, and why) with a non-zero exit if any did."""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from src.training.distributed import dist_info
from src.utils.runlock import RunDirBusy, run_lock
from src.utils.status import job_status, sweep_jobs


def check_writable(directory: str | Path, key: str) -> None:
    """Create ``directory`` and write, fsync and delete a probe file in it; a read-only location or a full disk
    exits with one line naming the dir and the key that sets it (Hydra would otherwise die in a traceback)."""
    d = Path(directory)
    probe = d / f".write-probe-{os.getpid()}"
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    except OSError as e:
        print(f"error: cannot write the output dir {d}: {e.strerror or e}; free some space, make it writable, "
              f"or choose another with {key}=DIR", file=sys.stderr)
        sys.exit(2)


class OutputDirCheck(Callback):
    """Before a run or a sweep: its output dir must be writable (one-line error otherwise); a single run's dir is
    locked before Hydra writes its .hydra/ files and log there (a second process would overwrite them), until the
    run ends (the entry wrapper's own run_lock finds it held by this process)."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        check_writable(config.hydra.run.dir, "hydra.run.dir")
        if not dist_info().is_main:  # torchrun: every rank runs Hydra on one dir; rank 0 holds it
            return
        self._lock = run_lock(config.hydra.run.dir)
        try:
            self._lock.__enter__()
        except RunDirBusy as e:
            self._lock = None
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        atexit.register(self.on_run_end, config)  # a job that ends in sys.exit skips Hydra's on_run_end

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        if getattr(self, "_lock", None) is not None:
            lock, self._lock = self._lock, None
            lock.__exit__(None, None, None)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        check_writable(config.hydra.sweep.dir, "hydra.sweep.dir")


class SweepSummary(Callback):
    """After a multirun: one line per failed job and a count; exits 1 when any job failed."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        if not sweep.is_dir():
            return
        statuses = {d: job_status(d) for d in sweep_jobs(sweep)}  # each status.json read once
        jobs = [d for d, s in statuses.items() if s is not None]
        if not jobs:
            return
        failed = [d for d in jobs if statuses[d].get("status") != "completed"]
        if not failed:
            print(f"sweep {sweep}: all {len(jobs)} jobs completed", file=sys.stderr)
            return
        lines = [f"  #{d.name.split('_', 1)[0]} {d}: {statuses[d].get('error', 'no message')}" for d in failed]
        print(f"sweep {sweep}: {len(failed)}/{len(jobs)} failed:\n" + "\n".join(lines), file=sys.stderr)
        sys.exit(1)
