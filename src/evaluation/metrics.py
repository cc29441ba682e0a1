"""Scores per direction, one path for training-time and standalone evaluation, and the metric registry
that drives scoring, the results columns and the cross-run comparison: sacrebleu BLEU and chrF (zh/ja
character-level by default, the CoVoST2 convention), COMET (unbabel-comet), and WER (jiwer, after
Whisper's English text normaliser) for the English transcription direction.

Adding a metric is one registration: subclass `Metric`, say what it is (label, tasks, which way is better,
digits, ...), implement `score_direction`, and decorate it with `@register_metric(name)`; results.csv/.md
get its column and, with `compared = True`, the comparison report gets its mean, spread and delta."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import sacrebleu

from src.data.languages import CHAR_LEVEL
from src.evaluation.config import CometConfig, MetricsConfig
from src.utils.registry import make_instance_register

log = logging.getLogger(__name__)


def bleu_tokenizer(lang: str, overrides: dict[str, str] | None = None) -> str:
    if overrides and lang in overrides:
        return overrides[lang]
    return "char" if lang in CHAR_LEVEL else "13a"


def word_error_rate(hyps: list[str], refs: list[str]) -> float | None:
    """Corpus WER x100 after Whisper's English normaliser (as Whisper's papers report it); references that
    normalise to nothing are left out (WER is undefined on them). None when none is left."""
    import jiwer
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    norm = EnglishTextNormalizer({})  # British->American spelling map left empty: references are ours
    pairs = [(norm(h), norm(r)) for h, r in zip(hyps, refs)]
    pairs = [(h, r) for h, r in pairs if r.strip()]
    if not pairs:
        return None
    return 100.0 * jiwer.wer([r for _, r in pairs], [h for h, _ in pairs])


class MetricUnavailable(RuntimeError):
    """The metric cannot run here (no model, offline): an optional metric's note says why, and the other
    metrics are still reported, unless the configuration requires it."""


class CometUnavailable(MetricUnavailable):
    pass


def _comet_checkpoint(name_or_path: str) -> str:
    if os.path.isdir(name_or_path):
        ckpt = os.path.join(name_or_path, "checkpoints", "model.ckpt")
        if os.path.exists(ckpt):
            return ckpt
        raise CometUnavailable(f"{name_or_path} has no checkpoints/model.ckpt")
    if os.path.exists(name_or_path):
        return name_or_path
    from comet import download_model

    return download_model(name_or_path)


def comet_scores(srcs: list[str], hyps: list[str], refs: list[str], cfg: CometConfig) -> list[float]:
    """Segment COMET scores x100; raises CometUnavailable with the reason when it cannot run."""
    if not cfg.model:
        raise CometUnavailable("eval.comet.model is null")
    try:
        import comet
        import torch

        logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
        model = comet.load_from_checkpoint(_comet_checkpoint(cfg.model))
        gpus = cfg.gpus if cfg.gpus is not None else int(torch.cuda.is_available())
        data = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(srcs, hyps, refs)]
        out = model.predict(data, batch_size=cfg.batch_size, gpus=gpus, progress_bar=False)
    except CometUnavailable:
        raise
    except Exception as e:  # offline hub, missing package, bad checkpoint: reported, not fatal
        raise CometUnavailable(f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}") \
            from e
    scores = [100.0 * float(s) for s in out.scores]
    if not all(math.isfinite(s) for s in scores):
        raise CometUnavailable("COMET returned non-finite scores")
    return scores


# --- The registry -----------------------------------------------------------------------------------------

TRANSLATE, TRANSCRIBE = "translate", "transcribe"
_TASK_NOUN = {TRANSLATE: "translation", TRANSCRIBE: "transcription"}


def direction_task(direction: str) -> str:
    """CoVoST2's English direction `en` is transcription (ASR); every En->X direction is translation."""
    return TRANSCRIBE if direction == "en" else TRANSLATE


@dataclass(frozen=True)
class Segments:
    """One direction's segments, in the order of its hypotheses file: what a metric scores."""

    lang: str
    srcs: list[str]
    hyps: list[str]
    refs: list[str]


class Score(NamedTuple):
    """A direction's corpus score (None: undefined there), for a metric with a signature its signature, and
    for a metric whose corpus score is the mean of segment scores that cost a model to compute (COMET) the
    segment scores, kept (segment_scores.json) so that intervals need no second pass of the model."""

    value: float | None
    signature: str = ""
    segments: tuple[float, ...] | None = None


NO_SCORE = Score(None)


class Metric:
    """One metric's definition; everything that writes or compares scores asks the registry, so a metric
    is described here once. Subclass, set the attributes, implement `score_direction` (or `score_split`
    for a metric that scores all directions in one pass), and register with `@register_metric(name)`."""

    name: str = ""  # the results column and the prefix of its comparison columns (set by register_metric)
    label: str = ""  # how tables, notes and plots name it
    # The directions it scores (by direction_task); the average row is over the first of these tasks that
    # the split has (BLEU: the translations, or the transcription in a transcription-only evaluation).
    tasks: tuple[str, ...] = (TRANSLATE, TRANSCRIBE)
    higher_is_better: bool = True  # which way a significant difference counts as better
    digits: int = 2  # decimals in results.md and the comparison (per-direction comparison cells: one fewer)
    signature: bool = False  # writes `<name>_signature` per direction, listed under results.md
    optional: bool = False  # may be unavailable (MetricUnavailable): `<name>_note` says why, the rest is reported
    compared: bool = False  # in the cross-run comparison: mean ± std over seeds and Δ vs the baseline
    headline: bool = False  # the comparison's lead: its per-direction columns, bar plot and paired bootstrap

    @property
    def signature_column(self) -> str:
        return f"{self.name}_signature"

    @property
    def note_column(self) -> str:
        return f"{self.name}_note"

    def score_direction(self, seg: Segments, cfg: MetricsConfig) -> Score:
        """The corpus score of one direction."""
        raise NotImplementedError

    def score_split(self, split: dict[str, Segments], cfg: MetricsConfig) -> dict[str, Score]:
        """Scores of the directions it applies to (the split's order); default: each on its own."""
        return {lang: self.score_direction(seg, cfg) for lang, seg in split.items()}

    def switched_off(self, cfg: MetricsConfig) -> str | None:
        """Why the configuration turns an optional metric off (its note; never fatal); None: it runs."""
        return None

    def required(self, cfg: MetricsConfig) -> bool:
        """True: an optional metric's MetricUnavailable fails the evaluation instead of becoming a note."""
        return False

    def paired_metric(self, lang: str, cfg: MetricsConfig) -> sacrebleu.metrics.base.Metric:
        """The sacrebleu metric for the comparison's paired bootstrap (the headline metric's), as the run
        scored it (cfg: the run's eval settings, e.g. its tokenizer overrides)."""
        raise NotImplementedError(f"{self.name} has no paired significance test")

    def segment_stats(self, seg: Segments, cfg: MetricsConfig) -> np.ndarray | None:
        """Per-segment sufficient statistics, (segments, k): their column sums over any subset of segments give
        that subset's corpus score through `corpus_from_stats` (what the bootstrap resamples). None: this metric
        cannot be recomputed from the text alone (its stored segment scores are used, if any)."""
        return None

    def corpus_from_stats(self, summed: np.ndarray, n: int) -> np.ndarray:
        """Corpus scores from summed statistics, (..., k) -> (...); default: the mean of segment scores."""
        return summed[..., 0] / n

    def scores_and_note(self, split: dict[str, Segments], cfg: MetricsConfig) -> tuple[dict[str, Score], str]:
        """Scores of the directions in its tasks and the split's note: why there are none, or ''."""
        mine = {lang: seg for lang, seg in split.items() if direction_task(lang) in self.tasks}
        if not mine:
            present = [_TASK_NOUN[t] for t in _TASK_NOUN if any(direction_task(d) == t for d in split)]
            return {}, f"not applicable: {' and '.join(present)} only" if present else ""
        if self.optional and (reason := self.switched_off(cfg)):
            return {}, f"unavailable: {reason}"
        try:
            return self.score_split(mine, cfg), ""
        except MetricUnavailable as e:
            if not self.optional or self.required(cfg):
                raise
            log.warning("%s unavailable: %s (the other metrics still reported)", self.label, e)
            return {}, f"unavailable: {e}"

    def average(self, rows: list[dict]) -> float | None:
        """The average row's value: the mean over the directions of the first of its tasks that `rows`
        has, directions without a value left out; None when none has one."""
        for task in self.tasks:
            own = [r for r in rows if direction_task(r["direction"]) == task]
            if own:
                values = [r[self.name] for r in own if r[self.name] is not None]
                return sum(values) / len(values) if values else None
        return None


METRICS: dict[str, Metric] = {}


# Registers one instance of the class (metrics are stateless); registration order is column order.
register_metric = make_instance_register(METRICS)


def compared_metrics() -> list[Metric]:
    """The metrics in the cross-run comparison, registry order (the headline always among them)."""
    return [m for m in METRICS.values() if m.compared or m.headline]


def headline_metric() -> Metric:
    """The metric the comparison leads with and tests for significance: one, so the report's per-direction
    columns, bar plot and sig. +/- columns all speak of the same metric."""
    heads = [m for m in METRICS.values() if m.headline]
    if len(heads) != 1:
        raise RuntimeError(f"exactly one registered metric must be the headline, got {[m.name for m in heads]}")
    return heads[0]


# --- The metrics (registration order is the results' column order) -----------------------------------------


@register_metric("bleu")
class Bleu(Metric):
    """Corpus BLEU, case-sensitive on detokenised text, tokenizer per language (bleu_tokenizer)."""

    label = "BLEU"
    signature = True
    compared = True
    headline = True

    def paired_metric(self, lang: str, cfg: MetricsConfig) -> sacrebleu.metrics.base.Metric:
        return sacrebleu.metrics.BLEU(tokenize=bleu_tokenizer(lang, cfg.bleu_tokenize))

    def score_direction(self, seg: Segments, cfg: MetricsConfig) -> Score:
        bleu = self.paired_metric(seg.lang, cfg)
        return Score(bleu.corpus_score(seg.hyps, [seg.refs]).score, str(bleu.get_signature()))

    def segment_stats(self, seg: Segments, cfg: MetricsConfig) -> np.ndarray:
        """sacrebleu's own statistics per segment: hyp length, ref length, matching and total n-grams (1-4)."""
        stats = self.paired_metric(seg.lang, cfg)._extract_corpus_statistics(seg.hyps, [seg.refs])
        return np.asarray(stats, dtype=np.float64).reshape(len(seg.hyps), 2 + 2 * BLEU_ORDER)

    def corpus_from_stats(self, summed: np.ndarray, n: int) -> np.ndarray:
        return bleu_from_stats(summed)


BLEU_ORDER = sacrebleu.metrics.bleu.MAX_NGRAM_ORDER


def bleu_from_stats(stats: np.ndarray) -> np.ndarray:
    """sacrebleu's corpus BLEU (BLEU.compute_bleu: `exp` smoothing, no effective order) from summed segment
    statistics (..., 2 + 2 * order), vectorised over the leading axes, for thousands of bootstrap draws."""
    sys_len, ref_len = stats[..., 0], stats[..., 1]
    correct, total = stats[..., 2:2 + BLEU_ORDER], stats[..., 2 + BLEU_ORDER:]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        bp = np.where(sys_len < ref_len, np.where(sys_len > 0, np.exp(1 - ref_len / sys_len), 0.0), 1.0)
        zero = correct == 0
        smooth = 2.0 ** np.cumsum(zero, axis=-1)  # mteval's smoothing: halve again at each order without a match
        prec = np.where(zero, 100.0 / (smooth * total), 100.0 * correct / total)
        prec = np.where(np.cumprod(total > 0, axis=-1).astype(bool), prec, 0.0)  # orders past an empty one: 0
        logs = np.where(prec > 0, np.log(np.where(prec > 0, prec, 1.0)), -9999999999.0)  # sacrebleu's my_log
    score = bp * np.exp(logs.mean(axis=-1))
    return np.where(correct.sum(axis=-1) == 0, 0.0, score)


@register_metric("chrf")
class Chrf(Metric):
    label = "chrF"

    def score_direction(self, seg: Segments, cfg: MetricsConfig) -> Score:
        return Score(sacrebleu.metrics.CHRF().corpus_score(seg.hyps, [seg.refs]).score)


@register_metric("comet")
class Comet(Metric):
    """The mean segment COMET of a direction; a translation metric (it needs a source and a translation)."""

    label = "COMET"
    tasks = (TRANSLATE,)
    optional = True
    compared = True

    def switched_off(self, cfg: MetricsConfig) -> str | None:
        return None if cfg.comet.model else "eval.comet.model is null"

    def required(self, cfg: MetricsConfig) -> bool:
        return cfg.comet.required

    def score_split(self, split: dict[str, Segments], cfg: MetricsConfig) -> dict[str, Score]:
        """One pass over every direction's segments: the model loads once."""
        segs = list(split.values())
        flat = comet_scores([s for g in segs for s in g.srcs], [h for g in segs for h in g.hyps],
                            [r for g in segs for r in g.refs], cfg.comet)
        out, start = {}, 0
        for lang, seg in split.items():
            part, start = flat[start:start + len(seg.hyps)], start + len(seg.hyps)
            out[lang] = Score(sum(part) / len(part) if part else None, segments=tuple(part))
        return out


@register_metric("wer")
class Wer(Metric):
    """Corpus WER x100 (word_error_rate) of the English transcription direction."""

    label = "WER"
    tasks = (TRANSCRIBE,)
    higher_is_better = False

    def score_direction(self, seg: Segments, cfg: MetricsConfig) -> Score:
        return Score(word_error_rate(seg.hyps, seg.refs))
