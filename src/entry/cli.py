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
from src.utils.errors import user_errors
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


def _write_status(run_dir: Path, status: str, start: float, error: str | None = None) -> None:
    if dist_info().is_main:  # torchrun: rank 0 writes for the job
        write_status(run_dir, status, time.perf_counter() - start, error)


def _report_user_error(e: Exception, run_dir: Path, start: float) -> None:
    """One line on stderr and in the log (`config error: ...` / `error: ...`), and a failed status.json."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    prefix = "config error" if isinstance(e, ConfigError) else "error"
    print(f"{prefix}: {msg}", file=sys.stderr)
    if not isinstance(e, ConfigError):
        print("(run with debug=true for the full traceback)", file=sys.stderr)
    log.error("%s: %s", prefix, msg)
    with contextlib.suppress(OSError):
        _write_status(run_dir, "failed", start, f"{prefix}: {msg}")


def entry(fn: Callable[[RunSettings], object]) -> Callable[[DictConfig], object]:
    """Validate the config, save it resolved into the run dir, run, and turn user errors into one line.

    Every job writes status.json. Under multirun a failing job (a user error or a crash, whose traceback goes
    to the job's log) is marked failed and the sweep goes on; src.entry.callbacks.SweepSummary reports it.
    """

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig):
        start = time.perf_counter()
        run_dir = run_dir_of(cfg)
        multirun = in_multirun()
        try:
            run = validate(cfg)
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
            seed_everything(int(cfg.seed))
            if not dist_info().is_main:  # torchrun: rank 0 logs for everyone
                logging.getLogger().setLevel(logging.WARNING)
            result = fn(run)
            _write_status(run_dir, "completed", start)
            return result
        except USER_ERRORS as e:
            if cfg.get("debug") or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            _report_user_error(e, run_dir, start)
            if multirun:
                return None
            sys.exit(2)
        except Exception as e:  # a crash: under multirun the other jobs still run
            if not multirun:
                raise
            log.exception("job crashed")
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            with contextlib.suppress(OSError):
                _write_status(run_dir, "failed", start, f"{type(e).__name__}: {first}")
            return None

    return wrapper
