"""The evaluate job (`python -m src.evaluate`): decode and score a run's final checkpoint, or any checkpoint on
any data, or rescore saved hypotheses."""

from __future__ import annotations

import contextlib
import logging
import math

from omegaconf import OmegaConf

from src.config import RunSettings, data_config, upgraded, validate
from src.data.loading import build_source
from src.evaluation.records import UPCYCLING_REPORT, TrainSummary, UpcyclingReport
from src.evaluation.run import evaluate_model, rescore_split
from src.models.backbone import load_whisper
from src.pipelines.encoder_cache import states_builder
from src.pipelines.train import upcycled_start
from src.training.distributed import DistInfo, process_device
from src.utils.errors import UserError
from src.utils.runlock import run_lock

log = logging.getLogger(__name__)


def evaluate(run: RunSettings) -> dict:
    """`python -m src.evaluate`: a run dir's final checkpoint and data, or checkpoint= plus data overrides;
    with rescore=true only the saved hypotheses are rescored."""
    ecfg = run.eval
    if run.at_init:
        return evaluate_init(run)
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


# |KL_rebuilt - KL_recorded| allowed: the same draws on another thread count differ in the last digits only
INIT_KL_RTOL, INIT_KL_ATOL = 1e-3, 1e-7


def evaluate_init(run: RunSettings) -> dict:
    """`at_init=true`: the run's upcycled model before its first update, rebuilt by the train job's own steps from
    its config.yaml (same seed, same draws) and decoded into RUN_DIR/init/eval/; what the init costs before any
    training (`eval.task=transcribe`: the pretrained English it keeps). The rebuilt init must reproduce the KL at
    init that the run's upcycling_report.json recorded, else nothing is written; the report gains `init_eval`."""
    out = run.run_dir
    if out is None or not (out / "config.yaml").exists():
        raise UserError(f"at_init=true needs run_dir=DIR, a training run dir with its config.yaml "
                        f"({out / 'config.yaml' if out else 'run_dir not set'} not found)")
    recorded = UpcyclingReport.read(out)
    if recorded is None:
        raise UserError(f"{out / UPCYCLING_REPORT} not found: the run never upcycled; rerun its training command")
    with run_lock(out):
        trained = validate(upgraded(OmegaConf.load(out / "config.yaml")))
        trained.progress = run.progress
        start = upcycled_start(trained, process_device(trained.trainer.device, DistInfo()), None)
        _check_same_init(start.report, recorded, out)
        tables = evaluate_model(start.model, start.tokenizer, start.source, run.eval, out / "init",
                                trained.data.loader, trained.model.pad_to_30s, progress=run.progress,
                                encoder_states_for=start.states_for)
        recorded.init_eval = {"task": run.eval.task, "decoding": _decoding(run.eval),
                              "splits": {split: table[-1] for split, table in tables.items()}}
        recorded.write(out)
    start.source.skips.log_summary(log)
    return tables


def _check_same_init(rebuilt: UpcyclingReport, recorded: UpcyclingReport, out) -> None:
    """The rebuilt init is the run's: the same strategy and, where measured, the same KL at init."""
    kl = [(r.init_loss or {}).get("kl") for r in (rebuilt, recorded)]
    if None in kl:
        same_kl = kl[0] is None and kl[1] is None  # dense: nothing upcycled, nothing measured
    else:
        same_kl = math.isclose(kl[0], kl[1], rel_tol=INIT_KL_RTOL, abs_tol=INIT_KL_ATOL)
    if rebuilt.strategy != recorded.strategy or not same_kl:
        raise UserError(f"{out}: the rebuilt init is not the run's (strategy {rebuilt.strategy} vs "
                        f"{recorded.strategy}, KL at init {kl[0]} vs {kl[1]} recorded in {UPCYCLING_REPORT}); "
                        "the code or the cached model changed since the run: retrain it to measure its init")
    log.info("init rebuilt: %s, KL at init %s (recorded %s)", rebuilt.strategy, kl[0], kl[1])


def _decoding(ecfg) -> str:
    return "greedy" if ecfg.greedy else f"beam {ecfg.beam}"
