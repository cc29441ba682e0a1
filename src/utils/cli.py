"""Shared start-up for the Hydra entry points: logging, validation, one-line errors."""

from __future__ import annotations

import functools
import logging
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from src.config import ConfigError, validate
from src.data.schema import BadExampleError
from src.training.distributed import dist_info

log = logging.getLogger("upcycle_st")



# Errors that are the user's to fix: shown as one line (full traceback with debug=true).
USER_ERRORS = (ConfigError, FileNotFoundError, BadExampleError, OSError, ValueError)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_dir_of(cfg: DictConfig) -> Path:
    """The Hydra run dir of this job (outside Hydra: paths.output_dir)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path(cfg.paths.output_dir)


def entry(fn: Callable[[DictConfig], object]) -> Callable[[DictConfig], object]:
    """Validate the config, save it resolved into the run dir, run, and turn user errors into one line."""

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig):
        try:
            validate(cfg)
            run_dir = run_dir_of(cfg)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
            seed_everything(int(cfg.seed))
            if not dist_info().is_main:  # torchrun: rank 0 logs for everyone
                logging.getLogger().setLevel(logging.WARNING)
            return fn(cfg)
        except USER_ERRORS as e:
            if cfg.get("debug") or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            prefix = "config error" if isinstance(e, ConfigError) else "error"
            print(f"{prefix}: {msg}", file=sys.stderr)
            if not isinstance(e, ConfigError):
                print("(run with debug=true for the full traceback)", file=sys.stderr)
            log.error("%s: %s", prefix, msg)
            sys.exit(2)

    return wrapper
