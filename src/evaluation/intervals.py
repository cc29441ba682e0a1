"""95% confidence intervals for the numbers a comparison quotes: a metric's average over directions and its
difference from the baseline (Δ).

Test sentences: a paired bootstrap. Each draw resamples the sentences of every direction with replacement,
the same indices for every system and seed (sentences aligned by id, so a difference is always taken on
the same sentences), recomputes each direction's corpus score from its segments' sufficient statistics (BLEU:
sacrebleu's n-gram counts, with the direction's own tokenizer; COMET: the stored segment scores) and
averages over the directions.

Seeds (the pretrained model counts as one: each seed pretrains its own toy model): with n >= 2 seeds, a t
interval over seeds, mean ± t(n-1) · sqrt(s²/n + v), where s² is the sample variance over seeds (per-seed Δs,
paired by seed, for a difference) and v the bootstrap variance of the seed mean over test sentences (the
test set is shared by every seed, so its noise does not average out over seeds), with Welch-Satterthwaite's
degrees of freedom (n-1 for the seeds' part, the bootstrap's part known): t(n-1) when the seeds dominate,
the normal quantile when the test set does. With one seed: the
bootstrap's percentile interval, which knows nothing of the seed's own variance (the table says so).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.evaluation.config import MetricsConfig
from src.evaluation.metrics import Metric, Segments, direction_task
from src.evaluation.results import read_hypotheses, read_segment_scores

log = logging.getLogger(__name__)

CONFIDENCE = 0.95
N_DRAWS = 1000
SEED = 12345  # the bootstrap's own generator: the same runs always give the same interval


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

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


class Bootstrap:
    """Shared sentence draws for a set of runs: every direction's sentences common to all of them, resampled
    N_DRAWS times, so that every run's average is resampled on the same indices. The draws are regenerated
    per run from one generator per direction (same seed, same order), `chunk` draws at a time, so memory
    stays small at CoVoST2's size (15k test sentences per direction)."""

    def __init__(self, runs: list[SegmentStats], metric: Metric, n_draws: int = N_DRAWS, seed: int = SEED,
                 chunk: int = 100):
        self.metric, self.n_draws, self.seed, self.chunk = metric, n_draws, seed, chunk
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

    def _draws(self, index: int, n: int):
        """The direction's draws, chunk by chunk: (chunk, n) sentence indices, the same for every run."""
        rng = np.random.default_rng([self.seed, index])
        for start in range(0, self.n_draws, self.chunk):
            yield rng.integers(0, n, size=(min(self.chunk, self.n_draws - start), n), dtype=np.int32)

    def averages(self, run: SegmentStats) -> tuple[float, np.ndarray]:
        """The run's average over directions on the common sentences, and its value in every draw."""
        point, draws = [], []
        for index, lang in enumerate(self.directions):
            stats = np.stack([run[lang][i] for i in self.ids[lang]])
            n = len(stats)
            point.append(float(self.metric.corpus_from_stats(stats.sum(axis=0), n)))
            draws.append(np.concatenate([self.metric.corpus_from_stats(stats[idx].sum(axis=1), n)
                                         for idx in self._draws(index, n)]))
        return float(np.mean(point)), np.mean(draws, axis=0)


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, df))


def interval(points: list[float], draws: list[np.ndarray], confidence: float = CONFIDENCE) -> Interval:
    """The interval of the mean over seeds of `points` (one per seed), `draws` each seed's bootstrap values
    (same draws for every seed). One seed: the bootstrap's percentile interval; several: the t interval
    over seeds with the test sentences' variance added (module docstring)."""
    mean_draws = np.mean(draws, axis=0)
    if len(points) == 1:
        low, high = np.quantile(mean_draws, [0.5 - confidence / 2, 0.5 + confidence / 2])
        return Interval(float(low), float(high))
    n = len(points)
    seeds, sentences = np.var(points, ddof=1) / n, np.var(mean_draws, ddof=1)
    # Welch-Satterthwaite: the seeds' part has n-1 degrees of freedom, the bootstrap's is known (infinite)
    df = (seeds + sentences) ** 2 / (seeds ** 2 / (n - 1)) if seeds > 0 else np.inf
    half = t_quantile(df, confidence) * np.sqrt(seeds + sentences)
    mean = float(np.mean(points))
    return Interval(mean - float(half), mean + float(half))


def method_note(n_seeds: list[int]) -> str:
    """How the table's intervals were made, for the note above it (n_seeds: the seeds each interval used)."""
    several = any(n >= 2 for n in n_seeds)
    single = any(n == 1 for n in n_seeds)
    parts = []
    if several:
        parts.append("rows with several seeds: a t interval over seeds (Δ paired by seed) with the test set's "
                     "bootstrap variance added (Welch-Satterthwaite df)")
    if single:
        parts.append("one seed: the paired bootstrap's percentile interval over test sentences only (the "
                     "seed's own variance unknown)")
    return (f"{CONFIDENCE:.0%} intervals: paired bootstrap over test sentences ({N_DRAWS} draws, resampled "
            "within each direction, the same sentences for every row and seed, each direction's corpus score "
            "recomputed with its own tokenizer); " + "; ".join(parts) + ". n.s.: the Δ interval covers 0.")

