"""Several processes: the length-bucketing sampler shards batches, and torchrun with the gloo
backend trains the toy model with DDP into one run dir, every rank ending with the same weights, and
with FSDP to the same weights as DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT, TINY

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


def torchrun(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def toy_cache(tmp_path_factory) -> Path:
    """One toy corpus and pretrained toy model for every two-process run of this module."""
    return tmp_path_factory.mktemp("dist_cache")


def train_two_processes(run_dir: Path, cache: Path, *overrides: str) -> None:
    """src.train under torchrun on the tiny toy setup: the upcycled model, 4 experts, logged every step,
    evaluated on one test sentence per direction."""
    torchrun(["-m", "src.train", *[o for o in TINY if not o.startswith("trainer.")], "moe.num_experts=4",
              "trainer.log_every=1", "trainer.device=cpu", "eval.splits=[test]",
              "eval.max_examples_per_direction=1", f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}",
              *overrides])


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory, toy_cache) -> dict[str, Path]:
    """The toy model upcycled by SPRI with spectral-decoupled experts (frozen principals in stage 1, the
    SD hooks rewriting gradients and weights), trained for 4 steps by 2 processes with DDP, then FSDP,
    with gradient checkpointing (recomputation must pass the wrappers' hooks again)."""
    tmp = tmp_path_factory.mktemp("dist")
    runs = {}
    for strategy in ("ddp", "fsdp"):
        runs[strategy] = tmp / strategy
        train_two_processes(runs[strategy], toy_cache, "upcycle=spri_sd_moe", "trainer.total_steps=4",
                            f"trainer.parallel={strategy}", "trainer.save_every=2",
                            "trainer.gradient_checkpointing=true")
    return runs


def losses(run_dir: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]


def test_torchrun_ddp_two_cpu_processes_train_in_step(two_process_runs):
    run_dir = two_process_runs["ddp"]
    log = (run_dir / "train.log").read_text()
    assert "all 2 processes ended with identical weights" in log
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["results"]["test"]["segments"] == 15
    assert [step for step, _ in losses(run_dir)] == [1, 2, 3, 4]  # rank 0 alone logs
    assert (run_dir / "checkpoints" / "stage2" / "model.safetensors").exists()


def test_torchrun_fsdp_trains_the_same_weights_as_ddp(two_process_runs):
    from safetensors.torch import load_file

    ddp, fsdp = two_process_runs["ddp"], two_process_runs["fsdp"]
    assert "FSDP: 2 layer units + the root sharded over 2 processes" in (fsdp / "train.log").read_text()
    assert [s for s, _ in losses(fsdp)] == [s for s, _ in losses(ddp)] == [1, 2, 3, 4]
    assert [v for _, v in losses(fsdp)] == pytest.approx([v for _, v in losses(ddp)], rel=1e-5)
    for stage in ("stage1", "stage2"):  # whole tensors gathered from the shards, equal to DDP's replicas
        a = load_file(str(ddp / "checkpoints" / stage / "model.safetensors"))
        b = load_file(str(fsdp / "checkpoints" / stage / "model.safetensors"))
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].shape == b[k].shape and torch.allclose(a[k], b[k], atol=1e-5), k
    records = [json.loads(line) for line in (fsdp / "metrics.jsonl").read_text().splitlines()]
    assert all(r["sd_moe/overhead_ms"] > 0 for r in records if "loss" in r)  # SD-MoE ran on the sharded experts
    summary = json.loads((fsdp / "train_summary.json").read_text())  # rank 0 evaluated the reloaded whole model
    assert summary["results"]["test"]["segments"] == 15
    ddp_bleu = json.loads((ddp / "train_summary.json").read_text())["results"]["test"]["bleu"]
    assert summary["results"]["test"]["bleu"] == pytest.approx(ddp_bleu)


def test_torchrun_fsdp_bf16_trains_in_stage_2_what_stage_1_froze(toy_cache, tmp_path):
    """bf16 under FSDP (weights gathered in bf16, fp32 shards): Drop-Upcycling in two stages (the ablation
    schedule) freezes the root unit (embeddings, norms) in stage 1, and stage 2 must still reduce its
    gradients and update it."""
    from safetensors.torch import load_file

    run_dir = tmp_path / "run"
    train_two_processes(run_dir, toy_cache, "upcycle=drop", "trainer=two_stage", "trainer.total_steps=6",
                        "trainer.parallel=fsdp", "trainer.precision=bf16")
    assert "(weights used in torch.bfloat16)" in (run_dir / "train.log").read_text()
    assert [s for s, _ in losses(run_dir)] == [1, 2, 3, 4, 5, 6]
    one, two = (load_file(str(run_dir / "checkpoints" / s / "model.safetensors")) for s in ("stage1", "stage2"))
    assert {v.dtype for v in two.values()} == {torch.float32}  # saved from the fp32 shards
    embed = "model.decoder.embed_tokens.weight"
    assert not torch.equal(one[embed], two[embed])  # frozen in stage 1, trained in stage 2


def test_fsdp_helpers_match_a_plain_replica(tmp_path):
    """Clipping over sharded + unsharded gradients, whole-weight gathering, writing a whole tensor into
    shards and the optimizer state's save/broadcast-load, each checked against a replica (fsdp_worker.py)."""
    proc = torchrun([str(ROOT / "tests" / "training" / "fsdp_worker.py"), str(tmp_path / "ckpt")], timeout=300)
    assert "rank 0 ok" in proc.stdout and "rank 1 ok" in proc.stdout


def test_unknown_strategy_is_a_clear_error():
    from src.training import distributed

    with pytest.raises(ValueError, match="zero3"):
        distributed.wrap_model(torch.nn.Linear(2, 2), "zero3", torch.device("cpu"), distributed=True)
