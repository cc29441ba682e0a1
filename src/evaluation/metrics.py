"""Scores per direction, one path for training-time and standalone evaluation: sacrebleu BLEU and
chrF (zh/ja character-level by default, the CoVoST2 convention), COMET (unbabel-comet), and WER (jiwer,
after Whisper's English text normaliser) for the English transcription direction."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import sacrebleu

from src.data.languages import CHAR_LEVEL

log = logging.getLogger(__name__)


@dataclass
class CometConfig:
    model: str | None = "Unbabel/wmt22-comet-da"  # hub name or local checkpoint (.ckpt or its directory)
    batch_size: int = 16
    gpus: int | None = None  # None: 1 if a GPU is available, else 0
    required: bool = False  # true: a COMET failure fails the evaluation


@dataclass
class MetricsConfig:
    # Per-language sacrebleu tokenizer overrides, e.g. {zh-CN: zh, ja: ja-mecab}; default 13a, char for zh/ja.
    bleu_tokenize: dict[str, str] = field(default_factory=dict)
    comet: CometConfig = field(default_factory=CometConfig)


def bleu_tokenizer(lang: str, overrides: dict[str, str] | None = None) -> str:
    if overrides and lang in overrides:
        return overrides[lang]
    return "char" if lang in CHAR_LEVEL else "13a"


def bleu_chrf(hyps: list[str], refs: list[str], lang: str, overrides: dict[str, str] | None = None) -> dict:
    """Corpus BLEU (case-sensitive, detokenised input) and chrF with their sacrebleu signatures."""
    bleu = sacrebleu.metrics.BLEU(tokenize=bleu_tokenizer(lang, overrides))
    chrf = sacrebleu.metrics.CHRF()
    b, c = bleu.corpus_score(hyps, [refs]), chrf.corpus_score(hyps, [refs])
    return {"bleu": b.score, "chrf": c.score, "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}


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


class CometUnavailable(RuntimeError):
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
