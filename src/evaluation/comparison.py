"""The comparison's statistics on typed rows: one `Row` per (method, schedule), one run per seed, each compared
metric's per-direction means, average, spread over seeds, interval, Δ vs the baseline with its interval and the
per-direction evidence, and the primary contrasts with Holm (src/evaluation/contrasts.py). Intervals come from
one bootstrap per metric over every run (src/evaluation/intervals.py), so any two rows can be contrasted on the
same draws."""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from src.data.languages import COVOST2_EN_XX
from src.evaluation.config import ReportConfig
from src.evaluation.contrasts import Contrast, RowRef, holm, verdict
from src.evaluation.discovery import ScoredRun
from src.evaluation.intervals import (
    CONFIDENCE,
    Bootstrap,
    Coverage,
    Interval,
    averaged_directions,
    interval,
    run_segment_stats,
    unpaired_interval,
)
from src.evaluation.metrics import Metric, compared_metrics, headline_metric
from src.evaluation.records import Cost

log = logging.getLogger(__name__)


@dataclass
class DirectionDelta:
    delta: float
    ci: Interval
    significant: bool  # after Holm across the directions


@dataclass
class MetricCells:
    """One row's numbers for one metric."""

    per_direction: dict[str, float | None] = field(default_factory=dict)
    mean: float | None = None  # of the average over directions, over seeds
    sd: float | None = None  # sample std over seeds (None with one)
    n: int = 0  # seeds with a value
    ci: Interval | None = None
    ci_note: str = ""  # what the interval leaves out (seeds, directions, sentences); "" when nothing
    delta: float | None = None  # vs the baseline
    delta_ci: Interval | None = None
    direction_deltas: dict[str, DirectionDelta] = field(default_factory=dict)

    @property
    def directions_better_worse(self) -> tuple[int, int] | None:
        if not self.direction_deltas:
            return None
        sig = [d.delta for d in self.direction_deltas.values() if d.significant]
        return sum(v > 0 for v in sig), sum(v < 0 for v in sig)


@dataclass
class Row:
    method: str
    schedule: str | None
    schedule_key: str | None
    runs: dict[int, ScoredRun]  # one per seed: the comparison's means, spreads and intervals all use these
    duplicates: list[Path] = field(default_factory=list)  # further runs of a seed, left out (listed)
    baseline: bool = False
    metrics: dict[str, MetricCells] = field(default_factory=dict)
    cost: Cost = field(default_factory=Cost)  # means over seeds
    selection: str = "n/a"

    @property
    def seeds(self) -> list[int]:
        return sorted(self.runs)

    def matches(self, ref: RowRef) -> bool:
        return self.method == ref.method and ref.schedule_key in (None, self.schedule_key)


@dataclass
class ContrastResult:
    contrast: Contrast
    delta: float | None = None
    ci: Interval | None = None  # at its Holm step's confidence
    p_holm: float | None = None
    verdict: str = ""
    missing: str = ""  # why it could not be tested


@dataclass
class Comparison:
    rows: list[Row]
    directions: list[str]  # translation directions present, CoVoST2 order
    baseline: str
    split: str
    cfg: ReportConfig
    contrasts: list[ContrastResult] = field(default_factory=list)

    @property
    def has_baseline(self) -> bool:
        return any(r.baseline for r in self.rows)

    def metrics_shown(self) -> list[Metric]:
        """The compared metrics that some row has a value of (COMET only where it ran)."""
        return [m for m in compared_metrics() if any(r.metrics[m.name].mean is not None for r in self.rows)]

    def name(self, row: Row) -> str:
        """The method, plus its schedule where the method has several rows."""
        several = sum(r.method == row.method for r in self.rows) > 1
        return f"{row.method} ({row.schedule or 'n/a'})" if several else row.method


def mean_sd(values: list[float | None]) -> tuple[float | None, float | None, int]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None, 0
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None), len(vals)


class Samples:
    """One metric's bootstrap over every run of the comparison: each run's per-direction points and draws."""

    def __init__(self, runs: list[ScoredRun], split: str, metric: Metric, cfg: ReportConfig):
        self.metric = metric
        self.stats = {r.path: run_segment_stats(r.path, split, metric, r.scoring) for r in runs}
        have = [st for st in self.stats.values() if st is not None]
        self.boot = Bootstrap(have, metric, n_draws=cfg.n_draws, resample=cfg.resample) if have else None
        self.scores = {path: self.boot.scores(st) for path, st in self.stats.items()
                       if st is not None} if self.boot and self.boot.directions else {}

    def of(self, row: Row, direction: str | None = None) -> dict[int, tuple[float, np.ndarray]]:
        """{seed: (point, draws)} of the row's average (or of one direction)."""
        out = {}
        for seed, run in row.runs.items():
            if run.path in self.scores:
                points, draws = self.scores[run.path]
                if direction is None:
                    out[seed] = (float(points.mean()), draws.mean(axis=0))
                elif direction in self.boot.directions:
                    i = self.boot.directions.index(direction)
                    out[seed] = (float(points[i]), draws[i])
        return out

    def contrast(self, a: Row, b: Row, direction: str | None = None,
                 confidence: float = CONFIDENCE) -> tuple[float, Interval] | None:
        """a - b: paired by the seeds both have, else unpaired; (the bootstrap's Δ, its interval)."""
        sa, sb = self.of(a, direction), self.of(b, direction)
        shared = sorted(set(sa) & set(sb))
        if shared:
            points = [sa[s][0] - sb[s][0] for s in shared]
            return float(np.mean(points)), interval(points, [sa[s][1] - sb[s][1] for s in shared], confidence)
        if not sa or not sb:
            return None
        ci = unpaired_interval(*_split(sa), *_split(sb), confidence=confidence)
        return float(np.mean(_split(sa)[0]) - np.mean(_split(sb)[0])), ci

    def coverage_note(self, row: Row) -> str:
        """What the row's interval leaves out: seeds without segments, directions, sentences."""
        parts = []
        have = [r for r in row.runs.values() if r.path in self.scores]
        if len(have) < len(row.runs):
            parts.append(f"{len(have)} of {len(row.runs)} seeds")
        total = Coverage()
        for run in have:
            st = self.stats[run.path]
            cov = self.boot.coverage(st, averaged_directions(self.metric, set(st)))
            total.directions = sorted(set(total.directions) | set(cov.directions))
            total.sentences = max(total.sentences, cov.sentences)
        if total.directions:
            parts.append("without " + ", ".join(f"en-{d}" for d in total.directions))
        if total.sentences:
            parts.append(f"{total.sentences} sentence(s) left out")
        return "; ".join(parts)


def _split(samples: dict[int, tuple[float, np.ndarray]]) -> tuple[list[float], list[np.ndarray]]:
    return [p for p, _ in samples.values()], [d for _, d in samples.values()]


def group_rows(runs: list[ScoredRun], baseline: str) -> list[Row]:
    """One row per (method, schedule), one run per seed (the first by path; the others listed); the baseline row
    is the `baseline` method's with most seeds (one stage on a tie), first."""
    groups: dict[tuple[str, str | None], list[ScoredRun]] = defaultdict(list)
    for r in runs:
        groups[r.key].append(r)
    rows = []
    for (method, schedule), group in groups.items():
        by_seed, dup = {}, []
        for r in sorted(group, key=lambda r: str(r.path)):
            (dup.append(r.path) if r.seed in by_seed else by_seed.__setitem__(r.seed, r))
        for path in dup:
            log.warning("%s repeats a seed of %s (%s); the comparison uses the first", path, method, schedule)
        rows.append(Row(method, schedule, group[0].label.schedule_key, by_seed, dup))
    candidates = [r for r in rows if r.method == baseline]
    if candidates:
        max(candidates, key=lambda r: (len(r.runs), r.schedule_key == "one_stage")).baseline = True
    return sorted(rows, key=lambda r: (not r.baseline, r.method, r.schedule or ""))


def _fill_row(row: Row, directions: list[str]) -> None:
    """Means over the row's seeds (one run each): per-direction values, the average's mean and spread, cost."""
    runs = list(row.runs.values())
    for m in compared_metrics():
        cells = row.metrics[m.name] = MetricCells()
        for d in directions:
            cells.per_direction[d] = mean_sd([r.results.get(d, {}).get(m.name) for r in runs])[0]
        cells.mean, cells.sd, cells.n = mean_sd([r.results["average"].get(m.name) for r in runs])
    for name in ("steps", "tokens", "seconds", "active_params", "total_params", "init_kl", "init_wer"):
        setattr(row.cost, name, mean_sd([getattr(r.cost, name) for r in runs])[0])
    row.selection = " / ".join(sorted({r.selection or "n/a" for r in runs}))


def results_delta(a: Row, b: Row, metric: str) -> float | None:
    """Δ of the average from the results: the mean of the per-seed differences over the seeds both ran, or the
    difference of the means where they share none."""
    def avg(r: ScoredRun) -> float | None:
        return r.results["average"].get(metric)

    pairs = [avg(a.runs[s]) - avg(b.runs[s]) for s in sorted(set(a.runs) & set(b.runs))
             if avg(a.runs[s]) is not None and avg(b.runs[s]) is not None]
    if pairs:
        return statistics.fmean(pairs)
    ma, mb = a.metrics[metric].mean, b.metrics[metric].mean
    return None if ma is None or mb is None else ma - mb


def _add_intervals(rows: list[Row], samples: Samples, alpha: float) -> None:
    """Each row's interval, its Δ vs the baseline with its interval, and per-direction Δs (Holm across them)."""
    metric = samples.metric
    base = next((r for r in rows if r.baseline), None)
    for row in rows:
        cells = row.metrics[metric.name]
        own = samples.of(row)
        if not own:
            continue
        cells.ci, cells.ci_note = interval(*_split(own)), samples.coverage_note(row)
        if base is None or row is base:
            continue
        found = samples.contrast(row, base)
        if found is not None:
            cells.delta_ci = found[1]
        tests = {d: samples.contrast(row, base, d) for d in samples.boot.directions}
        tests = {d: t for d, t in tests.items() if t is not None}
        if tests:
            _, rejected, _ = holm([t[1].p for t in tests.values()], alpha)
            cells.direction_deltas = {d: DirectionDelta(t[0], t[1], rej)
                                      for (d, t), rej in zip(tests.items(), rejected)}


def find_row(rows: list[Row], ref: RowRef) -> Row | str:
    """The row ``ref`` names, or why there is none."""
    found = [r for r in rows if r.matches(ref)]
    if len(found) == 1:
        return found[0]
    if not found:
        return f"no row {ref} (not run, or no readable run)"
    return f"{ref} is ambiguous ({', '.join(r.schedule_key or 'n/a' for r in found)}): name a schedule"


def evaluate_contrasts(rows: list[Row], contrasts: list[Contrast], samples: Samples | None, cfg: ReportConfig,
                   metric: Metric) -> list[ContrastResult]:
    """The primary family on the headline metric: Holm across the contrasts that could be tested."""
    results = [ContrastResult(c) for c in contrasts]
    tested: list[tuple[ContrastResult, Row, Row, Interval]] = []
    for res in results:
        a, b = find_row(rows, res.contrast.a), find_row(rows, res.contrast.b)
        if isinstance(a, str) or isinstance(b, str):
            res.missing = a if isinstance(a, str) else b
            continue
        found = samples.contrast(a, b) if samples else None
        if found is None:
            res.missing = f"no {metric.label} segments to resample for {res.contrast.a} or {res.contrast.b}"
            continue
        res.delta = results_delta(a, b, metric.name)
        tested.append((res, a, b, found[1]))
    alpha = 1 - CONFIDENCE
    adjusted, rejected, levels = holm([t[3].p for t in tested], alpha)
    for (res, a, b, _), p_adj, rej, level in zip(tested, adjusted, rejected, levels):
        res.ci, res.p_holm = samples.contrast(a, b, confidence=level)[1], p_adj
        res.verdict = verdict(res.delta, res.ci, rej, metric.higher_is_better, metric.digits, cfg.equivalence_margin)
    return results


def compare(runs: list[ScoredRun], split: str, baseline: str, cfg: ReportConfig | None = None) -> Comparison:
    """The comparison's rows (the baseline's first), their statistics, and the primary contrasts."""
    cfg = cfg or ReportConfig()
    rows = group_rows(runs, baseline)
    directions = [d for d in COVOST2_EN_XX if any(d in r.results for r in runs)]
    for row in rows:
        _fill_row(row, directions)
    base = next((r for r in rows if r.baseline), None)
    kept = [r for row in rows for r in row.runs.values()]
    head = None
    for metric in compared_metrics():
        if base is not None:
            for row in rows:
                if row is not base:
                    row.metrics[metric.name].delta = results_delta(row, base, metric.name)
        if not any(row.metrics[metric.name].mean is not None for row in rows):
            continue
        samples = Samples(kept, split, metric, cfg)
        if samples.scores:
            _add_intervals(rows, samples, 1 - CONFIDENCE)
        if metric is headline_metric():
            head = samples
    comparison = Comparison(rows, directions, baseline, split, cfg)
    if cfg.contrasts:
        comparison.contrasts = evaluate_contrasts(rows, [Contrast.parse(c) for c in cfg.contrasts], head, cfg,
                                              headline_metric())
    return comparison
