"""Run records (src/evaluation/records.py): one module writes and reads train_summary.json and
upcycling_report.json; the row label is written at train time, derived alike for older run dirs; unknown keys
survive; a damaged file costs its run, named in one line, not the comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.evaluation.discovery import find_runs
from src.evaluation.records import MethodLabel, RecordError, TrainSummary, UpcyclingReport, run_cost, schedule_labels

TWO = [{"steps": 100, "trainable": ["residual", "router"]}, {"steps": 200, "trainable": ["all"]}]


def test_method_labels_name_added_methods_but_not_a_strategys_own():
    moe = {"num_experts": 4, "dpsl": {"coef": 0.1}, "self_distill": {"coef": 0.5}, "sd_moe": {"rank": 0}}
    spri = MethodLabel.from_config({"upcycle": {"strategy": "spri"}, "moe": moe, "trainer": {"stages": TWO}}, 4)
    assert spri == MethodLabel("spri+distill+dpsl", "2 stages: residual+router 33% -> all", "two_stage33")
    cluster = MethodLabel.from_config({"upcycle": {"strategy": "cluster"}, "moe": moe}, 4)
    assert cluster.method == "cluster+dpsl" and cluster.schedule is None  # distillation is cluster's own
    assert MethodLabel.from_config({"upcycle": {"strategy": "dense"}, "moe": moe}, 1).method == "dense"
    assert MethodLabel.from_config({"moe": moe}).method == "dense"  # no upcycle group: the dense model
    assert schedule_labels([{"steps": 5, "trainable": "all"}]) == ("1 stage: all", "one_stage")
    assert schedule_labels([{"trainable": ["router"]}, {"trainable": ["all"]}]) == \
        ("2 stages: router -> all", "two_stage")  # steps unknown: no share


def test_a_two_stage_row_is_named_by_its_configured_share_not_its_rounded_step_count():
    """trainer.stage1_fraction 0.3333 of 200 steps gives stage 1 67 steps (33.5%): still the 33% row the study
    planned and its family names (base_cpu's SPRI two-stage row once read `two_stage34` and left the contrast
    untested)."""
    stages = [{"steps": 67, "trainable": ["residual", "router"]}, {"steps": 133, "trainable": ["all"]}]
    cfg = {"upcycle": {"strategy": "spri"}, "trainer": {"stages": stages, "stage1_fraction": 0.3333}}
    assert MethodLabel.from_config(cfg, 4).schedule_key == "two_stage33"
    assert MethodLabel.from_config(cfg, 4).schedule == "2 stages: residual+router 33% -> all"
    assert schedule_labels(stages) == ("2 stages: residual+router 34% -> all", "two_stage34")  # explicit steps


def test_summary_round_trip_keeps_unknown_keys(tmp_path):
    s = TrainSummary(checkpoint="checkpoints/last", stages=[{"steps": 3, "tokens": 30, "seconds": 1.5}],
                     extra={"future_key": [1, 2]})
    s.write(tmp_path)
    back = TrainSummary.read(tmp_path)
    assert back == s and json.loads((tmp_path / "train_summary.json").read_text())["future_key"] == [1, 2]
    assert back.cost.steps == 3 and back.cost.tokens == 30 and back.cost.seconds == 1.5
    rep = UpcyclingReport(strategy="spri", num_experts=4, total_parameters=10, active_parameters=6,
                          extra={"sd_moe": {"rank": 2}})
    rep.write(tmp_path)
    assert UpcyclingReport.read(tmp_path) == rep
    cost = run_cost(tmp_path)
    assert (cost.steps, cost.total_params, cost.active_params) == (3, 10, 6)
    assert TrainSummary.read(tmp_path / "nowhere") is None


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"stages": 5, "selection": null, "bogus": 1}'])
def test_damaged_or_odd_summaries(tmp_path, text):
    (tmp_path / "train_summary.json").write_text(text)
    if text.startswith("{\""):  # odd but readable: fields that are not what they should be read as empty
        s = TrainSummary.read(tmp_path)
        assert s.stages == [] and s.selection == {} and s.extra == {"bogus": 1} and s.cost.steps is None
        return
    with pytest.raises(RecordError, match="train_summary.json"):
        TrainSummary.read(tmp_path)


def old_run(root, name: str, strategy: str, seed: int, summary: str | None) -> None:
    """A run dir as this project wrote them before the row label was recorded (a summary without `method`)."""
    from src.evaluation.results import write_results

    d = root / name
    (d / "eval" / "test").mkdir(parents=True)
    (d / "config.yaml").write_text(f"seed: {seed}\nupcycle:\n  strategy: {strategy}\nmoe:\n  num_experts: 4\n"
                                   "  dpsl:\n    coef: 0.2\ntrainer:\n  stages:\n  - {steps: 40, trainable: [all]}\n")
    write_results(d / "eval" / "test", [{"direction": "de", "bleu": 20.0 + seed, "segments": 3},
                                        {"direction": "average", "bleu": 20.0 + seed, "segments": 3}])
    if summary is not None:
        (d / "train_summary.json").write_text(summary)


def test_old_run_dirs_load_and_a_damaged_one_is_skipped_by_name(tmp_path, caplog):
    old_run(tmp_path, "a", "spri", 1, json.dumps({"stages": [{"steps": 40, "tokens": 400, "seconds": 2.0}],
                                                  "selection": {"label": "last"}}))
    old_run(tmp_path, "b", "dense", 1, None)
    old_run(tmp_path, "c", "vanilla", 1, "{truncated")
    runs, skipped = find_runs([tmp_path], "test")
    by = {r.path.name: r for r in runs}
    assert by["a"].label == MethodLabel("spri+dpsl", "1 stage: all", "one_stage")
    assert by["a"].cost.steps == 40 and by["a"].selection == "last"
    assert by["b"].label.method == "dense" and by["b"].cost.steps is None
    assert [s.path.name for s in skipped] == ["c"] and "train_summary.json is unreadable" in skipped[0].reason
    assert "c: skipped: " in caplog.text


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "bleu=abc", "no average"])
def test_a_damaged_results_csv_costs_its_run_not_the_comparison(tmp_path, damage, capsys):
    """Issue 33's probe: one damaged results.csv among three runs ended the whole comparison with a traceback."""
    from src.report import main as report_main

    for name, strategy in (("dense", "dense"), ("vanilla", "vanilla"), ("random", "random")):
        old_run(tmp_path, name, strategy, 1, None)
    results = tmp_path / "random" / "eval" / "test" / "results.csv"
    text = results.read_text()
    results.write_bytes({"truncated": text[: len(text) // 2].encode(), "random bytes": bytes(range(256)) * 4,
                         "bleu=abc": text.replace("21.0", "abc").encode(),
                         "no average": text.split("average")[0].rsplit("\n", 1)[0].encode()}[damage])
    assert report_main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| dense |" in out and "| vanilla+dpsl |" in out and "| random" not in out  # old_run's moe has dpsl
    assert f"Skipped (1): `{tmp_path / 'random'}`: {results} " in out and "rescore=true" in out
    # nothing readable left: exit 2 with one line
    for name in ("dense", "vanilla"):
        (tmp_path / name / "eval" / "test" / "results.csv").write_bytes(b"\xff\xfe")
    assert report_main([str(tmp_path), "--out", str(tmp_path / "out2")]) == 2
    assert "no readable run" in capsys.readouterr().err


def test_a_copied_run_dir_reads_its_own_checkpoint(tmp_path):
    """Issue 33's probe: train_summary.json stored absolute checkpoint paths, so `src.evaluate` on a copy of a
    run dir evaluated (and overwrote results from) the original's checkpoint."""
    import shutil

    run = tmp_path / "run"
    (run / "checkpoints" / "finetune").mkdir(parents=True)
    TrainSummary(run_dir=str(run), checkpoint=str(run / "checkpoints" / "finetune"),
                 selection={"checkpoint": str(run / "checkpoints" / "finetune"), "label": "last"}).write(run)
    raw = json.loads((run / "train_summary.json").read_text())
    assert raw["checkpoint"] == raw["selection"]["checkpoint"] == "checkpoints/finetune"
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    assert TrainSummary.read(copy).checkpoint_path(copy) == copy / "checkpoints" / "finetune"
    # an older summary with absolute paths, copied: rebased onto the copy, not the original
    (copy / "train_summary.json").write_text(json.dumps({"run_dir": str(run),
                                                          "checkpoint": str(run / "checkpoints" / "finetune")}))
    assert TrainSummary.read(copy).checkpoint_path(copy) == copy / "checkpoints" / "finetune"
    # a checkpoint outside the run dir (checkpoint=DIR) stays where it is
    outside = TrainSummary(checkpoint="/models/base")
    assert outside.checkpoint_path(copy) == Path("/models/base")


def test_an_older_summarys_row_label_is_kept_unread(tmp_path):
    """The row is derived from the run's config (discovery); a label an older summary stored stays in extra."""
    (tmp_path / "train_summary.json").write_text(json.dumps({"method": {"strategy": "spri"}, "processes": 2}))
    summary = TrainSummary.read(tmp_path)
    assert summary.processes == 2 and summary.extra == {"method": {"strategy": "spri"}}
