"""Checkpoint files (src/training/checkpoint.py): where a cut run continues (`find_resume_point`, a pure
function of the checkpoint dirs)."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers import tiny_whisper

from src.training.checkpoint import capture_rng, find_resume_point, save_checkpoint, step_dir


def write(d: Path, state: dict, mid_stage: bool) -> Path:
    model = tiny_whisper()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    save_checkpoint(model, None, d, state=state, optimizer_state=opt.state_dict() if mid_stage else None,
                    rng={"ranks": [capture_rng()]} if mid_stage else None)
    return d


def test_the_furthest_whole_checkpoint_wins_and_a_damaged_one_is_skipped(tmp_path, caplog):
    ckpts = tmp_path / "checkpoints"
    write(ckpts / "stage1", {"global_step": 4, "complete": True}, mid_stage=False)  # stage 1 done at step 4
    write(step_dir(ckpts, 6), {"global_step": 6, "stage_index": 1, "stage_step": 2}, mid_stage=True)
    newest = write(step_dir(ckpts, 8), {"global_step": 8, "stage_index": 1, "stage_step": 4}, mid_stage=True)
    point = find_resume_point(ckpts, ["stage1", "stage2"])
    assert point.dir == newest and point.stage_step == 4
    (newest / "model.safetensors").write_bytes(b"\x00" * 10)  # truncated: skipped for the next older
    point = find_resume_point(ckpts, ["stage1", "stage2"])
    assert point.global_step == 6 and "skipping checkpoint step-00000008" in caplog.text


def test_a_completed_stage_resumes_at_the_next_stage_and_nothing_usable_gives_none(tmp_path):
    ckpts = tmp_path / "checkpoints"
    assert find_resume_point(ckpts, ["a", "b"]) is None  # no dir at all
    write(ckpts / "a", {"global_step": 5, "complete": True}, mid_stage=False)
    point = find_resume_point(ckpts, ["a", "b"])
    assert (point.stage_index, point.stage_step, point.dir) == (1, 0, ckpts / "a")
    # a step dir from a schedule with more stages than this one does not fit
    write(step_dir(ckpts, 9), {"global_step": 9, "stage_index": 3, "stage_step": 1}, mid_stage=True)
    assert find_resume_point(ckpts, ["a", "b"]).dir == ckpts / "a"
