"""Confidence intervals for the numbers a comparison quotes: a metric's average over directions, its value per
direction, and a difference between two rows (Δ).

Test set: a clip-level (cluster) bootstrap. CoVoST2 translates every test clip into all 15 languages (ids
`<clip>.<tgt>`), so a clip that is hard in one direction tends to be hard in all of them: the clip, not the
sentence of one direction, is the independent unit. Each draw resamples the clips with replacement and keeps the
same clips in every direction, row and seed (paired everywhere); each direction's corpus score is recomputed from
its segments' sufficient statistics (BLEU: sacrebleu's n-gram counts with the direction's own tokenizer; COMET:
the stored segment scores) and averaged over the directions. `resample="direction"` is the older per-direction
bootstrap (each direction resampled on its own), kept to measure how much the clustering matters.

Seeds (each a fine-tuning run; on the toy each seed also pretrains its own model): with n >= 2 seeds the mean
over seeds gets mean ± t(n-1) · sqrt(s²/n + C̄), s² the sample variance of the seeds' scores (of their per-seed
Δs, paired by seed, for a difference) and C̄ the mean off-diagonal bootstrap covariance between seeds' scores:
the test-set error the seeds share, which averaging over seeds cannot remove. Each seed's own test-set error is
already inside s², so only the shared part is added, and since C̄ is clipped at 0 the interval is never narrower
than the seeds-only t interval. With one seed: the bootstrap's percentile interval, which knows nothing of the
seed's own variance (`Interval.kind` says so). Rows that share no seed get an unpaired (Welch-type) interval.

Every interval has a two-sided p-value from the same construction (`Interval.p`), so that a family of contrasts
can be corrected with Holm (src/evaluation/contrasts.py). Coverage is checked by simulation in
tests/evaluation/test_interval_coverage.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from src.evaluation.config import RESAMPLE, MetricsConfig
from src.evaluation.metrics import Metric, Segments, direction_task
from src.evaluation.results import read_hypotheses, read_segment_scores

log = logging.getLogger(__name__)

CONFIDENCE = 0.95
N_DRAWS = 1000
SEED = 12345  # the bootstrap's own generator: the same runs always give the same interval

# Interval kinds: how it was made (the table says which).
SEEDS = "seeds"  # t(n-1) over seeds (or seed pairs) plus the shared test-set covariance
TEST_ONLY = "test set only"  # one seed (pair): the bootstrap alone; the seed's own variance unknown
UNPAIRED = "unpaired"  # two rows with no seed in common, each with >= 2 seeds
UNPAIRED_TEST_ONLY = "unpaired, test set only"  # no shared seed, and one side has a single seed


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    p: float = 1.0  # two-sided p-value of "the quantity is 0" from the same construction
    kind: str = SEEDS
    n: int = 1  # seeds (seed pairs) it rests on
    confidence: float = CONFIDENCE

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


# {direction: {segment id: statistics row}}: one run's segments for one metric
SegmentStats = dict[str, dict[str, np.ndarray]]


def run_segment_stats(run_dir: Path, split: str, metric: Metric, cfg: MetricsConfig) -> SegmentStats | None:
    """A run's per-segment statistics for `metric` from its saved hypotheses (or stored segment scores);
    None when the metric has neither (e.g. COMET that did not run)."""
    split_dir = run_dir / "eval" / split
    try:
        rows_by_lang = read_hypotheses(split_dir)
    except FileNotFoundError:
        log.warning("%s: no hypotheses (<direction>.tsv); no intervals from this run", split_dir)
        return None
    stored = read_segment_scores(split_dir).get(metric.name, {})
    out: SegmentStats = {}
    for lang, rows in rows_by_lang.items():
        ids = [r["id"] for r in rows]
        if lang in stored:
            if len(stored[lang]) != len(ids):
                log.warning("%s: %s has %d %s segment scores for %d hypotheses; no interval from it",
                            split_dir, lang, len(stored[lang]), metric.label, len(ids))
                continue
            stats = np.asarray(stored[lang], dtype=np.float64)[:, None]
        else:
            seg = Segments(lang, [r["src"] for r in rows], [r["hyp"] for r in rows], [r["ref"] for r in rows])
            stats = metric.segment_stats(seg, cfg) if direction_task(lang) in metric.tasks else None
            if stats is None:
                continue
        out[lang] = dict(zip(ids, stats))
    return out or None


def averaged_directions(metric: Metric, langs: set[str]) -> list[str]:
    """The directions a metric's average runs over (as Metric.average): those of its first task present."""
    for task in metric.tasks:
        own = sorted(d for d in langs if direction_task(d) == task)
        if own:
            return own
    return []


def clip_key(segment_id: str, direction: str) -> str:
    """The source clip a segment comes from: CoVoST2 ids are `<clip>.<tgt>` (one clip, every direction), the
    transcription's `<clip file>:en`; any other id is a clip of its own."""
    if segment_id.endswith(f".{direction}"):
        return segment_id[: -len(direction) - 1]
    if segment_id.endswith(":en"):
        return segment_id[:-3].rsplit(".", 1)[0]
    return segment_id


@dataclass
class Coverage:
    """What a bootstrap's intervals leave out of a run: directions and sentences not in every run."""

    directions: list[str] = field(default_factory=list)
    sentences: int = 0


class Bootstrap:
    """Shared draws for a set of runs: the sentences every run has (per direction), resampled N_DRAWS times by
    clip (or per direction), the same draws for every run. Draws are regenerated per run from one generator
    (same seed, same order), `chunk` at a time, so memory stays small at CoVoST2's size (15k test clips)."""

    def __init__(self, runs: list[SegmentStats], metric: Metric, n_draws: int = N_DRAWS, seed: int = SEED,
                 chunk: int = 100, resample: str = "clip"):
        if resample not in RESAMPLE:
            raise ValueError(f"resample must be one of {RESAMPLE}, got {resample!r}")
        self.metric, self.n_draws, self.seed, self.chunk, self.resample = metric, n_draws, seed, chunk, resample
        present = set().union(*(set(r) for r in runs)) if runs else set()
        langs = set.intersection(*(set(r) for r in runs)) if runs else set()
        if present - langs:
            log.warning("%s intervals: direction(s) %s are not in every run and are left out of them",
                        metric.label, ", ".join(sorted(present - langs)))
        self.ids: dict[str, list[str]] = {}
        for lang in averaged_directions(metric, langs):
            common = [i for i in runs[0][lang] if all(i in r[lang] for r in runs[1:])]
            dropped = max(len(r[lang]) for r in runs) - len(common)
            if dropped:
                log.warning("%s: %d sentence(s) not in every run are left out of the intervals", lang, dropped)
            if common:
                self.ids[lang] = common
        self.directions = list(self.ids)
        clips: dict[str, int] = {}
        self.members = {lang: np.array([clips.setdefault(clip_key(i, lang), len(clips)) for i in ids])
                        for lang, ids in self.ids.items()}
        self.n_clips = len(clips)
        if self.n_clips < 2:  # one clip: every draw is the same; an interval of width 0 would read as certainty
            if self.directions:
                log.warning("%s intervals: the runs share %d test clip(s); no intervals", metric.label, self.n_clips)
            self.directions, self.ids, self.members = [], {}, {}

    def coverage(self, run: SegmentStats, averaged: list[str]) -> Coverage:
        """What this bootstrap leaves out of `run`, whose average runs over `averaged` directions."""
        missing = [d for d in averaged if d not in self.ids]
        sentences = sum(len(run[d]) - len(self.ids[d]) for d in self.directions if d in run)
        return Coverage(missing, sentences)

    def _weights(self):
        """Per chunk of draws, {direction: (chunk, sentences) counts}: how often each sentence is drawn."""
        rng = np.random.default_rng(self.seed)
        for start in range(0, self.n_draws, self.chunk):
            size = min(self.chunk, self.n_draws - start)
            if self.resample == "clip":
                counts = rng.multinomial(self.n_clips, np.full(self.n_clips, 1.0 / self.n_clips), size=size)
                yield {lang: counts[:, m] for lang, m in self.members.items()}
            else:
                yield {lang: rng.multinomial(len(ids), np.full(len(ids), 1.0 / len(ids)), size=size)
                       for lang, ids in self.ids.items()}

    def scores(self, run: SegmentStats) -> tuple[np.ndarray, np.ndarray]:
        """The run's corpus score per direction on the common sentences, (directions,), and in every draw,
        (directions, draws); `self.directions` order."""
        stats = {lang: np.stack([run[lang][i] for i in self.ids[lang]]) for lang in self.directions}
        point = np.array([float(self.metric.corpus_from_stats(s.sum(axis=0), len(s))) for s in stats.values()])
        parts = []
        for weights in self._weights():
            parts.append(np.stack([self.metric.corpus_from_stats(w @ stats[lang], np.maximum(w.sum(axis=1), 1))
                                   for lang, w in weights.items()]))
        return point, np.concatenate(parts, axis=1)

    def averages(self, run: SegmentStats) -> tuple[float, np.ndarray]:
        """The run's average over directions on the common sentences, and its value in every draw."""
        point, draws = self.scores(run)
        return float(point.mean()), draws.mean(axis=0)


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, df))


def t_pvalue(estimate: float, se: float, df: float) -> float:
    from scipy.stats import t

    if se <= 0:
        return 0.0 if estimate != 0 else 1.0
    return float(2 * t.sf(abs(estimate) / se, df))


def percentile(point: float, draws: np.ndarray, confidence: float, kind: str, n: int) -> Interval:
    """The bootstrap's percentile interval, and its two-sided p-value (twice the smaller tail share at 0)."""
    low, high = np.quantile(draws, [0.5 - confidence / 2, 0.5 + confidence / 2])
    tail = min(np.mean(draws <= 0), np.mean(draws >= 0))
    p = 1.0 if np.all(draws == 0) else float(min(1.0, 2 * tail))
    return Interval(float(low), float(high), p, kind, n, confidence)


def shared_covariance(draws: np.ndarray, other: np.ndarray | None = None) -> float:
    """The mean bootstrap covariance between different seeds' scores (rows of `draws`), or, with `other`,
    between every row of `draws` and every row of `other`: the test-set error they share."""
    if other is None:
        n = len(draws)
        cov = np.cov(draws)
        return float((cov.sum() - np.trace(cov)) / (n * (n - 1)))
    centred = draws - draws.mean(axis=1, keepdims=True)
    o = other - other.mean(axis=1, keepdims=True)
    return float((centred @ o.T).mean() / (draws.shape[1] - 1))


def interval(points: list[float], draws: list[np.ndarray], confidence: float = CONFIDENCE) -> Interval:
    """The interval of the mean over seeds of `points` (one per seed; a paired Δ: one per seed pair), `draws`
    each seed's bootstrap values (the same draws for every seed). One seed: the percentile interval; several:
    t(n-1) · sqrt(s²/n + C̄) (module docstring)."""
    n = len(points)
    mean = float(np.mean(points))
    if n == 1:
        return percentile(mean, np.asarray(draws[0]), confidence, TEST_ONLY, 1)
    se = float(np.sqrt(np.var(points, ddof=1) / n + max(0.0, shared_covariance(np.asarray(draws)))))
    half = t_quantile(n - 1, confidence) * se
    return Interval(mean - half, mean + half, t_pvalue(mean, se, n - 1), SEEDS, n, confidence)


def unpaired_interval(a_points: list[float], a_draws: list[np.ndarray], b_points: list[float],
                      b_draws: list[np.ndarray], confidence: float = CONFIDENCE) -> Interval:
    """The interval of mean(a) - mean(b) for rows that share no seed: s_a²/n_a + s_b²/n_b plus the shared
    test-set part (C̄_aa + C̄_bb - 2 C̄_ab, clipped at 0), t with min(n_a, n_b) - 1 degrees of freedom (Welch's
    conservative choice). A side with one seed has no spread to estimate: then the percentile interval of the
    difference of the bootstrap means, which knows the test set alone."""
    na, nb = len(a_points), len(b_points)
    delta = float(np.mean(a_points) - np.mean(b_points))
    a, b = np.asarray(a_draws), np.asarray(b_draws)
    if min(na, nb) < 2:
        return percentile(delta, a.mean(axis=0) - b.mean(axis=0), confidence, UNPAIRED_TEST_ONLY, min(na, nb))
    shared = shared_covariance(a) + shared_covariance(b) - 2 * shared_covariance(a, b)
    se = float(np.sqrt(np.var(a_points, ddof=1) / na + np.var(b_points, ddof=1) / nb + max(0.0, shared)))
    df = min(na, nb) - 1
    half = t_quantile(df, confidence) * se
    return Interval(delta - half, delta + half, t_pvalue(delta, se, df), UNPAIRED, min(na, nb), confidence)


def method_note(kinds: set[str], resample: str = "clip", n_draws: int = N_DRAWS) -> str:
    """How the table's intervals were made, for the note above it (`kinds`: the kinds its intervals have)."""
    unit = ("resampling whole test clips, the same clips in every direction, row and seed" if resample == "clip"
            else "resampling each direction's sentences on its own (not by clip)")
    parts = []
    if SEEDS in kinds:
        parts.append("several seeds: t(n-1) over seeds (a Δ paired by seed) with the test-set covariance the "
                     "seeds share added (never narrower than the seeds-only interval)")
    if TEST_ONLY in kinds:
        parts.append("one seed: the bootstrap's percentile interval, the test set's noise only (the seed's own "
                     "variance unknown)")
    if kinds & {UNPAIRED, UNPAIRED_TEST_ONLY}:
        parts.append("rows with no seed in common: an unpaired interval (flagged)")
    return (f"{CONFIDENCE:.0%} intervals: bootstrap over the test set ({n_draws} draws, {unit}, each direction's "
            "corpus score recomputed with its own tokenizer)" + ("; " + "; ".join(parts) if parts else "") + ".")
