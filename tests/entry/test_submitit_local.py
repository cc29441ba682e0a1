"""The SLURM launcher's path, run for real on this machine: `python -m src.train -m hydra/launcher=local` goes through
hydra-submitit-launcher and submitit's local executor (conf/hydra/launcher/local.yaml = submitit_local; slurm.yaml =
submitit_slurm: the same launcher class, pickled job, job environment and signal handling; only the executor
differs). Each job must keep to its own job dir, as the basic launcher's sweep does (tests/pipelines/
test_train_e2e.py: test_multirun_over_strategies_writes_one_dir_per_job) and the joblib one `make demo` uses, and a
preempted job (SIGUSR2, as SLURM sends it before the time limit) is requeued by submitit into the same job dir and
resumes there, its neighbour untouched."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, TINY, run
from preempt_logger import MARKER

from src.evaluation.results import read_results
from src.utils.status import sweep_jobs

STRATEGIES = ["dense", "vanilla"]
# one pretraining process: no spawned children to wait for (part of the toy model's key: the jobs pass it too)
KEEP = [o for o in TINY if not o.startswith(("trainer.", "eval."))] + ["pretrain.processes=1"]
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def toy_cache(tmp_path_factory) -> Path:
    """The tiny toy corpus and seed 1's toy model, built once before the sweep (both jobs reuse them). Not the
    session's `trained` run: under `make test` this file may sit on another worker than the e2e tests, and the
    pretraining alone costs a third of that run."""
    tmp = tmp_path_factory.mktemp("submitit")
    run("src.pretrain", [f"paths.cache_dir={tmp / 'cache'}", f"hydra.run.dir={tmp / 'pretrain'}",
                         *[o for o in KEEP if o.startswith(("experiment=", "pretrain.", "progress"))]])
    return tmp


def test_a_two_job_sweep_through_submitit_keeps_each_job_in_its_own_dir_and_requeues_a_preempted_one(toy_cache):
    """Two upcycling strategies on the tiny toy model, 4 training steps each (a resumable checkpoint every 2), then
    a short greedy evaluation so that each job writes its own results files. Job 0 sends itself SIGUSR2 after
    step 3 (tests/entry/preempt_logger.py); job 1 runs straight through."""
    tmp = toy_cache
    sweep = tmp / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "src.train", "-m", "hydra/launcher=local", f"upcycle={','.join(STRATEGIES)}",
         f"paths.cache_dir={tmp / 'cache'}", f"hydra.sweep.dir={sweep}", *KEEP, "moe.num_experts=4",
         "trainer.total_steps=4", "trainer.log_every=1", "trainer.save_every=2",
         "logger._target_=preempt_logger.PreemptOnce", "+logger.step=3", "+logger.job=0",
         "eval.splits=[test]", "eval.greedy=true", "eval.max_new_tokens=8", "eval.max_examples_per_direction=1",
         "eval.comet.model=null"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        # the two jobs run at once: one thread each; the job processes import the drill logger from here
        env={**os.environ, "OMP_NUM_THREADS": "1",
             "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"sweep {sweep}: all 2 jobs completed" in proc.stderr  # the parent's callback, after submitit's results
    assert "Submitit 'local' sweep output dir" in proc.stdout  # Hydra's log line

    jobs = sweep_jobs(sweep)
    assert [j.name.split("_", 1)[0] for j in jobs] == ["0", "1"]
    submitit_ids = sorted(d.name for d in (sweep / ".submitit").iterdir() if d.name.isdigit())
    assert len(submitit_ids) == 2  # one submitit job (process, pickle, logs) per sweep job
    configs, job_ids = [], []
    for job, strategy, preempted in zip(jobs, STRATEGIES, (True, False)):
        other = next(s for s in STRATEGIES if s != strategy)
        assert json.loads((job / "status.json").read_text())["status"] == "completed"
        config = yaml.safe_load((job / "config.yaml").read_text())
        assert config["upcycle"]["strategy"] == strategy and config["paths"]["output_dir"] == str(job)
        configs.append((job / "config.yaml").read_text())
        hydra = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]
        assert hydra["launcher"]["_target_"].endswith("submitit_launcher.LocalLauncher")
        job_id = hydra["job"]["id"]  # submitit's, set in the job's own process
        assert job_id in submitit_ids
        job_ids.append(job_id)
        console = (sweep / ".submitit" / job_id / f"{job_id}_0_log.out").read_text()  # the job process's stdout
        attempts = console.count(f"Starting with JobEnvironment(job_id={job_id},")
        assert attempts == (2 if preempted else 1) and f"model: {strategy}," in console
        assert json.loads((job / "upcycling_report.json").read_text())["strategy"] == strategy
        assert (job / "checkpoints" / "finetune" / "model.safetensors").exists()
        train_log = (job / "train.log").read_text()
        assert f"model: {strategy}," in train_log and f"model: {other}," not in train_log
        assert train_log.rstrip().endswith("Exiting after successful completion")  # submitit's, in the job's log
        if preempted:  # submitit's SIGUSR2 handler: checkpoint() -> DelayedSubmission, requeue, the same job dir
            assert (job / MARKER).read_text() == "3"
            assert "Caught signal SIGUSR2" in train_log and "this job is preempted" in train_log
            assert f"Requeued job {job_id}" in train_log
            # the trainer saved step 3 before submitit requeued it; the rerun (trainer.resume=auto) continues there
            assert "SIGUSR2 received: finishing this step and saving a checkpoint" in train_log
            assert "preempted: stopped by SIGUSR2 after global step 3" in train_log
            assert "resuming at stage 1 step 3 (global step 3)" in train_log
            assert len(re.findall(r"step 3 stage=finetune loss=", train_log)) == 1  # nothing replayed
        else:
            assert not (job / MARKER).exists() and "Caught signal" not in train_log
        losses = [r for r in map(json.loads, (job / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
        assert [r["step"] for r in losses] == [1, 2, 3, 4]  # this job's steps, each once (a resume replays none twice)
        results = read_results(job / "eval" / "test" / "results.csv")
        assert len(results) == 16 and results[-1]["direction"] == "average"
        assert all(r["segments"] == 1 for r in results[:-1]) and results[-1]["bleu"] is not None
    assert configs[0] != configs[1] and job_ids[0] != job_ids[1]
