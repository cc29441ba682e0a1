"""The evaluate job (`python -m src.evaluate`): decode and score a run's final checkpoint, or any checkpoint on
any data, or rescore saved hypotheses."""

from __future__ import annotations

import contextlib
import logging

from omegaconf import OmegaConf

from src.config import RunSettings, data_config
from src.data.loading import build_source
from src.evaluation.records import TrainSummary
from src.evaluation.run import evaluate_model, rescore_split
from src.models.backbone import load_whisper
from src.pipelines.encoder_cache import states_builder
from src.utils.errors import UserError
from src.utils.runlock import run_lock

log = logging.getLogger(__name__)


def evaluate(run: RunSettings) -> dict:
    """`python -m src.evaluate`: a run dir's final checkpoint and data, or checkpoint= plus data overrides;
    with rescore=true only the saved hypotheses are rescored."""
    ecfg = run.eval
    if run.run_dir is not None:
        out = run.run_dir
        if not (out / "config.yaml").exists():
            raise UserError(f"{out / 'config.yaml'} not found: run_dir must be a training run dir")
        saved = OmegaConf.load(out / "config.yaml")  # the run's own data and padding, typed as at its start
        summary = TrainSummary.read(out)
        ckpt = run.checkpoint or (summary.checkpoint_path(out) if summary else None)
        data, pad_to_30s = data_config(saved.data), bool(saved.model.pad_to_30s)
        cached = (bool(saved.model.get("cached_encoder", False)), saved.model.get("encoder_cache_dtype", "float16"))
    else:
        if run.checkpoint is None:
            raise UserError("set run_dir=DIR (a training run) or checkpoint=DIR (a model directory)")
        out, ckpt = run.output_dir, run.checkpoint
        data, pad_to_30s = run.data, run.model.pad_to_30s
        cached = (run.model.cached_encoder, run.model.encoder_cache_dtype)
    if run.rescore:
        return {split: rescore_split(out / "eval" / split, ecfg, split=split) for split in ecfg.splits}
    if ckpt is None:
        raise UserError(f"no checkpoint recorded in {out / 'train_summary.json'}; pass checkpoint=DIR")
    model, tokenizer = load_whisper(ckpt, pad_to_30s=pad_to_30s)
    source = build_source(data)
    # a run trained on cached encoder states is decoded from the same states (the same cache, by key)
    states_for = states_builder(model, tokenizer, source, data, run.paths.cache_dir, cached[1], pad_to_30s,
                                run.progress) if cached[0] else None
    # a training run dir's eval/ is written here: one process in it at a time (this job's own dir is locked already)
    with run_lock(out) if out != run.output_dir else contextlib.nullcontext():
        tables = evaluate_model(model, tokenizer, source, ecfg, out, data.loader, pad_to_30s,
                                progress=run.progress, encoder_states_for=states_for)
    source.skips.log_summary(log)
    return tables
