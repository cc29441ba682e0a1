"""Shared start-up for the Hydra entry points: logging, validation, one-line errors."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.config import ConfigError, RunSettings, run_dir_of, validate
from src.training.distributed import dist_info
from src.utils.atomic import write_text
from src.utils.errors import Preempted, first_line, user_errors
from src.utils.runlock import RunDirBusy, run_lock
from src.utils.seeding import seed_everything
from src.utils.status import write_status

log = logging.getLogger("upcycle_st")



USER_ERRORS = user_errors()


def in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def _write_status(run_dir: Path, status: str, start: float, error: str | None = None, extra: dict | None = None
                  ) -> None:
    if dist_info().is_main:  # torchrun: rank 0 writes for the job
        write_status(run_dir, status, time.perf_counter() - start, error, extra)


def _report_user_error(e: Exception, run_dir: Path, start: float) -> None:
    """One line on stderr and in the log (`config error: ...` / `error: ...`), and a failed status.json."""
    msg = first_line(e, type(e).__name__)
    prefix = "config error" if isinstance(e, ConfigError) else "error"
    print(f"{prefix}: {msg}", file=sys.stderr)
    if not isinstance(e, ConfigError):
        print("(run with debug=true for the full traceback)", file=sys.stderr)
    log.error("%s: %s", prefix, msg)
    if isinstance(e, RunDirBusy):  # the dir's status.json is its holder's
        return
    with contextlib.suppress(OSError):
        _write_status(run_dir, "failed", start, f"{prefix}: {msg}")


def _report_preempted(e: Preempted, run_dir: Path, start: float) -> None:
    """One line, and status.json `preempted` with the step and the checkpoint a rerun continues from."""
    print(f"preempted: {e}", file=sys.stderr)
    log.warning("preempted: %s", e)
    with contextlib.suppress(OSError):
        _write_status(run_dir, "preempted", start, str(e),
                      {"signal": e.signum, "global_step": e.step, "checkpoint": e.checkpoint})


def _stop_preempted(e: Preempted, run_dir: Path, start: float) -> None:
    """Report, then let the scheduler's own handler act (submitit's SIGUSR2 handler requeues the job into the same
    dir, where the rerun resumes, and exits), else exit 128 + the signal."""
    _report_preempted(e, run_dir, start)
    if e.then is not None:
        e.then(e.signum, None)
    sys.exit(e.exit_code)


def _record_crash(e: BaseException, run_dir: Path, start: float) -> None:
    """status.json `failed` with the exception's type and first line (its traceback is shown by the caller)."""
    with contextlib.suppress(OSError):
        _write_status(run_dir, "failed", start, f"{type(e).__name__}: {first_line(e)}".rstrip(": "))


def _run_job(fn: Callable[[RunSettings], object], cfg: DictConfig, run_dir: Path) -> object:
    """Validate, then hold the run dir (rank 0) while the config is saved and the job runs."""
    run = validate(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir) if dist_info().is_main else contextlib.nullcontext():
        write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        seed_everything(int(cfg.seed))
        if not dist_info().is_main:  # torchrun: rank 0 logs for everyone
            logging.getLogger().setLevel(logging.WARNING)
        return fn(run)


def entry(fn: Callable[[RunSettings], object]) -> Callable[[DictConfig], object]:
    """Validate the config, hold the run dir's lock, save the config resolved into it, run, and turn user errors
    into one line.

    Every job writes status.json: completed, failed (a user error or a crash, with its first line), or preempted
    (a stop signal after a saved checkpoint: exit 128 + the signal number). Under multirun a failing job (a crash's
    traceback goes to the job's log) is marked failed and the sweep goes on; src.entry.callbacks.SweepSummary
    reports it. A preempted job ends the process in every mode: the signal was meant for it.
    """

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig):
        start = time.perf_counter()
        run_dir = run_dir_of(cfg)
        multirun = in_multirun()
        try:
            result = _run_job(fn, cfg, run_dir)
            _write_status(run_dir, "completed", start)
            return result
        except Preempted as e:
            _stop_preempted(e, run_dir, start)
        except USER_ERRORS as e:
            if cfg.get("debug") or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            _report_user_error(e, run_dir, start)
            if multirun:
                return None
            sys.exit(2)
        except (Exception, KeyboardInterrupt) as e:  # a crash: its traceback stays; under multirun the others run
            _record_crash(e, run_dir, start)
            if not multirun or isinstance(e, KeyboardInterrupt):
                raise
            log.exception("job crashed")
            return None

    return wrapper
