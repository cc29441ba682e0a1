"""The study runner (src/study.py): the jobs each regime plans, their families, what a rerun skips or resumes, the
preparation's spec, the thread split, the time limit, the export, the README blocks, and the real-weights regime's
--tiny run end to end (a failing row reported and the tables covering the rest, then resumed)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import TINY as TEST_TINY
from helpers import make_cfg

import src.study as study
from src.config import validate
from src.entry import timing as tm
from src.entry.timing import markers
from src.study import (
    MAIN,
    README_BLOCKS,
    REGIMES,
    TINY,
    Job,
    Options,
    Row,
    job_command,
    main,
    planned,
    study_family,
    study_jobs,
    table_family,
    thread_counts,
)

TOY, TOY_DEMO, BASE = REGIMES["toy_constrained"], REGIMES["toy_demo"], REGIMES["base_constrained"]


def test_the_toy_study_plans_each_schedule_once_per_strategy_regime_and_seed():
    jobs = study_jobs([planned(r, ["dense", "vanilla", "spri"], None, None, [1, 2]) for r in (TOY, TOY_DEMO)])
    assert len(jobs) == 2 * 2 * (1 + 3 + 3) and len({j.title for j in jobs}) == len(jobs)
    assert [j.regime.experiment for j in jobs[:14]] == ["toy_constrained"] * 14  # the constrained regime first
    assert {j.row.schedule for j in jobs if j.row.strategy == "dense"} == {"one_stage"}  # dense has no stage 1
    assert {j.row.schedule for j in jobs if j.row.strategy == "spri"} == {"one_stage", "two_stage10", "two_stage33"}
    fewer = study_jobs([planned(TOY_DEMO, None, None, [], [1])])  # --one-stage '': drop's two stages too
    assert [j.name for j in fewer if j.row.strategy == "drop"] == ["drop-one_stage-seed1", "drop-two_stage10-seed1",
                                                                   "drop-two_stage33-seed1"] and len(fewer) == 10


def test_the_default_study_is_48_jobs_drop_in_its_papers_one_stage(tmp_path, capsys):
    assert main(["--dry-run", "--out", str(tmp_path)]) == 0
    family, *lines = capsys.readouterr().out.strip().splitlines()
    assert family.startswith("primary family") and family.count("; ") == 6  # 7 contrasts
    assert family.endswith("[toy_constrained, toy_demo]")  # one family for both regimes (the same rows)
    assert len(lines) == 48 and sum("drop-" in line.split()[1] for line in lines) == 6
    assert all("trainer=one_stage" in line for line in lines if line.split()[1].startswith("drop-"))
    assert lines[0].split(" ", 2)[2] == ("-m src.train experiment=toy_constrained upcycle=dense seed=1 "
                                         f"trainer.total_steps=1200 trainer=one_stage progress=false "
                                         f"hydra.run.dir={tmp_path / 'toy_constrained' / 'dense-one_stage-seed1'}")


def test_the_real_regime_plans_its_seven_rows_on_one_fine_tuning_seed():
    jobs = study_jobs([BASE])
    assert [j.name for j in jobs] == [
        "spri-two_stage33-seed1", "spri-one_stage-seed1", "spri-one_stage-kl0.3-seed1", "drop-one_stage-seed1",
        "random-one_stage-seed1", "vanilla-one_stage-seed1", "dense-one_stage-seed1"]
    assert BASE.fixed_model and BASE.prepare and BASE.all_at_once and BASE.seeds == (1,)
    by_name = {j.name: j.overrides() for j in jobs}
    assert by_name["spri-two_stage33-seed1"] == ["experiment=base_constrained", "upcycle=spri", "seed=1",
                                                 "trainer=two_stage", "trainer.stage1_fraction=0.3333"]
    assert by_name["spri-one_stage-kl0.3-seed1"] == ["experiment=base_constrained", "upcycle=spri", "seed=1",
                                                     "trainer=one_stage", "upcycle.max_init_kl=0.3"]
    assert by_name["dense-one_stage-seed1"][-1] == "trainer=one_stage"
    assert BASE.tables == [MAIN]
    # --strategies filters a fixed regime's rows (its family follows them); --fractions does not touch them
    assert [r.name for r in planned(BASE, ["spri", "dense"], [0.5], None, [4, 5]).rows] == [
        "spri-two_stage33", "spri-one_stage", "spri-one_stage-kl0.3", "dense-one_stage"]
    assert planned(BASE, None, None, None, [4, 5]).seeds == (4, 5)


def test_the_larger_budget_is_a_row_of_its_own_because_its_label_carries_the_budget():
    """src/evaluation/records.py MethodLabel shows a SPRI variant knob off its default (`spri[max_init_kl=0.3]`): in
    one report the kl0.3 run is its own row, never a second seed of SPRI one-stage; the row's ref is that label."""
    from src.evaluation.records import MethodLabel

    def label(row: Row):
        cfg = make_cfg(Job(BASE, row, 1).overrides())
        return MethodLabel.from_config(validate(cfg).resolved, 4)

    default, larger = (r for r in BASE.rows if r.strategy == "spri" and r.fraction is None)
    assert larger.tag == "kl0.3" and label(default).method == "spri"
    assert label(larger).method == "spri[max_init_kl=0.3]" and larger.ref == "spri[max_init_kl=0.3]/one_stage"
    assert validate(make_cfg(Job(BASE, larger, 1).overrides())).upcycle.max_init_kl == 0.3
    for regime in REGIMES.values():
        for table in regime.tables:
            refs = [r.ref for r in regime.table_rows(table)]
            assert len(refs) == len(set(refs)), (regime.experiment, table)


def test_the_families_are_named_from_the_rows_alone():
    """SPRI's init, its schedule and the same schedule on vanilla per stage-1 share, each one-stage baseline vs dense;
    the schedule keys are those the runs record (src/evaluation/records.py schedule_labels)."""
    from src.evaluation.contrasts import Contrast
    from src.evaluation.records import schedule_labels

    def pairs(family: list[str]) -> list[str]:
        return [f"{c.name}: {c.a} - {c.b}" for c in map(Contrast.parse, family)]

    assert pairs(study_family(TOY.rows)) == [
        "SPRI's init: spri/one_stage - vanilla/one_stage", "SPRI's schedule 10%: spri/two_stage10 - spri/one_stage",
        "the schedule 10% on vanilla's init: vanilla/two_stage10 - vanilla/one_stage",
        "SPRI's schedule 33%: spri/two_stage33 - spri/one_stage",
        "the schedule 33% on vanilla's init: vanilla/two_stage33 - vanilla/one_stage",
        "baseline vanilla vs dense: vanilla/one_stage - dense/one_stage",
        "baseline drop vs dense: drop/one_stage - dense/one_stage"]
    assert pairs(table_family(BASE, MAIN)) == [
        "SPRI's init: spri/one_stage - vanilla/one_stage",
        "SPRI's init at kl0.3: spri[max_init_kl=0.3]/one_stage - vanilla/one_stage",
        "SPRI's budget kl0.3 vs its default: spri[max_init_kl=0.3]/one_stage - spri/one_stage",
        "SPRI's schedule 33%: spri/two_stage33 - spri/one_stage",
        "baseline drop vs dense: drop/one_stage - dense/one_stage",
        "baseline random vs dense: random/one_stage - dense/one_stage",
        "baseline vanilla vs dense: vanilla/one_stage - dense/one_stage"]
    assert study_family([Row("dense"), Row("spri"), Row("spri", 0.1)]) == [
        "SPRI's schedule 10%=spri/two_stage10 vs spri/one_stage"]  # no vanilla row: neither init nor its schedule
    stages = [{"steps": round(1200 * 0.3333), "trainable": ["router"]}, {"steps": 800, "trainable": ["all"]}]
    assert schedule_labels(stages)[1] == Row("spri", 0.3333).schedule == "two_stage33"


def test_dry_run_prints_each_tables_family_and_an_unknown_regime_is_refused(tmp_path, capsys):
    assert main(["--dry-run", "--regimes", "base_constrained", "--out", str(tmp_path), "--tiny"]) == 0
    primary, *lines = capsys.readouterr().out.strip().splitlines()
    assert primary.startswith("primary family (Holm within it): SPRI's init=") and primary.count("; ") == 6
    assert len(lines) == 7 and all(" trainer.total_steps=6 " in line for line in lines)  # --tiny's shapes
    assert main(["--regimes", "toy_big", "--out", str(tmp_path)]) == 2
    assert "unknown ['toy_big']" in capsys.readouterr().err


def test_another_regime_is_one_table_entry(tmp_path, capsys):
    """base_cpu (the CPU-sized real regime) is the same rows on three fine-tuning seeds: one entry of REGIMES."""
    assert REGIMES["base_cpu"].rows == BASE.rows and REGIMES["base_cpu"].seeds == (1, 2, 3)
    assert main(["--dry-run", "--regimes", "base_cpu", "--out", str(tmp_path)]) == 0
    family, *lines = capsys.readouterr().out.strip().splitlines()
    assert family.startswith("primary family (Holm within it): SPRI's init=") and len(lines) == 21
    assert lines[0].startswith("base_cpu spri-two_stage33-seed1 -m src.train experiment=base_cpu upcycle=spri seed=1 "
                               "trainer=two_stage")
    cfg = validate(make_cfg(Job(REGIMES["base_cpu"], BASE.rows[0], 1).overrides()))
    assert cfg.model.cached_encoder and cfg.trainer.frozen == ["encoder", "cross_kv"] and cfg.moe.where == "decoder"


def test_tiny_shapes_replace_a_regimes_own_values_in_place():
    merged = Options(("paths.cache_dir=/c", "+x.y=1"), tiny=True).overrides(Job(TOY, Row("spri", 0.1), 2))
    assert merged.count("trainer.total_steps=6") == 1 and "trainer.total_steps=1200" not in merged
    assert merged.index("trainer.total_steps=6") == 3  # where the regime's value was
    assert merged[-1] == "+x.y=1" and "+experiment@_global_=tiny" in merged
    # the tests' tiny toy corpus and model (experiment=tiny): a cache built by the test suite serves --tiny as it is
    assert "experiment=tiny" in TEST_TINY and not [o for o in TINY if o.startswith(("data.corpus.", "model.toy.",
                                                                                     "pretrain."))]


@pytest.mark.parametrize("job, stages", [
    (Job(TOY, Row("spri"), 2), [1200]),  # SPRI's yaml picks two stages; one_stage wins
    (Job(TOY_DEMO, Row("vanilla", 0.1), 1), [120, 1080]),
    (Job(TOY, Row("spri", 0.3333), 1), [400, 800]),
    (Job(BASE, Row("spri", 0.3333), 1), [100, 200]),
])
def test_each_job_composes_to_its_schedule(job, stages):
    run = validate(make_cfg([o for o in job.overrides(stage1_lr=1e-4 if len(stages) == 2 else None)]))
    assert [s.steps for s in run.trainer.stages] == stages and run.seed == job.seed
    assert run.upcycle.strategy == job.row.strategy
    if len(stages) == 2:
        assert run.trainer.stages[0].lr == 1e-4 and run.trainer.stages[1].lr == run.trainer.lr
    if job.regime.experiment == "toy_constrained":
        assert run.data.options["max_train_per_direction"] == 40 and run.trainer.select == "best_dev_loss"


def test_a_rerun_skips_finished_jobs_resumes_cut_ones_and_restarts_empty_ones(tmp_path):
    done, cut, empty, new = (Job(TOY_DEMO, Row(s), 1) for s in ("dense", "vanilla", "drop", "spri"))
    (tmp_path / "toy_demo" / done.name).mkdir(parents=True)
    (tmp_path / "toy_demo" / done.name / "train_summary.json").write_text("{}")
    (tmp_path / "toy_demo" / cut.name / "checkpoints").mkdir(parents=True)
    (tmp_path / "toy_demo" / empty.name / "eval").mkdir(parents=True)
    assert job_command(done, tmp_path) is None
    cmd, run_dir = job_command(cut, tmp_path)
    assert cmd[-1] == "trainer.resume=true" and run_dir == tmp_path / "toy_demo" / cut.name
    assert job_command(empty, tmp_path, fresh=False) is not None and run_dir.exists()  # --dry-run removes nothing
    cmd, run_dir = job_command(empty, tmp_path)
    assert "trainer.resume=true" not in cmd and not run_dir.exists()  # nothing saved: started afresh
    cmd, _ = job_command(new, tmp_path)
    assert f"hydra.run.dir={tmp_path / 'toy_demo' / new.name}" in cmd and "upcycle=spri" in cmd


def test_the_preparation_validates_the_real_configs_and_composes_the_tiny_ones(tmp_path):
    jobs = study_jobs([BASE])
    opts = Options(("paths.cache_dir=/c", "eval.beam=2"), tiny=True, stage1_lr=1e-4)
    spec = study.prepare_spec(BASE, jobs, tmp_path, opts)
    assert len(spec["real"]) == len(spec["used"]) == 7 and not spec["convert"]
    assert spec["real"][0][:6] == [*jobs[0].overrides(), "trainer.stage1_lr=0.0001"]  # as the job runs, not tiny
    assert "+experiment@_global_=tiny" not in spec["real"][0]
    assert {"paths.cache_dir=/c", "eval.beam=2", f"paths.root_dir={study.ROOT}"} <= set(spec["real"][0])
    assert "+experiment@_global_=tiny" in spec["used"][0] and "trainer.total_steps=6" in spec["used"][0]
    assert spec["result"] == str(tmp_path / "base_constrained" / "logs" / "prepared.txt")


def test_threads_follow_each_strategys_cpu_weight_only_when_every_job_runs_at_once():
    jobs = study_jobs([BASE])
    threads = thread_counts(jobs, 7, 16)
    assert [threads[j] for j in jobs] == [4, 4, 4, 1, 1, 1, 1]  # SPRI's energy search on the CPU: 6x the others
    assert set(thread_counts(jobs, 3, 16).values()) == {5}
    toy = study_jobs([planned(TOY, None, None, None, [1])])
    assert set(thread_counts(toy, len(toy), 16).values()) == {2}  # no weights: the cores divided evenly


def test_the_time_limit_stops_whole_process_groups_and_starts_nothing_more(tmp_path, capsys):
    pid_file = tmp_path / "grandchild.pid"
    # the grandchild ignores SIGTERM: its group outlives the job's own exit, and only SIGKILL ends it
    sleeper = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
               f"signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)']); open({str(pid_file)!r}, 'w')"
               ".write(str(p.pid)); print('slept', flush=True); time.sleep(60)")
    children = [tm.Child(f"job{i}", (sys.executable, "-c", sleeper), tmp_path / f"job{i}.log") for i in range(3)]
    ended = []
    t0 = time.perf_counter()
    unfinished = tm.run_parallel(children, 2, lambda c, rc, s: ended.append(c), deadline=t0 + 6)
    assert unfinished == children and ended == [] and time.perf_counter() - t0 < 20
    out = capsys.readouterr().out
    assert out.count("CUT at the time limit") == 2 and "job2: not started (time limit)" in out
    assert "its log's last line: slept" in out
    assert not (tmp_path / "job2.log").exists()
    grandchild = int(pid_file.read_text())  # it went with its group: gone, or a zombie, when run_parallel returned
    status = Path(f"/proc/{grandchild}/status")
    assert not status.exists() or "State:\tZ" in status.read_text()


def test_the_export_copies_reports_logs_and_records_not_checkpoints(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "dest"
    run = out / "base_constrained" / "dense-one_stage-seed1"
    for rel in ("config.yaml", "train_summary.json", "eval/test/results.csv", "checkpoints/last/model.safetensors"):
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text(rel)
    for rel in ("report/summary.md", "report-budget/summary.md", "logs/dense-one_stage-seed1.log"):
        (out / "base_constrained" / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / "base_constrained" / rel).write_text(rel)
    (out / "timing.md").write_text("timing")
    (dest / "base_constrained" / "stale").mkdir(parents=True)
    study.export(out, dest, [BASE])
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == ["base_constrained/dense-one_stage-seed1/results.csv",
                     "base_constrained/dense-one_stage-seed1/train_summary.json",
                     "base_constrained/logs/dense-one_stage-seed1.log", "base_constrained/report-budget/summary.md",
                     "base_constrained/report/summary.md", "timing.md"]


def test_readme_blocks_are_filled_from_the_study_dir(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text("".join(f"{a}\nold\n{b}\n" for a, b in map(markers, README_BLOCKS)))
    for rel in README_BLOCKS.values():
        (tmp_path / "out" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "out" / rel).write_text(f"table of {rel}\n")
    monkeypatch.setattr(study, "ROOT", tmp_path)
    assert main(["--readme", str(tmp_path / "out")]) == 0
    text = readme.read_text()
    assert "old" not in text and all(f"table of {rel}" in text for rel in README_BLOCKS.values())
    assert "generated by `python -m src.study --readme DIR`" in text


def test_the_readme_block_is_the_regimes_summary(tmp_path):
    regime = tmp_path / "toy_constrained"
    (regime / "report").mkdir(parents=True)
    (regime / "report" / "summary.md").write_text("| table vs dense |\n\nPrimary contrasts ...\n\n\n")
    assert study.write_readme_block(regime).read_text() == "| table vs dense |\n\nPrimary contrasts ...\n"


def test_report_only_reports_each_table_over_its_run_dirs_with_its_family(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(tm, "run_phase", lambda name, cmd, t, note="", log=None: calls.append(cmd) or 0)
    for name in ("dense-one_stage-seed1", "spri-one_stage-seed1", "spri-one_stage-seed2"):
        (tmp_path / "toy_constrained" / name).mkdir(parents=True)
    (tmp_path / "toy_constrained" / "report").mkdir()
    (tmp_path / "toy_constrained" / "report" / "summary.md").write_text("table")
    assert main(["--report", str(tmp_path), "--equivalence-margin", "1"]) == 0  # toy_demo has no dir: skipped
    assert len(calls) == 1 and (tmp_path / "toy_constrained" / "readme.md").read_text() == "table\n"
    cmd = calls[0]
    assert cmd[1:3] == ["-m", "src.report"] and cmd[3:6] == [str(tmp_path / "toy_constrained" / n) for n in (
        "dense-one_stage-seed1", "spri-one_stage-seed1", "spri-one_stage-seed2")]  # the runs, not the logs
    contrasts = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--contrast"]
    assert contrasts[0] == "SPRI's init=spri/one_stage vs vanilla/one_stage" and len(contrasts) == 7
    assert "--baseline" not in cmd  # the report's own default, dense
    assert cmd[-2:] == ["--equivalence-margin", "1.0"]


def test_the_study_keeps_its_budget_where_the_demo_was_cut_to_fit_its_minutes():
    from src.study import STUDY_STEPS

    assert validate(make_cfg(["experiment=toy_demo"])).trainer.total_steps == 800  # make demo (issue 25)
    assert validate(make_cfg(["experiment=toy_constrained"])).trainer.total_steps == STUDY_STEPS == 1200
    assert f"trainer.total_steps={STUDY_STEPS}" in Job(TOY_DEMO, Row("dense"), 1).overrides()


KILLED = ("logger._target_=src.training.loggers.KillAtStep", "+logger.step=2")


def test_the_real_regimes_tiny_run_reports_a_failed_row_and_resumes_it(tmp_path, trained, monkeypatch, capsys):
    """`--tiny` end to end on the real regime (what `make gpu-check DRY=1` runs), drop's job killed at step 2: the
    line says so, the table covers the other runs, the study exits 1; run again (drop as it is), only drop runs
    and the table is whole. The session's tiny toy corpus and model serve as they are (--cache)."""
    out, dest = tmp_path / "out", tmp_path / "export"
    args = ["--regimes", "base_constrained", "--tiny", "--out", str(out), "--cache", str(trained[0] / "cache"),
            "--export", str(dest), "--time-limit", "280"]
    killed = tuple(replace(r, overrides=KILLED) if r.strategy == "drop" else r for r in BASE.rows)
    monkeypatch.setitem(REGIMES, "base_constrained", replace(BASE, rows=killed))
    assert main(args) == 1
    console = capsys.readouterr().out
    assert "7 run configs valid" in console and "offline:base: packages installed" in console
    assert "base_constrained drop-one_stage-seed1: FAILED (exit -9)" in console
    assert "1 of 7 jobs did not finish: base_constrained drop-one_stage-seed1" in console
    assert console.count(": done in ") == 6 and "test BLEU" in console

    def methods(table: str) -> list[str]:
        text = (dest / "base_constrained" / table / "summary.md").read_text()
        return sorted(line.split(" | ")[0][2:] for line in text.splitlines() if line.startswith("| ")
                      and not line.startswith(("| method", "|---", "| contrast")) and "/" not in line.split("|")[1])

    assert methods("report") == ["dense", "random", "spri", "spri", "spri[max_init_kl=0.3]", "vanilla"]
    assert json.loads((dest / "base_constrained" / "spri-one_stage-kl0.3-seed1" / "train_summary.json").read_text())
    monkeypatch.setitem(REGIMES, "base_constrained", BASE)
    assert main(args) == 0
    console = capsys.readouterr().out
    assert "7 jobs, 6 already done, 1 to run" in console and console.count(": done in ") == 1
    assert methods("report") == ["dense", "drop", "random", "spri", "spri", "spri[max_init_kl=0.3]", "vanilla"]
    summary = (dest / "base_constrained" / "report" / "summary.md").read_text()
    assert "SPRI's init at kl0.3" in summary and "SPRI's budget kl0.3 vs its default" in summary


def test_each_seeds_cost_sums_its_completed_jobs_and_inits_from_their_status(tmp_path):
    cpu = REGIMES["base_cpu"]
    for i, job in enumerate(j for j in study.study_jobs([cpu]) if j.seed == 1):
        d = tmp_path / "base_cpu" / job.name
        (d / "init" / "job").mkdir(parents=True)
        status = "failed" if i == 0 else "completed"  # a failed job is not a row of the seed
        (d / "status.json").write_text(json.dumps({"status": status, "seconds": 600.0}))
        (d / "init" / "job" / "status.json").write_text(json.dumps({"status": "completed", "seconds": 60.0}))
    lines = study.seed_timing(tmp_path, cpu, 2).splitlines()
    assert "| 1 | 6 of 7 | 60 min 00 s | 7 min 00 s | 33 min 30 s |" in lines  # (6 x 600 + 7 x 60) / 2
    assert "| 2 | 0 of 7 | 0 s | 0 s | 0 s |" in lines
