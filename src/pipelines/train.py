"""The train job (`python -m src.train`): build model and data from the config, upcycle, train, evaluate, save."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra

from src.config import RunSettings
from src.data.loading import build_source, make_loader
from src.evaluation.records import TrainSummary, UpcyclingReport
from src.evaluation.run import evaluate_model
from src.models.backbone import load_whisper
from src.models.upcycling.diagnostics import expert_similarity
from src.models.whisper_moe import moe_blocks
from src.pipelines.builders import load_model, moe_extensions
from src.pipelines.encoder_cache import states_builder
from src.pipelines.upcycle import upcycle
from src.training.distributed import init_distributed, is_sharded, process_device, shutdown
from src.training.selection import dev_requirement
from src.training.trainer import Trainer
from src.utils.errors import UserError
from src.utils.extension import TrainerExtension
from src.utils.machine import machine_info
from src.utils.seeding import seed_everything

log = logging.getLogger(__name__)


def record_after_training(model, report: UpcyclingReport, history: list[dict], run_dir: Path) -> None:
    """Adds each MoE layer's inter-expert similarity after training, and how far each stage moved the experts
    (SPRI: relative to the residual's norm), to the upcycling report."""
    after = {}
    for name, moe in moe_blocks(model):
        cos, overlap = expert_similarity(moe)
        after[name] = {"expert_cosine_mean": cos, "subspace_overlap": overlap}
    movement = {st["stage"]: st["expert_movement"] for st in history if "expert_movement" in st}
    if movement:
        report.stage_movement = movement
    if after:
        report.after_training = after
        report.write(run_dir)


def train(run: RunSettings) -> TrainSummary:
    """Load the model and data, upcycle, train (stages, selection), evaluate the selected weights, summarise."""
    run_dir, tcfg = run.output_dir, run.trainer
    info = init_distributed(tcfg.device)  # torchrun / accelerate: one process per GPU, one run dir for all
    start = upcycled_start(run, process_device(tcfg.device, info), run_dir if info.is_main else None)
    model, tokenizer, source = start.model, start.tokenizer, start.source
    train_loader, dev_loader = loaders(run, model, tokenizer, source, start.train_ex, start.dev_ex, info,
                                       start.states)
    logger = hydra.utils.instantiate(run.logger) if info.is_main else None
    if logger is not None:
        logger.start(run_dir, run.resolved)
    trainer = Trainer(model, tokenizer, tcfg, run_dir, train_loader, dev_loader, logger=logger, skips=source.skips,
                      extensions=moe_extensions(run, model, tokenizer, list(source.directions), start.extensions))
    try:
        history = trainer.fit()
        tables = evaluate_selected(run, model, tokenizer, source, trainer, history, start.report, info, logger,
                                   start.states_for)
    finally:
        if logger is not None:
            logger.finish()
    summary = TrainSummary(
        run_dir=str(run_dir), checkpoint=str(Path(trainer.selection["checkpoint"])), selection=trainer.selection,
        model=start.pretrained, machine=machine_info(), stages=history, train_examples=len(start.train_ex),
        dev_examples=len(start.dev_ex), skipped=source.skips.as_dict(),
        results={split: table[-1] for split, table in tables.items()}, processes=info.world_size)
    if info.is_main:
        source.skips.log_summary(log)
        source.skips.save(run_dir / "skipped.json")
        summary.write(run_dir)
        log.info("checkpoint: %s (%s)", trainer.selection["checkpoint"], trainer.selection["label"])
    return summary


@dataclass
class Start:
    """What training starts from: the upcycled model before its first update, its data and its report."""

    model: Any
    tokenizer: Any
    pretrained: dict  # train_summary.json's `model`: the model actually loaded
    source: Any
    train_ex: list
    dev_ex: list
    states_for: Callable | None  # model.cached_encoder: examples -> their cached encoder states
    states: Any  # the training and dev examples' cached states (None without model.cached_encoder)
    report: UpcyclingReport
    extensions: list[TrainerExtension]  # the strategy's trainer extensions, from its upcycling


def upcycled_start(run: RunSettings, device, report_dir: Path | None) -> Start:
    """Load the model and data and upcycle, as the train job does before its first step; `src.evaluate
    at_init=true` rebuilds a run's init by the same steps (same seed, same draws), checked against its report."""
    model, tokenizer, pretrained = load_model(run)
    seed_everything(run.seed)  # the same random stream whether or not the toy model was just pretrained
    source, train_ex, dev_ex = training_data(run)
    # Every rank upcycles identically (seeded), on its training device (SPRI's search runs ~10 forward passes:
    # on a GPU they take a second, on whisper-base's CPU about 3 minutes); only rank 0 writes files and logs.
    model.to(device)
    states_for = encoder_states_builder(run, model, tokenizer, source)
    states = states_for(train_ex + dev_ex) if states_for else None
    report, extensions = upcycle(model, run, tokenizer, source, train_ex, report_dir)
    log.info("model: %s, %s total / %s active parameters", report.strategy, f"{report.total_parameters:,}",
             f"{report.active_parameters:,}")
    return Start(model, tokenizer, pretrained, source, train_ex, dev_ex, states_for, states, report, extensions)


def training_data(run: RunSettings):
    """(source, train examples, dev examples); stops with one line when training cannot work on them."""
    source = build_source(run.data)
    train_ex, dev_ex = source.examples("train"), source.examples("dev")
    if not train_ex:
        raise UserError(f"no usable training examples (skipped: {source.skips.as_dict()}); check data.root")
    log.info("data: %d train / %d dev examples over %d directions", len(train_ex), len(dev_ex), len(source.directions))
    if not dev_ex and (needs := dev_requirement(run.trainer)):  # before upcycling, which is slow
        raise UserError(f"{needs} needs a dev split: data has none (skipped: {source.skips.as_dict()}); "
                        "set trainer.select=last and trainer.patience=null, or give the data a dev split")
    return source, train_ex, dev_ex


def encoder_states_builder(run: RunSettings, model, tokenizer, source):
    """model.cached_encoder: examples -> their clips' cached encoder states (built once per model, window and clip
    set; shared by every row and seed); None otherwise."""
    if not run.model.cached_encoder:
        return None
    return states_builder(model, tokenizer, source, run.data, run.paths.cache_dir, run.model.encoder_cache_dtype,
                          run.model.pad_to_30s, run.progress)


def loaders(run: RunSettings, model, tokenizer, source, train_ex: list, dev_ex: list, info, states=None):
    """(train loader, sharded over the processes; dev loader or None); ``states``: their cached encoder outputs."""
    lcfg = run.data.loader
    kw = {"n_mels": model.config.num_mel_bins, "pad_to_30s": run.model.pad_to_30s}
    kw["encoder_states"] = states
    train_loader = make_loader(train_ex, source, tokenizer, lcfg, shuffle=True, seed=run.seed,
                               num_replicas=info.world_size, rank=info.rank, **kw)
    # Shuffled with a fixed seed: trainer.max_eval_batches then reads the same subset of dev at every evaluation
    # and in every run, drawn across directions and lengths (unshuffled, the length sort keeps the split's
    # direction-by-direction order where clips are padded to 30 s: the dev loss would read one direction).
    dev_loader = make_loader(dev_ex, source, tokenizer, lcfg, shuffle=True, seed=0, **kw) if dev_ex else None
    return train_loader, dev_loader


def evaluate_selected(run: RunSettings, model, tokenizer, source, trainer: Trainer, history: list[dict],
                      report: dict, info, logger, states_for=None) -> dict:
    """After training: rank 0 evaluates the selected weights (an FSDP shard reloads the saved whole model) and
    adds the experts' state after training to the upcycling report; returns the results tables."""
    shutdown()  # the ranks are done together (fit checked their weights agree); rank 0 evaluates alone
    if not info.is_main:
        return {}
    if is_sharded(model):  # FSDP left rank 0 a shard: evaluate the saved whole model
        model, _ = load_whisper(Path(trainer.selection["checkpoint"]), pad_to_30s=run.model.pad_to_30s,
                                dtype=run.model.dtype)
    run_dir = run.output_dir
    record_after_training(model, report, history, run_dir)
    return evaluate_model(model, tokenizer, source, run.eval, run_dir, run.data.loader,
                          run.model.pad_to_30s, progress=run.progress, logger=logger, encoder_states_for=states_for)
