"""Several processes: the length-bucketing sampler shards batches, and torchrun with the gloo
backend trains the toy model with DDP into one run dir, every rank ending with the same weights."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_train_e2e import ROOT, TINY

from src.data.dataset import LengthBucketSampler


def test_sampler_shards_keep_buckets_and_are_disjoint_and_equal():
    lengths = [(i * 37) % 300 + 20 for i in range(203)]
    whole = LengthBucketSampler(lengths, max_frames=1200, max_batch_size=8, seed=3)
    shards = [LengthBucketSampler(lengths, max_frames=1200, max_batch_size=8, seed=3, num_replicas=3, rank=r)
              for r in range(3)]
    batches = [list(s) for s in shards]
    assert len({len(b) for b in batches}) == 1 and len(batches[0]) == len(whole) // 3
    flat = [tuple(b) for bs in batches for b in bs]
    assert len(set(flat)) == len(flat)  # no batch on two ranks
    assert set(flat) <= {tuple(b) for b in whole}  # the same length-bucketed batches, just dealt out
    for s in shards:
        s.set_epoch(1)
    assert [list(s) for s in shards] != batches  # reshuffled per epoch, identically on every rank
    with pytest.raises(ValueError, match="rank 3"):
        LengthBucketSampler(lengths, 1200, 8, num_replicas=3, rank=3)


def test_torchrun_two_cpu_processes_train_in_step(tmp_path):
    run_dir = tmp_path / "ddp"
    args = [o for o in TINY if not o.startswith("trainer.")] + [
        "upcycle=vanilla", "moe.num_experts=4", "trainer.total_steps=4", "trainer.log_every=1", "trainer.device=cpu",
        "eval.splits=[test]", "eval.max_examples_per_direction=1", f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={run_dir}",
    ]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "src.train",
           *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    assert "all 2 processes ended with identical weights" in log
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["results"]["test"]["segments"] == 15
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]  # rank 0 alone logs
    assert (run_dir / "checkpoints" / "stage2" / "model.safetensors").exists()


def test_fsdp_is_a_clear_error_until_it_is_tested_on_gpus(monkeypatch):
    import torch

    from src.training import distributed

    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 2)
    with pytest.raises(ValueError, match="fsdp is not implemented yet"):
        distributed.wrap_model(torch.nn.Linear(2, 2), "fsdp", torch.device("cpu"))
    with pytest.raises(ValueError, match="zero3"):
        distributed.wrap_model(torch.nn.Linear(2, 2), "zero3", torch.device("cpu"))
