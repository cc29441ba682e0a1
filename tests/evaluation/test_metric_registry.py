"""The metric registry: the same hypotheses give byte-identical results.csv/.md and comparison.md/.csv
to the hard-coded metrics before it (tests/golden/metrics/, written by tests/evaluation/metrics_golden.py against
commit 0f788f3; the comparison files re-recorded on purpose when the report gained its intervals, selection
and provenance notes, issue 22, and again for issue 31: clip-level bootstrap, the seed interval with the shared
test-set covariance, `avg ± sd (n)` cells, per-direction Holm evidence instead of sacrebleu's `sig. +/−`
columns, COMET columns only where a row has COMET, unpaired Δs flagged; the results files are unchanged), and a
metric registered in one place gets its columns in the results and the report."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest
from metrics_golden import NO_COMET, TRANSCRIPTS, TRANSLATIONS, build, make_run

from src.evaluation import metrics
from src.evaluation.config import MetricsConfig
from src.evaluation.metrics import METRICS, TRANSCRIBE, Metric, MetricUnavailable, Score, Segments, register_metric
from src.evaluation.report import build_report
from src.evaluation.results import read_results, score, summary, write_results

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "metrics"


def unversioned(data: bytes) -> str:
    """The file's text with sacrebleu's version left out of its signatures (the only part that may change
    with the installed package rather than with the code)."""
    return re.sub(r"version:[^|`\s,;\"]+", "version:*", data.decode("utf-8"))


@pytest.fixture
def registry() -> Iterator[dict[str, Metric]]:
    """The registry, restored afterwards: a test may register its own metrics."""
    saved = dict(METRICS)
    yield METRICS
    METRICS.clear()
    METRICS.update(saved)


def test_outputs_are_byte_identical_to_the_hard_coded_metrics(tmp_path, monkeypatch):
    files = build(tmp_path, lambda fn: monkeypatch.setattr(metrics, "comet_scores", fn))
    assert sorted(files) == sorted(p.relative_to(GOLDEN) for p in GOLDEN.rglob("*") if p.is_file())
    for rel in files:  # bytes, so results.csv's \r\n line ends count too
        assert unversioned((tmp_path / rel).read_bytes()) == unversioned((GOLDEN / rel).read_bytes()), rel
    # what the golden files hold (so that the comparison above compares something)
    offline = (GOLDEN / "results/comet_offline/results.md").read_bytes()
    assert b"COMET unavailable: OSError: the hub is offline" in offline
    assert b"not applicable: transcription only" in (GOLDEN / "results/asr_only/results.csv").read_bytes()
    assert b"tok:zh" in (GOLDEN / "results/comet/results.csv").read_bytes()
    sweep = (GOLDEN / "report/sweep/comparison.md").read_text(encoding="utf-8")
    assert "| Δ COMET vs dense [95% CI] |" in sweep and " unpaired |" in sweep and " n.s. |" in sweep
    assert "sig. +/−" not in sweep and "(n=3)" in sweep and "dirs +/− vs dense (Holm)" in sweep
    assert "| COMET" not in (GOLDEN / "report/no_baseline/comparison.md").read_text(encoding="utf-8")  # none ran


def test_wer_and_comet_declare_their_tasks_in_their_definitions():
    assert list(METRICS) == ["bleu", "chrf", "comet", "wer"]  # the results' column order
    assert METRICS["wer"].tasks == (TRANSCRIBE,) and not METRICS["wer"].higher_is_better
    assert METRICS["comet"].optional and METRICS["comet"].tasks == ("translate",)
    assert [m.name for m in METRICS.values() if m.headline] == ["bleu"]


class LengthRatio(Metric):
    """Hypothesis over reference characters x100: a toy metric that no other file names."""

    label = "len ratio"
    compared = True
    digits = 1

    def score_direction(self, seg: Segments, cfg: MetricsConfig) -> Score:
        return Score(100.0 * sum(map(len, seg.hyps)) / max(1, sum(map(len, seg.refs))))


def ratio(rows: list[dict]) -> float:
    return 100.0 * sum(len(r["hyp"]) for r in rows) / sum(len(r["ref"]) for r in rows)


def test_a_registered_metric_gets_its_columns_in_results_and_report(tmp_path, registry):
    register_metric("length_ratio")(LengthRatio)
    rows = {**TRANSLATIONS, **TRANSCRIPTS}
    table = score(rows, NO_COMET)
    by = {r["direction"]: r for r in table}
    for lang in rows:  # the default tasks: translation and transcription
        assert by[lang]["length_ratio"] == pytest.approx(ratio(rows[lang]))
    assert by["average"]["length_ratio"] == pytest.approx(statistics.fmean(ratio(rows[d]) for d in TRANSLATIONS))
    write_results(tmp_path, table)
    with open(tmp_path / "results.csv", encoding="utf-8") as f:
        assert f.readline().strip() == "direction,bleu,chrf,comet,wer,length_ratio,segments,bleu_signature,comet_note"
    md = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert md.splitlines()[0] == "| direction | BLEU | chrF | COMET | WER | len ratio | segments |"
    assert f"| n/a | n/a | {by['de']['length_ratio']:.1f} | 2 |" in md  # COMET off, WER translation-free, 1 digit
    assert read_results(tmp_path / "results.csv")[-1]["length_ratio"] == pytest.approx(by["average"]["length_ratio"])
    assert summary(by["average"]).endswith(f"WER 16.67  len ratio {by['average']['length_ratio']:.1f}  (8 segments)")

    sweep = tmp_path / "sweep"
    make_run(sweep, "dense", "dense", 1, 0.5, NO_COMET, [["all"]], None)
    make_run(sweep, "spri_1", "spri", 1, 1.0, NO_COMET, [["all"]], None)
    make_run(sweep, "spri_2", "spri", 2, 0.8, NO_COMET, [["all"]], None)
    report = build_report([sweep], tmp_path / "out")
    got = {r["method"]: r for r in report["rows"]}
    runs = {name: {r["direction"]: r for r in read_results(sweep / name / "eval" / "test" / "results.csv")}
            for name in ("dense", "spri_1", "spri_2")}
    spri = [runs[n]["average"]["length_ratio"] for n in ("spri_1", "spri_2")]
    assert got["spri"]["length_ratio_avg"] == pytest.approx(statistics.fmean(spri))
    assert got["spri"]["length_ratio_sd"] == pytest.approx(statistics.stdev(spri))
    assert got["spri"]["length_ratio_delta"] == pytest.approx(  # over the seed both ran (1)
        runs["spri_1"]["average"]["length_ratio"] - runs["dense"]["average"]["length_ratio"])
    assert got["spri"]["length_ratio_de"] == pytest.approx(statistics.fmean(runs[n]["de"]["length_ratio"]
                                                                           for n in ("spri_1", "spri_2")))
    head = next(line for line in report["markdown"].splitlines() if line.startswith("| method |"))
    assert ("| Δ BLEU vs dense [95% CI] | len ratio avg ± sd (n) [95% CI] | Δ len ratio vs dense [95% CI] | "
            "dirs +/− vs dense (Holm) |") in head and "COMET" not in head  # no row has COMET
    spri_line = next(line for line in report["markdown"].splitlines() if line.startswith("| spri |"))
    assert f"| {statistics.fmean(spri):.1f} ± {statistics.stdev(spri):.1f} (n=2) |" in spri_line
    csv_head = (tmp_path / "out" / "comparison.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert {"length_ratio_de", "length_ratio_avg", "length_ratio_sd", "length_ratio_delta"} <= set(csv_head)


class Judge(Metric):
    """A toy optional metric whose model is never there."""

    label = "Judge"
    tasks = ("translate",)
    optional = True

    def score_direction(self, seg: Segments, cfg: MetricsConfig) -> Score:
        raise MetricUnavailable("no judge model")


def test_an_optional_metric_is_reported_unavailable_with_its_note(tmp_path, registry, monkeypatch):
    register_metric("judge")(Judge)
    table = score(TRANSLATIONS, NO_COMET)
    assert all(r["judge"] is None and r["judge_note"] == "unavailable: no judge model" for r in table)
    assert all(r["bleu"] is not None for r in table)
    write_results(tmp_path, table)
    md = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "\nJudge unavailable: no judge model\n" in md
    assert md.index("COMET unavailable") < md.index("Judge unavailable") < md.index("BLEU signatures")
    assert score(TRANSCRIPTS, NO_COMET)[0]["judge_note"] == "not applicable: transcription only"
    monkeypatch.setattr(Judge, "required", lambda self, cfg: True)  # e.g. a `required` switch in its config
    with pytest.raises(MetricUnavailable, match="no judge model"):
        score(TRANSLATIONS, NO_COMET)
