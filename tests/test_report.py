"""The cross-run comparison on fabricated run dirs: means, spreads, deltas, significance, plots."""

from __future__ import annotations

import json
import statistics

import pytest

from src.evaluation.metrics import CometConfig, MetricsConfig
from src.evaluation.report import build_report
from src.evaluation.results import score, write_hypotheses, write_results
from src.report import main as report_main

REFS = {"de": [f"der hund {i} läuft schnell nach hause" for i in range(30)],
        "ja": [f"犬{i}は速く家に走る" for i in range(30)]}


def fake_run(root, name, strategy, seed, quality):
    """A run dir whose hypotheses keep the first `quality` fraction of each reference's words."""
    d = root / name
    (d / "eval" / "test").mkdir(parents=True)
    (d / "config.yaml").write_text(f"seed: {seed}\nupcycle:\n  strategy: {strategy}\n")
    rows = {}
    for lang, refs in REFS.items():
        rows[lang] = []
        for i, ref in enumerate(refs):
            cut = max(1, int(len(ref) * quality)) if lang == "ja" else None
            hyp = ref[:cut] if lang == "ja" else " ".join(ref.split()[: max(1, int(6 * quality))])
            rows[lang].append({"id": f"c{i}.{lang}", "src": f"dog {i}", "ref": ref, "hyp": hyp})
    write_hypotheses(d / "eval" / "test", rows)
    table = score(rows, MetricsConfig(comet=CometConfig(model=None)))
    write_results(d / "eval" / "test", table)
    (d / "eval" / "test" / "routing.json").write_text(json.dumps(
        {"encoder.layers.0": {"de": [0.5, 0.25, 0.25, 0.0], "ja": [0.1, 0.2, 0.3, 0.4]}}))
    return {r["direction"]: r for r in table}


def test_comparison_means_deltas_and_plots(tmp_path):
    sweep = tmp_path / "sweep"
    dense = fake_run(sweep, "0_dense", "dense", 1, 0.5)
    s1 = fake_run(sweep, "1_spri_s1", "spri", 1, 1.0)
    s2 = fake_run(sweep, "2_spri_s2", "spri", 2, 0.8)
    report = build_report([sweep], tmp_path / "out")
    rows = {r["strategy"]: r for r in report["rows"]}
    assert list(rows) == ["dense", "spri"]  # baseline first
    avg = [s1["average"]["bleu"], s2["average"]["bleu"]]
    assert rows["spri"]["seeds"] == 2
    assert rows["spri"]["bleu_avg"] == pytest.approx(statistics.fmean(avg))
    assert rows["spri"]["bleu_std"] == pytest.approx(statistics.stdev(avg))
    assert rows["spri"]["bleu_delta"] == pytest.approx(statistics.fmean(avg) - dense["average"]["bleu"])
    assert rows["spri"]["bleu_de"] == pytest.approx((s1["de"]["bleu"] + s2["de"]["bleu"]) / 2)
    assert rows["dense"]["bleu_delta"] == pytest.approx(0.0)
    # seed 1 of spri reproduces the references exactly, dense keeps half: both directions significantly better
    assert rows["spri"]["sig_better"] == 2 and rows["spri"]["sig_worse"] == 0
    assert rows["spri"]["comet_avg"] is None
    md = (tmp_path / "out" / "comparison.md").read_text()
    assert "| spri | 2 |" in md and "Δ vs dense" in md
    for name in ("bleu_by_direction.png", "expert_usage_spri.png", "expert_usage_dense.png"):
        data = (tmp_path / "out" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert "strategy" in (tmp_path / "out" / "comparison.csv").read_text().splitlines()[0]


def test_report_cli_errors_cleanly(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert "no run with eval/test/results.csv" in capsys.readouterr().err
