"""End to end through the real entry points on a tiny toy corpus: pretrain-or-reuse the toy model,
fine-tune dense on the 15 directions, and leave a run dir with config, checkpoint and log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from helpers import ROOT, TINY, run


def test_run_dir_has_config_checkpoint_and_log(trained):
    tmp, run_dir = trained
    assert (run_dir / "config.yaml").exists() and (run_dir / ".hydra" / "config.yaml").exists()
    resolved = (run_dir / "config.yaml").read_text()
    assert str(tmp / "cache") in resolved and "${" not in resolved
    ckpt = run_dir / "checkpoints" / "finetune"
    assert (ckpt / "model.safetensors").exists() and (ckpt / "tokenizer.json").exists()
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["complete"] and state["global_step"] == 40
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["train_examples"] == 15 * 12 and summary["skipped"] == {}
    # what the comparison needs to say where a number comes from
    assert summary["selection"]["rule"] == "last" and summary["selection"]["global_step"] == 40
    # relative to the run dir (issue 33: a copied run dir evaluated the original's checkpoint)
    assert summary["checkpoint"] == "checkpoints/finetune" == summary["selection"]["checkpoint"]
    assert summary["model"]["label"].startswith("toy seed1-") and summary["model"]["pretrain_seed"] == 1
    machine = summary["machine"]
    assert machine["cores"] >= 1 and machine["torch_threads"] >= 1 and machine["cpu"]
    assert machine["torch"] == torch.__version__ and machine["cpu_capability"] == \
        torch.backends.cpu.get_cpu_capability() and machine["gpus"] == []
    assert json.loads((run_dir / "skipped.json").read_text())["skipped"] == {}


def test_loss_goes_down(trained):
    _, run_dir = trained
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 8
    assert losses[-1] < 0.8 * losses[0], losses
    assert any("dev_loss" in r for r in records)


def test_toy_model_is_cached_and_reused(trained):
    tmp, _ = trained
    models = list((tmp / "cache" / "whisper_toy").glob("seed1-*/model.safetensors"))
    assert len(models) == 1
    pre = json.loads((models[0].parent / "pretrain_summary.json").read_text())
    first, last = pre["history"][0]["losses"][0][1], pre["history"][0]["losses"][-1][1]
    assert last < first
    mtime = models[0].stat().st_mtime
    run("src.train", ["upcycle=dense", f"paths.cache_dir={tmp / 'cache'}", f"hydra.run.dir={tmp / 'run2'}",
                      *[o for o in TINY if not o.startswith("trainer.total_steps")], "trainer.total_steps=2"])
    assert models[0].stat().st_mtime == mtime  # reused, not retrained


def test_each_seed_pretrains_its_own_toy_model_and_a_seed_repeats_its_model(trained):
    from safetensors.torch import load_file

    tmp, _ = trained
    cache = tmp / "cache" / "whisper_toy"
    (seed1,) = cache.glob("seed1-*/model.safetensors")
    before = load_file(str(seed1))
    args = [f"paths.cache_dir={tmp / 'cache'}",
            *[o for o in TINY if o.startswith(("experiment=", "progress"))]]
    # one process, as src.demo runs it: seed 1 pretrained again from nothing, seed 2 for the first time
    run("src.pretrain", ["-m", *args, f"hydra.sweep.dir={tmp / 'pre'}", "seed=1,2", "+rebuild=true"])
    (seed2,) = cache.glob("seed2-*/model.safetensors")
    other = load_file(str(seed2))
    assert before.keys() == other.keys()
    assert any(not torch.equal(before[k], other[k]) for k in before)  # another seed, another model
    again = load_file(str(seed1))
    assert all(torch.equal(before[k], again[k]) for k in before)  # the same seed on this machine: the same bytes


def test_toy_model_key_follows_the_pretraining_code(tmp_path):
    from src.data.config import DataConfig, LoaderConfig
    from src.models.config import ToyArch
    from src.pipelines.pretrain import PRETRAIN_SOURCES, code_hash, toy_model_dir
    from src.training.config import PretrainRecipe

    assert {"src/data", "src/training"} <= set(PRETRAIN_SOURCES) and len(code_hash()) == 12
    (tmp_path / "src" / "data").mkdir(parents=True)
    (tmp_path / "src" / "data" / "corpus.py").write_text("SIZE = 1\n")
    (tmp_path / "src" / "model.py").write_text("LAYERS = 2\n")
    data = DataConfig("src.data.toy.source.ToySource",
                      {"corpus": {"seed": 0, "n_st_test": 4}, "cache_dir": "/somewhere"})
    recipe = PretrainRecipe()

    def key() -> Path:
        return toy_model_dir(ToyArch(), recipe, data, str(tmp_path / "cache"), ("src/data", "src/model.py"), tmp_path)

    first = key()
    assert key() == first and first.name.startswith("seed0-")
    (tmp_path / "src" / "data" / "corpus.py").write_text("SIZE = 2\n")  # the corpus code changed
    second = key()
    assert second != first
    (tmp_path / "src" / "data" / "new_module.py").write_text("")  # a file added
    assert key() != second
    recipe.seed = 3
    third = key()
    assert third.name.startswith("seed3-")
    data.loader = LoaderConfig(max_batch_size=8, pad_multiple=32)  # the fine-tuning batch size is not the model's
    fourth = key()
    data.loader.max_batch_size = 16
    assert key() == fourth
    data.options["directions"] = ["de", "ja"]  # fewer directions: another tokenizer and pretraining set
    assert key() != fourth
    (tmp_path / "src" / "data" / ".#corpus.py").symlink_to("nowhere")  # an editor's lock link is no source
    assert key() != fourth and len({key(), key()}) == 1


def test_data_summary_last_line_is_json(trained):
    tmp, _ = trained
    proc = run("src.summary", [f"paths.cache_dir={tmp / 'cache'}", f"hydra.run.dir={tmp / 'sum'}",
                               *[o for o in TINY if o.startswith(("experiment=", "progress"))],
                               "data.check_audio=true"])
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["splits"]["train"] == {d: 12 for d in summary["splits"]["train"]}
    assert len(summary["splits"]["train"]) == 15 and summary["splits"]["test"]["ja"] == 4
    assert summary["skipped"] == {}


def test_multirun_over_strategies_writes_one_dir_per_job(trained):
    tmp, _ = trained
    sweep = tmp / "sweep"
    keep = [o for o in TINY if not o.startswith("trainer.")] + ["eval.splits=[]"]
    run("src.train", ["-m", "upcycle=dense,vanilla,random,drop,spri", f"paths.cache_dir={tmp / 'cache'}",
                      f"hydra.sweep.dir={sweep}", *keep, "moe.num_experts=4", "trainer.total_steps=2",
                      "trainer.log_every=1"])
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [j.name.split("_", 1)[0] for j in jobs] == ["0", "1", "2", "3", "4"]
    for job, strategy in zip(jobs, ["dense", "vanilla", "random", "drop", "spri"]):
        assert f"strategy: {strategy}" in (job / "config.yaml").read_text()
        report = json.loads((job / "upcycling_report.json").read_text())
        assert report["strategy"] == strategy
        stages = ["stage1", "stage2"] if strategy == "spri" else ["finetune"]  # each method's own schedule
        for stage in stages:
            assert (job / "checkpoints" / stage / "model.safetensors").exists()
        if strategy != "dense":
            assert report["num_experts"] == 4 and len(report["layers"]) == 2  # 1 enc + 1 dec layer
            assert report["active_parameters"] < report["total_parameters"]


def test_a_failing_job_does_not_stop_the_sweep_and_is_summarised(trained):
    """Job 0 is a config error (top_k 9 > 4 experts), job 1 trains; the sweep ends with a summary and exit 1."""
    tmp, _ = trained
    sweep = tmp / "sweep_fail"
    keep = [o for o in TINY if not o.startswith("trainer.")] + ["eval.splits=[]"]
    proc = subprocess.run([sys.executable, "-m", "src.train", "-m", "upcycle=vanilla", "moe.top_k=9,2",
                           f"paths.cache_dir={tmp / 'cache'}", f"hydra.sweep.dir={sweep}", *keep, "moe.num_experts=4",
                           "trainer.total_steps=2"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    status = [json.loads((j / "status.json").read_text()) for j in jobs]
    assert [s["status"] for s in status] == ["failed", "completed"]
    assert "moe.top_k=9" in status[0]["error"]
    assert "1/2 failed" in proc.stderr and f"#0 {jobs[0]}" in proc.stderr
    assert (jobs[1] / "checkpoints" / "finetune" / "model.safetensors").exists()


def test_spri_two_stage_run_logs_what_each_stage_trains(trained):
    tmp, _ = trained
    run_dir = tmp / "spri"
    proc = run("src.train", ["upcycle=spri", f"paths.cache_dir={tmp / 'cache'}", f"hydra.run.dir={run_dir}",
                             *[o for o in TINY if not o.startswith("trainer.")], "trainer.total_steps=6",
                             "trainer.log_every=1"])
    log = (run_dir / "train.log").read_text()
    assert "stage 1 'stage1': training" in log and "residual=" in log and "router=" in log
    assert "stage 2 'stage2': training" in log
    report = json.loads((run_dir / "upcycling_report.json").read_text())
    assert all(r["reconstruction_error"] < 1e-5 for r in report["layers"])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert len(train) == 6 and all("loss/router_balance" in r and "loss/router_z" in r for r in train)
    assert any(k.startswith("moe/encoder.layers.0/entropy") for k in train[0])
    state1 = json.loads((run_dir / "checkpoints" / "stage1" / "trainer_state.json").read_text())
    assert state1["global_step"] == 2 and proc.returncode == 0


def test_upcycle_entry_converts_a_dense_checkpoint(trained):
    tmp, run_dir = trained
    out = tmp / "converted"
    run("src.upcycle", ["upcycle=vanilla", f"model.name_or_path={run_dir / 'checkpoints' / 'finetune'}",
                        f"out={out}", f"paths.cache_dir={tmp / 'cache'}", f"hydra.run.dir={tmp / 'conv'}",
                        *[o for o in TINY if o.startswith(("experiment=", "progress"))], "moe.num_experts=4"])
    report = json.loads((out / "upcycling_report.json").read_text())
    assert report["strategy"] == "vanilla" and all(r["output_deviation"] < 1e-5 for r in report["layers"])
    assert (out / "model.safetensors").exists() and json.loads((out / "config.json").read_text())["moe"]["top_k"] == 2


def test_training_ends_with_evaluation_and_evaluate_entry_rescores(trained):
    from src.evaluation.results import read_results

    tmp, run_dir = trained
    for split in ("dev", "test"):
        table = read_results(run_dir / "eval" / split / "results.csv")
        assert [r["direction"] for r in table][-1] == "average" and len(table) == 16
        assert table[-1]["segments"] == 15 * 4 and all(r["comet"] is None for r in table)
        assert (run_dir / "eval" / split / "zh-CN.tsv").exists()
    before = (run_dir / "eval" / "test" / "results.csv").read_text()
    (run_dir / "eval" / "test" / "results.csv").unlink()
    proc = run("src.evaluate", [f"run_dir={run_dir}", "rescore=true", "eval.comet.model=null",
                                f"hydra.run.dir={tmp / 'ev'}", f"paths.cache_dir={tmp / 'cache'}"])
    assert (run_dir / "eval" / "test" / "results.csv").read_text() == before
    assert "test: BLEU" in proc.stdout
    # Standalone decoding of a checkpoint with data overrides, greedy.
    out = tmp / "ev2"
    run("src.evaluate", [f"checkpoint={run_dir / 'checkpoints' / 'finetune'}", f"hydra.run.dir={out}",
                         f"paths.cache_dir={tmp / 'cache'}", "eval.splits=[test]", "eval.greedy=true",
                         "eval.max_new_tokens=12", "eval.comet.model=null", "eval.max_examples_per_direction=2",
                         *[o for o in TINY if o.startswith(("experiment=", "progress"))]])
    assert read_results(out / "eval" / "test" / "results.csv")[-1]["segments"] == 30


def test_cluster_run_with_dpsl_and_sd_moe_logs_every_method(trained):
    tmp, _ = trained
    run_dir = tmp / "cluster"
    run("src.train", ["upcycle=cluster", f"paths.cache_dir={tmp / 'cache'}", f"hydra.run.dir={run_dir}",
                      *[o for o in TINY if not o.startswith("trainer.")], "trainer.total_steps=4",
                      "trainer.log_every=1", "moe.num_experts=4", "upcycle.calibration_examples=40",
                      "moe.self_distill.threshold=1.0", "moe.dpsl.coef=0.01", "moe.dpsl.language_prior=auto",
                      "moe.sd_moe.rank=2", "moe.sd_moe.period=2", "eval.splits=[]"])
    report = json.loads((run_dir / "upcycling_report.json").read_text())
    assert report["strategy"] == "cluster"
    for row in report["layers"]:
        assert len(row["cluster_sizes"]) == 4 and sum(row["cluster_sizes"]) > 0
    assert set(report["after_training"]) == {r["name"] for r in report["layers"]}
    assert all(0 <= v["subspace_overlap"] <= 1 for v in report["after_training"].values())
    train = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in train if "loss" in r]
    assert len(train) == 4
    assert all(r["loss/self_distill"] > 0 and r["loss/router_dpsl"] > 0 and r["sd_moe/overhead_ms"] > 0 for r in train)


def _weights(ckpt: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(ckpt / "model.safetensors"))


def test_kill_9_mid_stage_1_then_sigterm_mid_stage_2_then_the_same_command_is_bit_identical(trained):
    """An 18-step SPRI run (stage 1: 6 steps, stage 2: 12) with dropout 0.1 and one thread, killed with SIGKILL
    after step 5 (mid stage 1) and, rerun with the same command (trainer.resume=auto), stopped by SIGTERM in step
    13 (mid stage 2: it saves step 13 and exits 143), then rerun to the end: final weights, results.csv, the
    metrics log, the stage summaries and SPRI's stage movement equal the uninterrupted run's, bit for bit."""
    import signal

    tmp, _ = trained
    keep = [o for o in TINY if not o.startswith("trainer.")]
    common = ["upcycle=spri", "upcycle.energy=0.9", f"paths.cache_dir={tmp / 'cache'}", *keep, "moe.num_experts=4",
              "trainer.total_steps=18", "trainer.warmup_steps=2", "trainer.save_every=2", "trainer.log_every=1",
              "trainer.deterministic=true", "eval.splits=[test]", "eval.max_examples_per_direction=1"]
    assert "model.toy.dropout" not in " ".join(common)  # the toy model's own dropout, 0.1, stays on
    ref, run_dir = tmp / "ref", tmp / "killed"
    run("src.train", [*common, f"hydra.run.dir={ref}"])
    for kill_at, sig in ((5, "KILL"), (13, "TERM")):
        proc = subprocess.run([sys.executable, "-m", "src.train", *common, f"hydra.run.dir={run_dir}",
                               "logger._target_=src.training.loggers.KillAtStep", f"+logger.step={kill_at}",
                               f"+logger.signal={sig}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == (-signal.SIGKILL if sig == "KILL" else 143), proc.stderr[-2000:]
    ckpts = run_dir / "checkpoints"
    assert "resuming at stage 1 step 4 (global step 4)" in proc.stdout + proc.stderr  # the rerun continued
    assert proc.stderr.strip().splitlines()[-1] == ("preempted: stopped by SIGTERM after global step 13: checkpoint "
                                                    f"{ckpts / 'step-00000013'}; run the same command again to "
                                                    "continue")
    status = json.loads((run_dir / "status.json").read_text())
    assert (status["status"], status["global_step"], status["signal"]) == ("preempted", 13, signal.SIGTERM)
    assert (ckpts / "stage1" / "COMPLETE").exists() and not (ckpts / "stage2").exists()
    assert (ckpts / "latest").read_text().strip() == "step-00000013"  # the signal's own checkpoint
    assert not (run_dir / "run.lock").exists()  # released on the way out: the rerun takes it without a warning
    assert sorted(d.name for d in ckpts.glob("step-*")) == ["step-00000012", "step-00000013"]  # keep_checkpoints=2
    proc = run("src.train", [*common, f"hydra.run.dir={run_dir}"])
    assert "resuming at stage 2 step 7 (global step 13)" in proc.stdout + proc.stderr
    a, b = _weights(ref / "checkpoints" / "stage2"), _weights(ckpts / "stage2")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    results = [d / "eval" / "test" / "results.csv" for d in (ref, run_dir)]
    assert results[0].read_bytes() == results[1].read_bytes()

    def rows(d):
        return [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]

    strip = lambda r: {k: v for k, v in r.items() if k != "tokens_per_s"}  # noqa: E731 (wall-clock rate)
    assert [strip(r) for r in rows(run_dir)] == [strip(r) for r in rows(ref)]  # replayed rows dropped, none twice

    def record(d):
        summary, report = (json.loads((d / n).read_text()) for n in ("train_summary.json", "upcycling_report.json"))
        return [s["stage"] for s in summary["stages"]], [s["dev_loss"] for s in summary["stages"]], \
            report["stage_movement"]

    assert record(run_dir) == record(ref) and record(ref)[0] == ["stage1", "stage2"]


def test_a_truncated_checkpoint_under_evaluate_is_one_line_naming_it(trained, tmp_path):
    import shutil

    _, run_dir = trained
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    weights = copy / "checkpoints" / "finetune" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    proc = subprocess.run([sys.executable, "-m", "src.evaluate", f"run_dir={copy}", f"hydra.run.dir={tmp_path / 'ev'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith(f"error: {weights}: truncated") and "Traceback" not in proc.stderr


def test_pretraining_processes_apply_on_the_cpu_outside_a_process_group(monkeypatch):
    from src.pipelines.pretrain import pretrain_processes
    from src.training.config import PretrainRecipe

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert pretrain_processes(PretrainRecipe(processes=2)) == 2
    assert pretrain_processes(PretrainRecipe(processes=2, device="cuda")) == 1
    monkeypatch.setenv("WORLD_SIZE", "2")  # rank 0 of a torchrun job pretrains alone while the others wait
    assert pretrain_processes(PretrainRecipe(processes=2)) == 1


def test_a_child_pretraining_error_the_user_fixes_is_one_line_and_a_bug_keeps_its_traceback():
    from src.pipelines.pretrain import _child_error
    from src.utils.errors import UserError

    tb = "\n\n-- Process 1 terminated with the following error:\nTraceback (most recent call last):\n  File ...\n"
    err = _child_error(RuntimeError(tb + "src.config.ConfigError: data.loader.max_batch_frames: 5 cannot hold "
                                         "one clip"))
    assert isinstance(err, UserError) and str(err) == ("toy pretraining: data.loader.max_batch_frames: 5 cannot "
                                                       "hold one clip")
    diverged = _child_error(RuntimeError(tb + "src.utils.errors.NonFiniteError: stage pretrain: 9 of 10 steps"))
    assert isinstance(diverged, UserError)
    bug = _child_error(RuntimeError(tb + "IndexError: list index out of range"))
    assert not isinstance(bug, UserError) and "File ..." in str(bug)


def test_evaluate_at_init_rebuilds_the_runs_init_checks_it_and_records_its_english_wer(trained, tmp_path):
    """`src.evaluate at_init=true`: the run's init rebuilt by the train job's own steps (the KL at init it
    recorded is reproduced, else nothing is written) and decoded; the comparison's cost reads the WER."""
    import shutil

    from src.evaluation.records import UpcyclingReport, run_cost
    from src.evaluation.results import read_results

    tmp, _ = trained
    run_dir = tmp_path / "random"
    keep = [o for o in TINY if not o.startswith("trainer.")]
    run("src.train", ["upcycle=random", f"paths.cache_dir={tmp / 'cache'}", f"hydra.run.dir={run_dir}", *keep,
                      "trainer.total_steps=2", "eval.splits=[]"])
    recorded = UpcyclingReport.read(run_dir)
    kl = recorded.init_loss["kl"]
    assert kl > 1e-6 and recorded.init_eval is None  # random's noise moves the init off the dense model
    at_init = ["at_init=true", "eval.task=transcribe", "eval.greedy=true", "eval.splits=[test]",
               "eval.max_new_tokens=30", "eval.comet.model=null", f"paths.cache_dir={tmp / 'cache'}"]

    forged = tmp_path / "forged"  # a report whose KL the rebuilt init does not reproduce: refused, nothing written
    shutil.copytree(run_dir, forged)
    report = json.loads((forged / "upcycling_report.json").read_text())
    report["init_loss"]["kl"] = kl * 1.01
    (forged / "upcycling_report.json").write_text(json.dumps(report))
    proc = subprocess.run([sys.executable, "-m", "src.evaluate", f"run_dir={forged}", *at_init,
                           f"hydra.run.dir={tmp_path / 'ev0'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "the rebuilt init is not the run's" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (forged / "init").exists()
    assert UpcyclingReport.read(forged).init_eval is None

    run("src.evaluate", [f"run_dir={run_dir}", *at_init, f"hydra.run.dir={tmp_path / 'ev'}"])
    table = read_results(run_dir / "init" / "eval" / "test" / "results.csv")
    assert [r["direction"] for r in table] == ["en", "average"] and table[-1]["segments"] == 4  # one per test clip
    wer = table[-1]["wer"]
    assert wer is not None and wer >= 0.0
    init_eval = UpcyclingReport.read(run_dir).init_eval
    assert init_eval["task"] == "transcribe" and init_eval["decoding"] == "greedy"
    assert init_eval["splits"]["test"]["wer"] == wer
    cost = run_cost(run_dir)
    assert cost.init_wer == wer and cost.init_kl == kl
    assert not (run_dir / "eval").exists()  # the run's own evaluation is untouched
