"""scripts/gpu_check.py's CPU dry run: every part runs (tiny shapes, fp32, not compiled), the toy SPRI run is
killed with SIGKILL mid-stage 2, resumed and evaluated, and the Markdown section says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # about 65 s: `make test-slow` (or `make gpu-check DRY=1`) before spending device time
def test_gpu_check_dry_run_runs_every_part_and_writes_one_section(tmp_path, trained):
    """The toy run reuses the session's tiny toy corpus and model (gpu_check's TOY = the tests' TINY sizes)."""
    out = tmp_path / "gpu_check.md"
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py", "--dry-run", "--out", str(out),
                           "--work", str(tmp_path / "work"), "--cache", str(trained[0] / "cache")], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    md = out.read_text()
    assert md.startswith("## GPU check (CPU dry run): none (CPU), ")
    for part in ("versions", "moe", "encoder", "train_step", "upcycle", "toy_spri_resumed"):
        assert f"| {part} | ok |" in md, part
    assert "| toy_spri_killed | ok (killed with SIGKILL as planned) |" in md
    assert "resumed mid-stage 2: yes" in md and "all finite: yes" in md and "(steps 1-30)" in md
    assert "job status: completed; results.csv: present" in md
    assert "| dense FFN" in md and "step time MoE / dense" in md and "SPRI upcycling" in md
    assert len(list((trained[0] / "cache" / "whisper_toy").glob("*/model.safetensors"))) == 1  # reused, not rebuilt
