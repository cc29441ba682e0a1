"""The cross-run comparison on fabricated run dirs: means, spreads, deltas with their intervals, the per-direction
evidence (dirs +/−), unpaired rows, repeated seeds, skipped runs, cost, provenance and plots."""

from __future__ import annotations

import json
import statistics

import pytest

from src.evaluation.config import CometConfig, MetricsConfig
from src.evaluation.discovery import find_runs
from src.evaluation.intervals import SEEDS, TEST_ONLY, UNPAIRED
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
    rows = {r["method"]: r for r in report["rows"]}
    assert list(rows) == ["dense", "spri"]  # baseline first
    assert rows["dense"]["baseline"] is True and rows["spri"]["baseline"] is False
    avg = [s1["average"]["bleu"], s2["average"]["bleu"]]
    assert rows["spri"]["seeds"] == 2 and rows["spri"]["bleu_n"] == 2 and rows["spri"]["seed_list"] == "1 2"
    assert rows["spri"]["bleu_avg"] == pytest.approx(statistics.fmean(avg))
    assert rows["spri"]["bleu_sd"] == pytest.approx(statistics.stdev(avg))
    assert rows["spri"]["bleu_ci_kind"] == SEEDS and rows["dense"]["bleu_ci_kind"] == TEST_ONLY
    # Δ over the seeds both ran (seed 1): the centre of its interval, which rests on that one seed pair
    assert rows["spri"]["bleu_delta"] == pytest.approx(s1["average"]["bleu"] - dense["average"]["bleu"])
    assert rows["spri"]["bleu_delta_ci_low"] < rows["spri"]["bleu_delta"] < rows["spri"]["bleu_delta_ci_high"]
    assert rows["spri"]["bleu_delta_ci_low"] > 0 and rows["spri"]["bleu_delta_ci_p"] < 0.05
    assert rows["spri"]["bleu_delta_ci_kind"] == TEST_ONLY
    assert rows["spri"]["bleu_de"] == pytest.approx((s1["de"]["bleu"] + s2["de"]["bleu"]) / 2)
    # the baseline is not compared with itself: no Δ, no interval, no per-direction evidence
    assert rows["dense"]["bleu_delta"] is None and rows["dense"]["bleu_delta_ci_kind"] is None
    assert rows["dense"]["bleu_dirs_better"] is None and rows["dense"]["bleu_dirs_worse"] is None
    assert rows["dense"]["bleu_sd"] is None  # one seed has no spread (no "±" shown), not a spread of 0
    # seed 1 of spri keeps (nearly) all of each reference, dense half: better in both directions, worse in none
    assert rows["spri"]["bleu_dirs_better"] == 2 and rows["spri"]["bleu_dirs_worse"] == 0
    assert rows["spri"]["comet_avg"] is None and rows["spri"]["comet_n"] == 0
    # the typed comparison holds the same numbers, and each direction's Δ is paired on seed 1
    cmp = report["comparison"]
    spri = cmp.rows[1]
    assert (spri.method, spri.seeds, spri.duplicates) == ("spri", [1, 2], [])
    cells = spri.metrics["bleu"]
    assert cells.mean == pytest.approx(rows["spri"]["bleu_avg"]) and cells.n == 2
    assert sorted(cells.direction_deltas) == ["de", "ja"]
    for d, dd in cells.direction_deltas.items():
        assert dd.delta == pytest.approx(s1[d]["bleu"] - dense[d]["bleu"], abs=1e-6)
        assert dd.significant and dd.ci.low > 0 and dd.ci.kind == TEST_ONLY
    assert cells.directions_better_worse == (2, 0)
    md = (tmp_path / "out" / "comparison.md").read_text()
    assert md == report["markdown"]
    assert "| spri | n/a | 2 |" in md and "| Δ BLEU vs dense [95% CI] | dirs +/− vs dense (Holm) |" in md
    assert "| 2/0 of 2 |" in md
    assert f"| {dense['average']['bleu']:.2f} (n=1) [" in md and "± n/a" not in md
    assert f"| {statistics.fmean(avg):.2f} ± {statistics.stdev(avg):.2f} (n=2) [" in md
    assert "COMET" not in md  # no row has COMET: no COMET columns
    delta = rows["spri"]["bleu_delta"]
    assert (f"- spri: Δ BLEU {delta:+.2f} [{rows['spri']['bleu_delta_ci_low']:+.2f}, "
            f"{rows['spri']['bleu_delta_ci_high']:+.2f}] over 1 seed pair (test set only: these models, not the "
            "methods): better than dense") in md
    for name in ("bleu_by_direction.png", "bleu_delta.png", "expert_usage_spri.png", "expert_usage_dense.png"):
        data = (tmp_path / "out" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    head = (tmp_path / "out" / "comparison.csv").read_text().splitlines()[0]
    assert head.startswith("method,schedule,schedule_key,seeds,") and "strategy" not in head


def test_report_cli_errors_cleanly(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert "no readable run with eval/test/results.csv" in capsys.readouterr().err
    assert report_main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


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


def test_seeds_mean_sd_and_per_direction_evidence_paired_by_seed(tmp_path):
    runs = seeds_sweep(tmp_path / "sweep")
    report = build_report([tmp_path / "sweep"], tmp_path / "out")
    rows = {r["method"]: r for r in report["rows"]}
    assert list(rows) == ["dense", "spri"]
    for method in rows:
        avg = [runs[method][seed]["average"]["bleu"] for seed in (1, 2, 3)]
        assert rows[method]["seeds"] == 3 and rows[method]["bleu_n"] == 3
        assert rows[method]["bleu_avg"] == pytest.approx(statistics.fmean(avg))
        assert rows[method]["bleu_sd"] == pytest.approx(statistics.stdev(avg))
        assert rows[method]["comet_avg"] is None and rows[method]["comet_sd"] is None
    spri, dense = rows["spri"], rows["dense"]

    def diffs(key):  # spri - dense, seed s against seed s
        return [runs["spri"][s][key]["bleu"] - runs["dense"][s][key]["bleu"] for s in (1, 2, 3)]

    assert spri["bleu_delta"] == pytest.approx(statistics.fmean(diffs("average")))
    assert spri["bleu_delta_ci_kind"] == SEEDS
    # every seed is better in de; in ja seeds 1 and 2 are better and seed 3 worse: only de is claimed
    assert all(d > 0 for d in diffs("de")) and diffs("ja")[2] < 0 < min(diffs("ja")[:2])
    dd = report["comparison"].rows[1].metrics["bleu"].direction_deltas
    assert sorted(dd) == ["de", "ja"] and all(d.ci.kind == SEEDS and d.ci.n == 3 for d in dd.values())
    assert dd["de"].delta == pytest.approx(statistics.fmean(diffs("de")), abs=1e-6)
    assert dd["ja"].delta == pytest.approx(statistics.fmean(diffs("ja")), abs=1e-6)
    assert dd["de"].significant and dd["de"].ci.low > 0
    assert not dd["ja"].significant and dd["ja"].ci.low < 0 < dd["ja"].ci.high
    assert (spri["bleu_dirs_better"], spri["bleu_dirs_worse"]) == (1, 0)
    assert dense["bleu_dirs_better"] is None and dense["bleu_delta"] is None  # the baseline is not compared
    assert (spri["schedule"], dense["schedule"]) == ("2 stages: residual+router 50% -> all", "1 stage: all")
    assert (spri["schedule_key"], dense["schedule_key"]) == ("two_stage50", "one_stage")
    # cost: per run the sum over its stages, then the mean over seeds
    assert spri["steps"] == 100 and dense["steps"] == 100
    assert spri["tokens"] == pytest.approx(statistics.fmean(1000 * s + 3000 for s in (1, 2, 3)))
    assert spri["seconds"] == pytest.approx(statistics.fmean(60.0 + s for s in (1, 2, 3)))
    assert dense["tokens"] == pytest.approx(5002) and dense["seconds"] == pytest.approx(62.0)
    assert spri["total_params"] == 160_400_000 and spri["active_params"] == pytest.approx(52_300_002)
    md = report["markdown"]
    assert "| spri | 2 stages: residual+router 50% -> all | 3 |" in md
    assert "| 1/0 of 2 |" in md
    assert f"{statistics.fmean([runs['spri'][s]['average']['bleu'] for s in (1, 2, 3)]):.2f} ± " in md
    assert "| 100 | 5.0k | 1.0 | 52.3M / 160.4M |" in md and "| 100 | 5.0k | 1.0 | 40.1M / 40.1M |" in md
    assert md.index("dirs +/−: directions") < md.index("| method |")  # the columns explained above the table
    low, high = spri["bleu_delta_ci_low"], spri["bleu_delta_ci_high"]
    assert low < 0 < high and " n.s. |" in md  # seed 3's ja leaves the average's Δ open
    assert (f"- spri: Δ BLEU {spri['bleu_delta']:+.2f} [{low:+.2f}, {high:+.2f}] over 3 seed pairs: "
            f"inconclusive: the interval allows {low:+.2f} to {high:+.2f}") in md
    per = (tmp_path / "out" / "per_direction.md").read_text()
    assert f"| spri | {dd['de'].delta:+.1f}* [" in per and f"| {dd['ja'].delta:+.1f} [" in per
    assert f"{dd['ja'].delta:+.1f}*" not in per
    csv_head = (tmp_path / "out" / "comparison.csv").read_text().splitlines()[0].split(",")
    assert {"bleu_dirs_better", "bleu_dirs_worse", "bleu_delta_ci_p", "bleu_delta_ci_kind", "tokens"} <= set(csv_head)


def test_schedules_are_separate_rows_and_missing_cost_is_na(tmp_path):
    sweep = tmp_path / "sweep"
    fake_run(sweep, "dense", "dense", 1, 0.5, ONE_STAGE, cost=[(100, 500, 30.0)], params=(1000, 1000))
    fake_run(sweep, "vanilla_1", "vanilla", 1, 0.8, ONE_STAGE, cost=[(100, 500, 30.0)], params=(4000, 2000))
    fake_run(sweep, "vanilla_2", "vanilla", 1, 0.9, [["router", "experts"], ["all"]])  # an older run dir: no cost
    report = build_report([sweep], tmp_path / "out")
    rows = {(r["method"], r["schedule"]): r for r in report["rows"]}
    assert list(rows) == [("dense", "1 stage: all"), ("vanilla", "1 stage: all"),
                          ("vanilla", "2 stages: router+experts 50% -> all")]
    # the same seed in two schedules is two rows, not a repeated seed
    assert [(r.schedule_key, r.seeds, r.duplicates) for r in report["comparison"].rows] == [
        ("one_stage", [1], []), ("one_stage", [1], []), ("two_stage50", [1], [])]
    old = rows[("vanilla", "2 stages: router+experts 50% -> all")]
    assert all(old[k] is None for k in ("steps", "tokens", "seconds", "active_params", "total_params"))
    assert rows[("vanilla", "1 stage: all")]["steps"] == 100
    md = report["markdown"]
    old_line = next(line for line in md.splitlines() if "router+experts" in line and line.startswith("|"))
    assert old_line.endswith("| n/a | n/a | n/a | n/a | n/a |") and "| 0 |" not in old_line
    new_line = next(line for line in md.splitlines() if line.startswith("| vanilla | 1 stage: all |"))
    assert new_line.endswith("| n/a | 100 | 500 | 0.5 | 2.0k / 4.0k |")
    # a method with several rows is named with its schedule
    assert "- vanilla (1 stage: all): Δ BLEU +" in md and "- vanilla (2 stages: router+experts 50% -> all): Δ" in md
    assert (tmp_path / "out" / "expert_usage_vanilla_2_stages_router+experts_50_all.png").exists()
    assert (tmp_path / "out" / "expert_usage_vanilla_1_stage_all.png").exists()


def test_report_without_baseline_has_no_deltas(tmp_path, capsys):
    import csv

    sweep = tmp_path / "sweep"
    fake_run(sweep, "spri", "spri", 1, 0.9, SPRI_STAGES)
    fake_run(sweep, "drop", "drop", 1, 0.7, SPRI_STAGES)
    assert report_main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "No dense run found: no Δs." in printed
    assert "Δ BLEU vs dense" not in printed and "dirs +/−" not in printed and "What the intervals allow" not in printed
    assert "| drop | 2 stages: residual+router 50% -> all | 1 |" in printed
    assert (tmp_path / "out" / "comparison.md").read_text() in printed
    with open(tmp_path / "out" / "comparison.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["drop", "spri"] and all(r["baseline"] == "False" for r in rows)
    assert all(r["bleu_delta"] == "" and r["bleu_delta_ci_kind"] == "" and r["bleu_dirs_better"] == ""
               for r in rows)
    assert all(r["bleu_ci_kind"] == TEST_ONLY for r in rows)  # each row still has its own interval
    assert not (tmp_path / "out" / "per_direction.md").exists() and not (tmp_path / "out" / "bleu_delta.png").exists()


def test_failed_jobs_are_skipped_with_a_note(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    fake_run(sweep, "0_dense", "dense", 1, 0.5)
    fake_run(sweep, "1_vanilla", "vanilla", 1, 0.9)
    failed = {"status": "failed", "error": "error: CUDA out of memory"}
    (sweep / "1_vanilla" / "status.json").write_text(json.dumps(failed))
    with caplog.at_level("WARNING"):
        runs, skipped = find_runs([sweep], "test")
    assert [r.label.method for r in runs] == ["dense"]
    assert [(s.path, s.reason) for s in skipped] == [
        (sweep / "1_vanilla", "the job failed (error: CUDA out of memory)")]
    assert "1_vanilla: skipped: the job failed (error: CUDA out of memory)" in caplog.text
    report = build_report([sweep], tmp_path / "out")
    assert [r["method"] for r in report["rows"]] == ["dense"]
    assert (f"Skipped (1): `{sweep / '1_vanilla'}`: the job failed (error: CUDA out of memory)."
            in report["markdown"])


def test_an_unfinished_run_is_skipped_with_the_command_that_continues_it(tmp_path):
    sweep = tmp_path / "sweep"
    fake_run(sweep, "0_dense", "dense", 1, 0.5)
    for name, status in (("1_cut", {"status": "preempted", "signal": 15, "global_step": 150}), ("2_going", None)):
        (sweep / name / "checkpoints").mkdir(parents=True)
        (sweep / name / "config.yaml").write_text("seed: 1\nupcycle:\n  strategy: vanilla\n")
        if status:
            (sweep / name / "status.json").write_text(json.dumps(status))
    (sweep / "0_dense" / "checkpoints").mkdir()  # an older finished run: results, no status.json: read, not skipped
    runs, skipped = find_runs([sweep], "test")
    assert [r.label.method for r in runs] == ["dense"]
    assert [(s.path.name, s.reason) for s in skipped] == [
        ("1_cut", "stopped at step 150 (signal 15): its training command continues it"),
        ("2_going", "not finished (running, or killed): its training command continues it")]


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
    rows = {r["method"]: r for r in report["rows"]}
    assert rows["dense"]["selection"] == "last"
    assert rows["spri"]["selection"] == "best dev loss (every 100 steps) / last"


def _table_cell(md: str, row_start: str, column: str) -> str:
    """The cell of the comparison table's `column` in the line starting with `row_start`."""
    lines = md.splitlines()
    head = next(line for line in lines if line.startswith("| method |"))
    line = next(line for line in lines if line.startswith(row_start))
    names, cells = head.strip("|").split(" | "), line.strip("|").split(" | ")
    assert len(names) == len(cells)
    return cells[[n.strip() for n in names].index(column)].strip()


def test_rows_sharing_no_seed_with_the_baseline_get_an_unpaired_interval(tmp_path):
    sweep = tmp_path / "sweep"
    dense = [fake_run(sweep, f"dense_s{s}", "dense", s, q) for s, q in ((1, 0.5), (2, 0.7))]
    vanilla = [fake_run(sweep, f"vanilla_s{s}", "vanilla", s, q) for s, q in ((5, 0.85), (6, 1.0))]
    report = build_report([sweep], tmp_path / "out")
    rows = {r["method"]: r for r in report["rows"]}
    v = rows["vanilla"]
    assert v["seed_list"] == "5 6" and rows["dense"]["seed_list"] == "1 2"
    assert v["bleu_delta_ci_kind"] == UNPAIRED
    # no seed pairs: the difference of the means
    assert v["bleu_delta"] == pytest.approx(statistics.fmean(r["average"]["bleu"] for r in vanilla)
                                            - statistics.fmean(r["average"]["bleu"] for r in dense))
    assert v["bleu_delta_ci_low"] < v["bleu_delta"] < v["bleu_delta_ci_high"]
    dd = report["comparison"].rows[1].metrics["bleu"].direction_deltas
    assert sorted(dd) == ["de", "ja"] and all(d.ci.kind == UNPAIRED and d.ci.n == 2 for d in dd.values())
    md = report["markdown"]
    cell = _table_cell(md, "| vanilla |", "Δ BLEU vs dense [95% CI]")
    assert cell.startswith(f"{v['bleu_delta']:+.2f} [") and cell.endswith("unpaired")
    assert "unpaired" not in _table_cell(md, "| vanilla |", "BLEU avg ± sd (n) [95% CI]")
    assert "rows with no seed in common: an unpaired interval (flagged)" in md
    assert f"- vanilla: Δ BLEU {v['bleu_delta']:+.2f} [" in md and "] unpaired, n=2: " in md


def test_a_repeated_seed_is_left_out_and_listed(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    fake_run(sweep, "dense_s1", "dense", 1, 0.5)
    kept = fake_run(sweep, "a_spri_s1", "spri", 1, 1.0)
    repeat = fake_run(sweep, "b_spri_s1", "spri", 1, 0.6)  # the same method and seed again
    assert kept["average"]["bleu"] != pytest.approx(repeat["average"]["bleu"])
    with caplog.at_level("WARNING"):
        report = build_report([sweep], tmp_path / "out")
    spri = report["comparison"].rows[1]
    assert spri.method == "spri" and spri.seeds == [1] and len(spri.runs) == 1
    assert spri.runs[1].path == sweep / "a_spri_s1"  # the first by path is used
    assert spri.duplicates == [sweep / "b_spri_s1"]
    row = next(r for r in report["rows"] if r["method"] == "spri")
    assert row["seeds"] == 1 and row["seed_list"] == "1" and row["bleu_n"] == 1 and row["bleu_sd"] is None
    assert row["bleu_avg"] == pytest.approx(kept["average"]["bleu"])  # not the mean with the repeat
    assert row["bleu_delta_ci_kind"] == TEST_ONLY  # one seed pair
    md = report["markdown"]
    assert "| spri | n/a | 1 |" in md
    assert f"Left out, repeating a seed of their row: `{sweep / 'b_spri_s1'}`." in md
    assert "b_spri_s1 repeats a seed of spri" in caplog.text


def test_each_rows_init_cost_is_a_column_where_some_run_records_it(tmp_path):
    def with_init(d, kl, wer):
        path = d / "upcycling_report.json"
        report = json.loads(path.read_text())
        report["init_loss"] = {"kl": kl, "ratio": 1.0}
        if wer is not None:
            report["init_eval"] = {"task": "transcribe", "decoding": "greedy", "splits": {"test": {"wer": wer}}}
        path.write_text(json.dumps(report))

    sweep = tmp_path / "sweep"
    fake_run(sweep, "dense", "dense", 1, 0.5, ONE_STAGE, params=(1000, 1000))
    for seed, kl, wer in ((1, 0.01, 10.0), (2, 0.03, 12.5)):
        fake_run(sweep, f"random_{seed}", "random", seed, 0.7, ONE_STAGE, params=(4000, 2000))
        with_init(sweep / f"random_{seed}", kl, wer)
    fake_run(sweep, "drop_1", "drop", 1, 0.7, ONE_STAGE, params=(4000, 2000))
    with_init(sweep / "drop_1", 0.5, None)  # its init never decoded
    md = build_report([sweep], tmp_path / "out")["markdown"]
    assert _table_cell(md, "| random |", "KL at init") == "0.02"
    assert _table_cell(md, "| random |", "EN WER at init") == "11.2"  # (10.0 + 12.5) / 2, one decimal
    assert _table_cell(md, "| drop |", "KL at init") == "0.5" and _table_cell(md, "| drop |", "EN WER at init") == "n/a"
    assert _table_cell(md, "| dense |", "KL at init") == "n/a"  # nothing upcycled: nothing measured, never 0
    assert "EN WER at init: greedy English WER of the init" in md
    bare = tmp_path / "bare"  # no run records an init cost: no such columns
    fake_run(bare, "dense", "dense", 1, 0.5, ONE_STAGE, params=(1000, 1000))
    fake_run(bare, "random_1", "random", 1, 0.7, ONE_STAGE, params=(4000, 2000))
    assert "at init" not in build_report([bare], tmp_path / "out2")["markdown"]
