"""Metric sinks: a JSONL training log in the run dir always; wandb (offline by default) on request."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal as signal_module
from pathlib import Path

from src.utils.atomic import OutputError, write_text

log = logging.getLogger(__name__)


class ConsoleLogger:
    """Writes metrics to `<run_dir>/metrics.jsonl` and the console log."""

    def __init__(self, log_every_to_console: bool = True) -> None:
        self.to_console = log_every_to_console
        self._fh = None

    def start(self, run_dir: str | Path, config: dict) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        with self._writing():
            self._fh = open(self.path, "a", buffering=1)

    @contextlib.contextmanager
    def _writing(self):
        """A write error (read-only dir, full disk) is one line naming the log, not a traceback mid-step."""
        try:
            yield
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}; free some space or make "
                              f"{self.path.parent} writable, then rerun the same command to continue") from e

    def truncate_after(self, step: int) -> int:
        """Drop the rows logged after ``step`` (a resume replays those steps and logs them again); returns
        how many were dropped. Unparsable lines (a kill mid-write) go too."""
        if self._fh is None:
            return 0
        self._fh.close()
        kept, dropped = [], 0
        for line in self.path.read_text().splitlines():
            try:
                keep = json.loads(line).get("step", 0) <= step
            except (ValueError, AttributeError):
                keep = False
            if keep:
                kept.append(line)
            else:
                dropped += 1
        write_text(self.path, "".join(f"{line}\n" for line in kept))
        self._fh = open(self.path, "a", buffering=1)
        if dropped:
            log.info("metrics.jsonl: %d rows after step %d dropped (they are replayed)", dropped, step)
        return dropped

    def log_metrics(self, metrics: dict, step: int) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        if self._fh is not None:
            with self._writing():
                self._fh.write(json.dumps(record) + "\n")
        if self.to_console:
            log.info("step %d %s", step, " ".join(f"{k}={_fmt(v)}" for k, v in metrics.items()))

    def log_table(self, name: str, rows: list[dict]) -> None:
        pass

    def finish(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class KillAtStep(ConsoleLogger):
    """A resume drill: logs like ConsoleLogger, then sends its own process ``signal`` once step ``step`` is logged:
    KILL (default) is a real `kill -9` (no cleanup, files as the OS has them), TERM / INT / USR2 what a scheduler
    or Ctrl-C sends (the trainer saves and stops), at an exact point, once. Used by the resume tests and
    scripts/gpu_check.py: `logger._target_=src.training.loggers.KillAtStep +logger.step=N [+logger.signal=TERM]`."""

    def __init__(self, step: int, log_every_to_console: bool = True, signal: str = "KILL") -> None:
        super().__init__(log_every_to_console)
        self.step = step
        self.signal = getattr(signal_module, f"SIG{signal.upper().removeprefix('SIG')}")
        self.sent = False

    def log_metrics(self, metrics: dict, step: int) -> None:
        super().log_metrics(metrics, step)
        if step >= self.step and "loss" in metrics and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signal)


class WandbLogger(ConsoleLogger):
    """Also logs to wandb; `mode=offline` needs no account and syncs later with `wandb sync`."""

    def __init__(self, project: str = "upcycle-st", mode: str = "offline", entity: str | None = None,
                 name: str | None = None, tags: list[str] | None = None, log_every_to_console: bool = True) -> None:
        super().__init__(log_every_to_console)
        self.kwargs = {"project": project, "mode": mode, "entity": entity, "name": name, "tags": tags}
        self.run = None

    def start(self, run_dir: str | Path, config: dict) -> None:
        super().start(run_dir, config)
        import wandb

        self.run = wandb.init(dir=str(run_dir), config=config, reinit=True, **self.kwargs)

    def log_metrics(self, metrics: dict, step: int) -> None:
        super().log_metrics(metrics, step)
        if self.run is not None:
            self.run.log({k: _plain(v) for k, v in metrics.items()}, step=step)

    def log_table(self, name: str, rows: list[dict]) -> None:
        if self.run is not None and rows:
            import wandb

            cols = list(rows[0])
            self.run.log({name: wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows])})

    def finish(self) -> None:
        super().finish()
        if self.run is not None:
            self.run.finish()
            self.run = None


def _plain(v):
    try:
        return v.item()
    except AttributeError:
        return v


def _fmt(v) -> str:
    v = _plain(v)
    return f"{v:.4g}" if isinstance(v, float) else str(v)
