"""The evaluate job (`python -m src.evaluate`): decode and score a run's final checkpoint, or any checkpoint on
any data, or rescore saved hypotheses."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import OmegaConf

from src.config import RunSettings, run_dir_of
from src.data.loading import build_source, loader_config
from src.evaluation.run import evaluate_model, rescore_split
from src.models.backbone import load_whisper
from src.utils.errors import UserError

log = logging.getLogger(__name__)


def evaluate(run: RunSettings) -> dict:
    """`python -m src.evaluate`: a run dir's final checkpoint and data, or checkpoint= plus data overrides;
    with rescore=true only the saved hypotheses are rescored."""
    cfg, ecfg = run.cfg, run.eval
    if cfg.run_dir:
        out = Path(cfg.run_dir)
        if not (out / "config.yaml").exists():
            raise FileNotFoundError(f"{out / 'config.yaml'} not found: run_dir must be a training run dir")
        run_cfg = OmegaConf.load(out / "config.yaml")
        summary = out / "train_summary.json"
        ckpt = cfg.checkpoint or (json.loads(summary.read_text())["checkpoint"] if summary.exists() else None)
        data_cfg, pad_to_30s = run_cfg.data, bool(run_cfg.model.pad_to_30s)
    else:
        if not cfg.checkpoint:
            raise UserError("set run_dir=DIR (a training run) or checkpoint=DIR (a model directory)")
        out, ckpt = run_dir_of(cfg), cfg.checkpoint
        data_cfg, pad_to_30s = cfg.data, run.model.pad_to_30s
    if cfg.rescore:
        return {split: rescore_split(out / "eval" / split, ecfg, split=split) for split in ecfg.splits}
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint recorded in {out}; pass checkpoint=DIR")
    model, tokenizer = load_whisper(ckpt, pad_to_30s=pad_to_30s)
    source = build_source(data_cfg)
    tables = evaluate_model(model, tokenizer, source, ecfg, out, loader_config(data_cfg), pad_to_30s,
                            progress=run.progress)
    source.skips.log_summary(log)
    return tables
