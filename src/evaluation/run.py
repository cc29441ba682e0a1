"""Evaluation of a model on configured splits: decode, write hypotheses, score, write tables.
Used at the end of training and by `python -m src.evaluate`; rescoring reads the saved TSVs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import transformers

from src.data.config import LoaderConfig
from src.data.encoder_states import EncoderStates
from src.data.loading import make_loader
from src.data.text import is_english_only
from src.evaluation.config import EvalConfig, MetricsConfig
from src.evaluation.generation import RoutingRecorder, decode
from src.evaluation.results import (
    read_hypotheses,
    results_markdown,
    score_with_segments,
    write_hypotheses,
    write_results,
)
from src.utils.atomic import write_json
from src.utils.errors import UserError

log = logging.getLogger(__name__)


def limit_per_direction(examples: list, n: int | None) -> list:
    if n is None:
        return examples
    seen: dict[str, int] = {}
    out = []
    for ex in examples:
        if seen.get(ex.tgt_lang, 0) < n:
            out.append(ex)
            seen[ex.tgt_lang] = seen.get(ex.tgt_lang, 0) + 1
    return out


def task_examples(examples: list, task: str) -> list:
    """translate: the examples as they are; transcribe: one English-transcript example per clip."""
    if task == "translate":
        return examples
    by_clip = {}
    for ex in examples:
        by_clip.setdefault(ex.audio, ex.as_transcription())
    return list(by_clip.values())


def evaluate_model(model, tokenizer, source, cfg: EvalConfig, out_dir: Path, loader_cfg: LoaderConfig,
                   pad_to_30s: bool, progress: bool = True, logger=None,
                   encoder_states_for: Callable[[list], EncoderStates] | None = None) -> dict[str, list[dict]]:
    """Decode and score every split in cfg.splits into out_dir/eval/<split>/; returns the tables.
    ``encoder_states_for``: a frozen encoder's cached outputs for a split's examples (model.cached_encoder)."""
    cfg.check()
    if cfg.task == "translate" and is_english_only(tokenizer):
        raise UserError("the checkpoint is English-only (*.en, no language tokens in its prompt) and cannot "
                         "translate; evaluate it with eval.task=transcribe")
    tables = {}
    transformers.logging.set_verbosity_error()
    for split in cfg.splits:
        examples = limit_per_direction(task_examples(source.examples(split), cfg.task), cfg.max_examples_per_direction)
        if not examples:
            log.warning("split %s has no usable examples; skipped", split)
            continue
        states = encoder_states_for(examples) if encoder_states_for is not None else None
        loader = make_loader(examples, source, tokenizer, cfg.batching(loader_cfg), n_mels=model.config.num_mel_bins,
                             pad_to_30s=pad_to_30s, shuffle=False, encoder_states=states)
        with RoutingRecorder(model) as recorder:
            hyps = decode(model, tokenizer, loader, cfg.decoding, desc=f"decoding {split}", progress=progress,
                          recorder=recorder, skips=source.skips)
        rows: dict[str, list[dict]] = {}
        for ex in examples:
            if ex.id in hyps:
                rows.setdefault(ex.tgt_lang, []).append(
                    {"id": ex.id, "src": ex.sentence, "ref": ex.translation, "hyp": hyps[ex.id]})
        split_dir = Path(out_dir) / "eval" / split
        write_hypotheses(split_dir, rows)
        if recorder.num_experts:  # an MoE model
            write_json(split_dir / "routing.json", recorder.as_dict(), indent=1)
        tables[split] = rescore_split(split_dir, cfg, logger, split)
    return tables


def rescore_split(split_dir: Path, cfg: MetricsConfig, logger=None, split: str = "") -> list[dict]:
    table, segments = score_with_segments(read_hypotheses(split_dir), cfg)
    write_results(split_dir, table, segments)
    log.info("%s results (%s):\n%s", split or split_dir.name, split_dir, results_markdown(table))
    if logger is not None:
        logger.log_table(f"results/{split or split_dir.name}", table)
    return table
