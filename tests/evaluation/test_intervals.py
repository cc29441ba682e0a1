"""Confidence intervals (src/evaluation/intervals.py): the vectorised BLEU equals sacrebleu's on any subset,
identical systems give Δ = 0 inside its interval, a system with a fifth of its sentences fixed gets a positive
interval, the interval is the same for the same runs, and the report prints n.s. where the interval covers 0 and
claims a row better (in every direction) where the intervals exclude 0."""

from __future__ import annotations

import random

import numpy as np
import pytest
import sacrebleu

from src.evaluation.config import CometConfig, MetricsConfig
from src.evaluation.intervals import SEEDS, Bootstrap, interval, run_segment_stats
from src.evaluation.metrics import METRICS, Segments, bleu_from_stats
from src.evaluation.report import build_report
from src.evaluation.results import score_with_segments, write_hypotheses, write_results

LANGS = ("de", "ja", "ta")
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()
CFG = MetricsConfig(comet=CometConfig(model=None))


def corpus(seed: int = 0, n: int = 60) -> dict[str, list[dict]]:
    """Per language n references and a noisy system output (a word dropped or swapped in most sentences)."""
    rng = random.Random(seed)
    out = {}
    for lang in LANGS:
        rows = []
        for i in range(n):
            ref = [rng.choice(WORDS) for _ in range(rng.randint(5, 12))]
            hyp = [w if rng.random() > 0.35 else rng.choice(WORDS) for w in ref][: len(ref) - rng.randint(0, 2)]
            if lang == "ja":  # a character-tokenised direction
                ref, hyp = ["".join(ref)], ["".join(hyp)]
            rows.append({"id": f"s{i}.{lang}", "src": f"src {i}", "ref": " ".join(ref), "hyp": " ".join(hyp)})
        out[lang] = rows
    return out


def write_run(root, name: str, strategy: str, seed: int, rows: dict[str, list[dict]]):
    d = root / name
    (d / "eval" / "test").mkdir(parents=True)
    (d / "config.yaml").write_text(f"seed: {seed}\nupcycle:\n  strategy: {strategy}\n")
    write_hypotheses(d / "eval" / "test", rows)
    write_results(d / "eval" / "test", *score_with_segments(rows, CFG))
    return d


def fixed(rows: dict[str, list[dict]], fraction: float) -> dict[str, list[dict]]:
    """The same output with the first `fraction` of each direction's sentences replaced by the reference."""
    return {lang: [{**r, "hyp": r["ref"]} if i < fraction * len(rs) else r for i, r in enumerate(rs)]
            for lang, rs in rows.items()}


def test_vectorised_bleu_equals_sacrebleu_on_subsets():
    bleu = METRICS["bleu"]
    rng = np.random.default_rng(0)
    for lang, rows in corpus(n=40).items():
        seg = Segments(lang, [r["src"] for r in rows], [r["hyp"] for r in rows], [r["ref"] for r in rows])
        stats = bleu.segment_stats(seg, CFG)
        assert stats.shape == (40, 10)
        tok = "char" if lang == "ja" else "13a"
        for draw in [np.arange(40), *rng.integers(0, 40, size=(5, 40)), np.array([0, 0, 1])]:
            ref = sacrebleu.metrics.BLEU(tokenize=tok).corpus_score([seg.hyps[i] for i in draw],
                                                                     [[seg.refs[i] for i in draw]]).score
            assert float(bleu.corpus_from_stats(stats[draw].sum(0), len(draw))) == pytest.approx(ref, abs=1e-9)
    # a hypothesis with no matching n-gram at all, and an empty one
    empty = np.array([[0, 5, 0, 0, 0, 0, 0, 0, 0, 0], [3, 4, 0, 0, 0, 0, 3, 2, 1, 0]], dtype=float)
    assert bleu_from_stats(empty).tolist() == [0.0, 0.0]


def test_identical_systems_give_zero_delta_inside_its_interval(tmp_path):
    rows = corpus()
    runs = [run_segment_stats(write_run(tmp_path, n, n, 1, rows), "test", METRICS["bleu"], CFG) for n in ("a", "b")]
    boot = Bootstrap(runs, METRICS["bleu"])
    (pa, da), (pb, db) = boot.averages(runs[0]), boot.averages(runs[1])
    assert pa == pb and np.array_equal(da, db)
    ci = interval([pa - pb], [da - db])
    assert ci.low <= 0 <= ci.high and not ci.excludes_zero
    # the bootstrap's point is the results' average over the directions
    expected = np.mean([sacrebleu.metrics.BLEU(tokenize="char" if lang == "ja" else "13a").corpus_score(
        [r["hyp"] for r in rs], [[r["ref"] for r in rs]]).score for lang, rs in rows.items()])
    assert pa == pytest.approx(expected)


def test_a_fifth_of_sentences_fixed_gives_a_positive_interval_deterministically(tmp_path):
    rows = corpus()
    base = write_run(tmp_path, "dense", "dense", 1, rows)
    better = write_run(tmp_path, "spri", "spri", 1, fixed(rows, 0.2))
    bleu = METRICS["bleu"]

    def delta_interval():
        stats = [run_segment_stats(d, "test", bleu, CFG) for d in (better, base)]
        boot = Bootstrap(stats, bleu)
        (p1, d1), (p0, d0) = boot.averages(stats[0]), boot.averages(stats[1])
        return p1 - p0, interval([p1 - p0], [d1 - d0])

    delta, ci = delta_interval()
    assert delta > 0 and ci.low > 0 and ci.excludes_zero and ci.low < delta < ci.high
    assert delta_interval() == (delta, ci)  # same runs, same generator: the same interval
    # another bootstrap seed moves the interval a little, not the point
    stats = [run_segment_stats(d, "test", bleu, CFG) for d in (better, base)]
    other = Bootstrap(stats, bleu, seed=7)
    (p1, d1), (p0, d0) = other.averages(stats[0]), other.averages(stats[1])
    assert p1 - p0 == pytest.approx(delta) and interval([p1 - p0], [d1 - d0]) != ci


def test_several_seeds_use_a_t_interval_that_widens_with_seed_spread(tmp_path):
    draws = [np.zeros(1000) + x for x in (1.0, 2.0, 3.0)]
    tight = interval([1.0, 2.0, 3.0], draws)
    assert tight.low == pytest.approx(2.0 - 4.302653 * 1.0 / np.sqrt(3), abs=1e-5)  # t(2)=4.30, s=1, no test noise
    wide = interval([0.0, 2.0, 4.0], draws)
    assert wide.high - wide.low == pytest.approx(2 * (tight.high - tight.low))


def test_report_prints_intervals_and_not_significant(tmp_path, capsys):
    import csv

    from src.report import main as report_main

    sweep = tmp_path / "sweep"
    for seed in (1, 2, 3):  # three seeds: t(2) over the seed pairs
        write_run(sweep, f"dense_s{seed}", "dense", seed, corpus(seed=seed))
        write_run(sweep, f"same_s{seed}", "vanilla", seed, corpus(seed=seed))  # identical to dense
        write_run(sweep, f"fix_s{seed}", "spri", seed, fixed(corpus(seed=seed), 0.5))
    report = build_report([sweep], tmp_path / "out")
    by = {r["method"]: r for r in report["rows"]}
    assert list(by) == ["dense", "spri", "vanilla"]
    van, spri, dense = by["vanilla"], by["spri"], by["dense"]
    # identical outputs: Δ = 0 exactly, an interval that covers it, no direction claimed either way
    assert van["bleu_delta"] == 0 and van["bleu_delta_ci_low"] <= 0 <= van["bleu_delta_ci_high"]
    assert van["bleu_delta_ci_p"] == 1.0 and (van["bleu_dirs_better"], van["bleu_dirs_worse"]) == (0, 0)
    # half of every direction's sentences fixed, in every seed: better on average and in each of the 3 directions
    assert spri["bleu_delta_ci_low"] > 0 and spri["bleu_delta_ci_p"] < 0.05
    assert spri["bleu_delta_ci_kind"] == SEEDS and spri["bleu_n"] == 3
    assert (spri["bleu_dirs_better"], spri["bleu_dirs_worse"]) == (len(LANGS), 0)
    rows = {r.method: r for r in report["comparison"].rows}
    dd = rows["spri"].metrics["bleu"].direction_deltas
    assert sorted(dd) == sorted(LANGS)
    assert all(d.significant and d.delta > 0 and d.ci.low > 0 and d.ci.n == 3 for d in dd.values())
    assert not any(d.significant for d in rows["vanilla"].metrics["bleu"].direction_deltas.values())
    assert dense["bleu_ci_low"] < dense["bleu_avg"] < dense["bleu_ci_high"] and dense["bleu_ci_kind"] == SEEDS
    md = report["markdown"]
    assert "| +0.00 [+0.00, +0.00] n.s. |" in md and "| 0/0 of 3 |" in md and "| 3/0 of 3 |" in md
    assert "t(n-1) over seeds" in md
    assert "- vanilla: Δ BLEU +0.00 [+0.00, +0.00] over 3 seed pairs: no difference on this test set" in md
    assert (f"- spri: Δ BLEU {spri['bleu_delta']:+.2f} [{spri['bleu_delta_ci_low']:+.2f}, "
            f"{spri['bleu_delta_ci_high']:+.2f}] over 3 seed pairs: better than dense") in md
    forest = (tmp_path / "out" / "bleu_delta.png").read_bytes()  # each Δ with its interval
    assert forest[:8] == b"\x89PNG\r\n\x1a\n" and len(forest) > 5000
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "Δ BLEU vs dense [95% CI]" in summary and "| en-de |" not in summary and "| en-de |" in md
    with open(tmp_path / "out" / "comparison.csv", encoding="utf-8") as f:
        saved = {r["method"]: r for r in csv.DictReader(f)}
    assert float(saved["spri"]["bleu_delta_ci_low"]) == pytest.approx(spri["bleu_delta_ci_low"])
    assert saved["spri"]["bleu_dirs_better"] == "3" and saved["vanilla"]["bleu_delta_ci_p"] == "1.0"
    assert report_main([str(sweep), "--out", str(tmp_path / "out2")]) == 0
    out = capsys.readouterr()
    assert "- vanilla: Δ BLEU +0.00 [+0.00, +0.00] over 3 seed pairs: no difference on this test set" in out.out
    assert "Pre-computing" not in out.out + out.err  # sacrebleu's progress lines stay off the console


def test_comet_intervals_come_from_its_stored_segment_scores(tmp_path, monkeypatch):
    """COMET costs a model: its segment scores are stored at scoring time (segment_scores.json) and the
    bootstrap resamples them (the mean of a resample is its corpus score), without calling it again."""
    from src.evaluation import metrics

    calls = []

    def stand_in(srcs, hyps, refs, cfg):  # a deterministic "COMET": the share of reference words kept
        calls.append(len(hyps))
        return [100.0 * len(set(h.split()) & set(r.split())) / max(1, len(set(r.split()))) for h, r in zip(hyps, refs)]

    monkeypatch.setattr(metrics, "comet_scores", stand_in)
    cfg = MetricsConfig(comet=CometConfig(model="stand-in"))
    rows = corpus(n=30)
    d = tmp_path / "run"
    (d / "eval" / "test").mkdir(parents=True)
    write_hypotheses(d / "eval" / "test", rows)
    table, segments = score_with_segments(rows, cfg)
    write_results(d / "eval" / "test", table, segments)
    assert sorted(segments["comet"]) == sorted(LANGS) and len(segments["comet"]["de"]) == 30
    assert (d / "eval" / "test" / "segment_scores.json").exists()
    n_calls = len(calls)
    comet = METRICS["comet"]
    stats = run_segment_stats(d, "test", comet, cfg)
    assert len(calls) == n_calls  # no second pass of the model
    boot = Bootstrap([stats], comet)
    point, draws = boot.averages(stats)
    average = next(r for r in table if r["direction"] == "average")["comet"]
    assert point == pytest.approx(average)
    ci = interval([point], [draws])
    assert ci.low < point < ci.high and draws.std() > 0
    # rescoring without COMET removes the stale file rather than leaving old segment scores behind
    write_results(d / "eval" / "test", *score_with_segments(rows, CFG))
    assert not (d / "eval" / "test" / "segment_scores.json").exists()
    assert run_segment_stats(d, "test", comet, CFG) is None
