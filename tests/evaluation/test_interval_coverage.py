"""The intervals' coverage, checked by simulation with a known truth (src/evaluation/intervals.py).

Scores are made per (seed, clip, direction) as  mu + seed effect + clip difficulty (shared by every direction
and seed) + clip x direction + noise, and the metric is their mean (a stand-in for a corpus score whose
sufficient statistic is a sum). The truth is mu: the expected score over seeds and over the population of
clips. The clip bootstrap with the seed interval must cover it at least 93% of the time (nominal 95%) with 3
and 5 seeds, whether the seeds differ or not; the per-direction bootstrap, which ignores that directions share
clips, covers it much less when clips share their difficulty."""

from __future__ import annotations

import numpy as np
import pytest

from src.evaluation.intervals import SEEDS, TEST_ONLY, Bootstrap, interval
from src.evaluation.metrics import Metric

DIRECTIONS = ("de", "ja", "ta", "fr", "zh-CN")


class MeanScore(Metric):
    """The mean of segment scores (Metric's default corpus_from_stats); not registered."""

    label = "mean"
    tasks = ("translate",)


METRIC = MeanScore()


def runs(scores: np.ndarray) -> list[dict]:
    """(seeds, clips, directions) scores -> one SegmentStats per seed, ids `<clip>.<direction>` as CoVoST2's."""
    return [{d: {f"c{c}.{d}": np.array([scores[s, c, j]]) for c in range(scores.shape[1])}
             for j, d in enumerate(DIRECTIONS)} for s in range(scores.shape[0])]


def simulate(rng, n_seeds: int, clips: int, seed_sd: float, clip_sd: float, cell_sd: float = 1.0,
             noise_sd: float = 1.0, mu: float = 20.0) -> np.ndarray:
    seed = rng.normal(0, seed_sd, (n_seeds, 1, 1))
    clip = rng.normal(0, clip_sd, (1, clips, 1))
    cell = rng.normal(0, cell_sd, (1, clips, len(DIRECTIONS)))
    noise = rng.normal(0, noise_sd, (n_seeds, clips, len(DIRECTIONS)))
    return mu + seed + clip + cell + noise


def row_interval(scores: np.ndarray, resample: str = "clip", n_draws: int = 200):
    stats = runs(scores)
    boot = Bootstrap(stats, METRIC, n_draws=n_draws, resample=resample)
    avgs = [boot.averages(st) for st in stats]
    return interval([p for p, _ in avgs], [d for _, d in avgs])


def coverage(n_seeds: int, seed_sd: float, clip_sd: float, reps: int = 500, resample: str = "clip") -> float:
    rng = np.random.default_rng(1000 * n_seeds + int(10 * seed_sd) + int(100 * clip_sd))
    hits = 0
    for _ in range(reps):
        ci = row_interval(simulate(rng, n_seeds, 30, seed_sd, clip_sd), resample)
        hits += ci.low <= 20.0 <= ci.high
    return hits / reps


@pytest.mark.parametrize("n_seeds", [3, 5])
@pytest.mark.parametrize("seed_sd", [0.0, 1.0])
def test_seed_interval_covers_the_truth(n_seeds, seed_sd):
    cov = coverage(n_seeds, seed_sd, clip_sd=1.5)
    assert cov >= 0.93, f"coverage {cov:.3f} at n={n_seeds}, seed sd {seed_sd}"
    assert cov <= 0.999 or seed_sd == 0.0  # not trivially wide where the seeds differ


def test_paired_delta_covers_the_truth():
    """Two rows on the same clips and seeds: Δ = 1.0 exactly in expectation; the paired seed interval covers it."""
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(500):
        shared = simulate(rng, 3, 30, 0.5, 1.5)  # what both rows share: seeds' data order, clip difficulty
        a = shared + 1.0 + rng.normal(0, 0.7, (3, 1, 1)) + rng.normal(0, 0.5, (1, 30, 1))
        b = shared + rng.normal(0, 0.7, (3, 1, 1)) + rng.normal(0, 0.5, (1, 30, 1))
        stats_a, stats_b = runs(a), runs(b)
        boot = Bootstrap(stats_a + stats_b, METRIC, n_draws=200)
        pa, pb = [boot.averages(s) for s in stats_a], [boot.averages(s) for s in stats_b]
        ci = interval([x[0] - y[0] for x, y in zip(pa, pb)], [x[1] - y[1] for x, y in zip(pa, pb)])
        hits += ci.low <= 1.0 <= ci.high
    assert hits / 500 >= 0.93


def test_per_direction_bootstrap_undercovers_when_clips_share_difficulty():
    """The construction the clip bootstrap exists for: one seed's test-set interval, clips sharing much of their
    difficulty across directions. The clip bootstrap's variance is several times the per-direction one's."""
    rng = np.random.default_rng(3)
    scores = simulate(rng, 1, 60, 0.0, clip_sd=3.0)
    stats = runs(scores)
    wide = Bootstrap(stats, METRIC, n_draws=400).averages(stats[0])[1].var()
    narrow = Bootstrap(stats, METRIC, n_draws=400, resample="direction").averages(stats[0])[1].var()
    assert wide / narrow > 3  # theory: (9 + 2/5) / ((9 + 2) / 5) ~ 4.3 for these variances
    # without shared difficulty the two agree
    flat = runs(simulate(rng, 1, 60, 0.0, clip_sd=0.0))
    ratio = (Bootstrap(flat, METRIC, n_draws=400).averages(flat[0])[1].var()
             / Bootstrap(flat, METRIC, n_draws=400, resample="direction").averages(flat[0])[1].var())
    assert 0.6 < ratio < 1.6
    # and coverage of the truth with one seed and no seed effect: the old method falls short, the new one not
    assert coverage(1, 0.0, 3.0, reps=200, resample="direction") < 0.8
    assert coverage(1, 0.0, 3.0, reps=200) >= 0.92


def test_seed_interval_is_never_narrower_than_the_seeds_only_interval():
    """Draws that are anti-correlated between seeds (negative shared covariance) add nothing: the interval is the
    seeds-only t interval, not narrower; positively correlated draws widen it."""
    points = [10.0, 12.0, 11.0]
    seeds_only = interval(points, [np.zeros(200)] * 3)
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1, 200)
    anti = interval(points, [z, -z, rng.normal(0, 1, 200)])
    shared = interval(points, [z, z, z])
    assert seeds_only.kind == SEEDS and seeds_only.n == 3
    assert anti.high - anti.low >= seeds_only.high - seeds_only.low - 1e-12
    assert shared.high - shared.low > seeds_only.high - seeds_only.low
    # the seeds-only half-width is t(2) s / sqrt(3)
    assert (seeds_only.high - seeds_only.low) / 2 == pytest.approx(4.302653 * 1.0 / np.sqrt(3), abs=1e-5)
    one = interval([10.0], [rng.normal(10, 1, 500)])
    assert one.kind == TEST_ONLY and one.low < 10 < one.high


def test_one_shared_clip_gives_no_interval(caplog):
    """A dry run's single test clip: every draw is the same, so a zero-width interval would read as certainty."""
    stats = runs(simulate(np.random.default_rng(0), 2, 1, 0.0, 1.0))
    boot = Bootstrap(stats, METRIC, n_draws=100)
    assert boot.directions == [] and "share 1 test clip(s); no intervals" in caplog.text


if __name__ == "__main__":  # the coverage table quoted in docs/design.md
    for resample in ("clip", "direction"):
        for n in (1, 3, 5):
            for sd in (0.0, 1.0):
                print(f"{resample:9} seeds={n} seed_sd={sd}: coverage "
                      f"{coverage(n, sd, 1.5, resample=resample):.3f} (clip sd 1.5), "
                      f"{coverage(n, sd, 3.0, resample=resample):.3f} (clip sd 3.0)")
