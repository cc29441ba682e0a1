"""The cross-run comparison on fabricated run dirs: means, spreads, deltas, significance, plots."""

from __future__ import annotations

import json
import statistics

import pytest

from src.evaluation.config import CometConfig, MetricsConfig
from src.evaluation.report import build_report
from src.evaluation.results import score, write_hypotheses, write_results
from src.report import main as report_main

REFS = {"de": [f"der hund {i} läuft schnell nach hause" for i in range(30)],
        "ja": [f"犬{i}は速く家に走る" for i in range(30)]}


def fake_run(root, name, strategy, seed, quality, stages=None, cost=None, params=None):
    """A run dir whose hypotheses keep the first `quality` fraction (a number, or one per language) of
    each reference's words. `stages`: trainer.stages' trainable lists for config.yaml; `cost`: per-stage
    (steps, tokens, seconds) for train_summary.json; `params`: (total, active) for upcycling_report.json."""
    d = root / name
    (d / "eval" / "test").mkdir(parents=True)
    config = f"seed: {seed}\nupcycle:\n  strategy: {strategy}\n"
    if stages is not None:
        config += "trainer:\n  stages:\n" + "".join(
            f"  - name: stage{i + 1}\n    steps: 10\n    trainable: [{', '.join(groups)}]\n"
            for i, groups in enumerate(stages))
    (d / "config.yaml").write_text(config)
    rows = {}
    for lang, refs in REFS.items():
        q = quality[lang] if isinstance(quality, dict) else quality
        rows[lang] = []
        for i, ref in enumerate(refs):
            cut = max(1, int(len(ref) * q)) if lang == "ja" else None
            hyp = ref[:cut] if lang == "ja" else " ".join(ref.split()[: max(1, int(6 * q))])
            rows[lang].append({"id": f"c{i}.{lang}", "src": f"dog {i}", "ref": ref, "hyp": hyp})
    write_hypotheses(d / "eval" / "test", rows)
    table = score(rows, MetricsConfig(comet=CometConfig(model=None)))
    write_results(d / "eval" / "test", table)
    (d / "eval" / "test" / "routing.json").write_text(json.dumps(
        {"encoder.layers.0": {"de": [0.5, 0.25, 0.25, 0.0], "ja": [0.1, 0.2, 0.3, 0.4]}}))
    if cost is not None:
        (d / "train_summary.json").write_text(json.dumps({"stages": [
            {"stage": f"stage{i + 1}", "steps": steps, "tokens": tokens, "seconds": seconds, "losses": []}
            for i, (steps, tokens, seconds) in enumerate(cost)]}))
    if params is not None:
        (d / "upcycling_report.json").write_text(json.dumps(
            {"strategy": strategy, "total_parameters": params[0], "active_parameters": params[1]}))
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
    # Δ over the seeds both ran (seed 1): the centre of its interval
    assert rows["spri"]["bleu_delta"] == pytest.approx(s1["average"]["bleu"] - dense["average"]["bleu"])
    assert rows["spri"]["bleu_delta_ci_low"] < rows["spri"]["bleu_delta"] < rows["spri"]["bleu_delta_ci_high"]
    assert rows["spri"]["bleu_de"] == pytest.approx((s1["de"]["bleu"] + s2["de"]["bleu"]) / 2)
    assert rows["dense"]["bleu_delta"] == pytest.approx(0.0)
    assert rows["dense"]["bleu_std"] is None  # one seed has no spread (shown "± n/a"), not a spread of 0
    # seed 1 of spri reproduces the references exactly, dense keeps half: both directions significantly better
    assert rows["spri"]["sig_better"] == 2 and rows["spri"]["sig_worse"] == 0
    assert rows["spri"]["comet_avg"] is None
    md = (tmp_path / "out" / "comparison.md").read_text()
    assert "| spri | n/a | 2 |" in md and "Δ vs dense" in md
    assert f"| {dense['average']['bleu']:.2f} ± n/a [" in md
    for name in ("bleu_by_direction.png", "expert_usage_spri.png", "expert_usage_dense.png"):
        data = (tmp_path / "out" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert "strategy" in (tmp_path / "out" / "comparison.csv").read_text().splitlines()[0]


def test_report_cli_errors_cleanly(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert "no run with eval/test/results.csv" in capsys.readouterr().err


# 2 strategies x 3 seeds: spri keeps most of each reference, dense little; spri's seed 3 is poor in ja.
DENSE_Q = {1: 0.3, 2: 0.35, 3: 0.4}
SPRI_Q = {1: 1.0, 2: 0.9, 3: {"de": 1.0, "ja": 0.1}}
ONE_STAGE, SPRI_STAGES = [["all"]], [["residual", "router"], ["all"]]


def seeds_sweep(root):
    out = {"dense": {}, "spri": {}}
    for seed in (1, 2, 3):
        out["dense"][seed] = fake_run(root, f"dense_s{seed}", "dense", seed, DENSE_Q[seed], ONE_STAGE,
                                      cost=[(100, 5000 + seed, 60.0 + seed)], params=(40_100_000, 40_100_000))
        out["spri"][seed] = fake_run(root, f"spri_s{seed}", "spri", seed, SPRI_Q[seed], SPRI_STAGES,
                                     cost=[(30, 1000 * seed, 20.0), (70, 3000, 40.0 + seed)],
                                     params=(160_400_000, 52_300_000 + seed))
    return out


def test_seeds_mean_std_and_significance_per_seed_pair(tmp_path):
    runs = seeds_sweep(tmp_path / "sweep")
    report = build_report([tmp_path / "sweep"], tmp_path / "out")
    rows = {r["strategy"]: r for r in report["rows"]}
    assert list(rows) == ["dense", "spri"]
    for strategy in rows:
        avg = [runs[strategy][seed]["average"]["bleu"] for seed in (1, 2, 3)]
        assert rows[strategy]["seeds"] == 3
        assert rows[strategy]["bleu_avg"] == pytest.approx(statistics.fmean(avg))
        assert rows[strategy]["bleu_std"] == pytest.approx(statistics.stdev(avg))
        assert rows[strategy]["comet_avg"] is None and rows[strategy]["comet_std"] is None
    spri, dense = rows["spri"], rows["dense"]
    # one bootstrap per seed pair: seeds 1 and 2 better in both directions, seed 3 better in de, worse in ja
    assert spri["sig_pairs"] == 3
    assert spri["sig_per_seed"] == "s1 2/0, s2 2/0, s3 1/1"
    assert (spri["sig_better"], spri["sig_worse"]) == (5, 1)
    pvals = json.loads(spri["p_values"])
    assert sorted(pvals) == ["1", "2", "3"] and all(sorted(p) == ["de", "ja"] for p in pvals.values())
    assert all(p < 0.05 for seed in pvals.values() for p in seed.values())
    assert "sig_better" not in dense  # the baseline is not compared with itself
    assert (spri["schedule"], dense["schedule"]) == ("2 stages: residual+router 50% -> all", "1 stage: all")
    # cost: per run the sum over its stages, then the mean over seeds
    assert spri["steps"] == 100 and dense["steps"] == 100
    assert spri["tokens"] == pytest.approx(statistics.fmean(1000 * s + 3000 for s in (1, 2, 3)))
    assert spri["seconds"] == pytest.approx(statistics.fmean(60.0 + s for s in (1, 2, 3)))
    assert dense["tokens"] == pytest.approx(5002) and dense["seconds"] == pytest.approx(62.0)
    assert spri["total_params"] == 160_400_000 and spri["active_params"] == pytest.approx(52_300_002)
    md = report["markdown"]
    assert "| spri | 2 stages: residual+router 50% -> all | 3 |" in md
    assert "| s1 2/0, s2 2/0, s3 1/1 |" in md and "| 5/1 |" in md
    assert f"{statistics.fmean([runs['spri'][s]['average']['bleu'] for s in (1, 2, 3)]):.2f} ± " in md
    assert "| 100 | 5.0k | 1.0 | 52.3M / 160.4M |" in md and "| 100 | 5.0k | 1.0 | 40.1M / 40.1M |" in md
    assert md.index("sig. +/−: directions") < md.index("| strategy |")  # the columns explained above the table
    csv_text = (tmp_path / "out" / "comparison.csv").read_text()
    assert "sig_per_seed" in csv_text.splitlines()[0] and "tokens" in csv_text.splitlines()[0]


def test_schedules_are_separate_rows_and_missing_cost_is_na(tmp_path):
    sweep = tmp_path / "sweep"
    fake_run(sweep, "dense", "dense", 1, 0.5, ONE_STAGE, cost=[(100, 500, 30.0)], params=(1000, 1000))
    fake_run(sweep, "vanilla_1", "vanilla", 1, 0.8, ONE_STAGE, cost=[(100, 500, 30.0)], params=(4000, 2000))
    fake_run(sweep, "vanilla_2", "vanilla", 1, 0.9, [["router", "experts"], ["all"]])  # an older run dir: no cost
    report = build_report([sweep], tmp_path / "out")
    rows = {(r["strategy"], r["schedule"]): r for r in report["rows"]}
    assert list(rows) == [("dense", "1 stage: all"), ("vanilla", "1 stage: all"),
                          ("vanilla", "2 stages: router+experts 50% -> all")]
    old = rows[("vanilla", "2 stages: router+experts 50% -> all")]
    assert all(old[k] is None for k in ("steps", "tokens", "seconds", "active_params", "total_params"))
    assert rows[("vanilla", "1 stage: all")]["steps"] == 100
    md = report["markdown"]
    old_line = next(line for line in md.splitlines() if "router+experts" in line)
    assert old_line.endswith("| n/a | n/a | n/a | n/a |") and "| 0 |" not in old_line
    assert (tmp_path / "out" / "expert_usage_vanilla_2_stages_router+experts_50_all.png").exists()
    assert (tmp_path / "out" / "expert_usage_vanilla_1_stage_all.png").exists()


def test_report_without_baseline_has_no_deltas(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    fake_run(sweep, "spri", "spri", 1, 0.9, SPRI_STAGES)
    fake_run(sweep, "drop", "drop", 1, 0.7, SPRI_STAGES)
    assert report_main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "No dense run found" in printed and "Δ vs dense" not in printed and "sig. +/−" not in printed
    assert "| drop | 2 stages: residual+router 50% -> all | 1 |" in printed
    assert (tmp_path / "out" / "comparison.md").read_text() in printed


def test_failed_jobs_are_skipped_with_a_note(tmp_path, caplog):
    from src.evaluation.report import find_runs

    fake_run(tmp_path, "0_dense", "dense", 1, 0.5)
    fake_run(tmp_path, "1_vanilla", "vanilla", 1, 0.9)
    failed = {"status": "failed", "error": "error: CUDA out of memory"}
    (tmp_path / "1_vanilla" / "status.json").write_text(json.dumps(failed))
    with caplog.at_level("WARNING"):
        runs = find_runs([tmp_path], "test")
    assert [r.strategy for r in runs] == ["dense"]
    assert "the job failed (error: CUDA out of memory); skipped" in caplog.text


def test_report_names_models_selection_and_different_machines(tmp_path):
    sweep = tmp_path / "sweep"
    cpu = {"cpu": "AMD EPYC", "cpu_capability": "AVX2", "torch_threads": 1, "torch": "2.11.0", "gpus": []}
    for name, strategy, seed, machine, rule in (("d1", "dense", 1, cpu, "last"), ("d2", "dense", 2, cpu, "last"),
                                                ("s1", "spri", 1, {**cpu, "cpu": "Intel Xeon"}, "last"),
                                                ("s2", "spri", 2, cpu, "best dev loss (every 100 steps)")):
        fake_run(sweep, name, strategy, seed, 0.5 if strategy == "dense" else 0.9)
        (sweep / name / "train_summary.json").write_text(json.dumps({
            "stages": [], "machine": machine, "selection": {"label": rule},
            "model": {"label": f"toy seed{seed}-abc"}}))
    report = build_report([sweep], tmp_path / "out")
    md = report["markdown"]
    assert "Pretrained model per seed: seed 1: toy seed1-abc; seed 2: toy seed2-abc." in md
    assert "**The runs come from 2 different machines**" in md and "Intel Xeon (AVX2)" in md
    assert "**not the same rule for every row**" in md
    rows = {r["strategy"]: r for r in report["rows"]}
    assert rows["dense"]["selection"] == "last"
    assert rows["spri"]["selection"] == "best dev loss (every 100 steps) / last"
