"""scripts/gpu_check.py's CPU dry run: every part runs (tiny shapes, fp32, not compiled), the toy SPRI run is
killed with SIGKILL mid-stage 2, resumed and evaluated, the base_study part's seven runs (`python -m src.study
--regimes base_constrained --tiny`, the tiny toy model in place of whisper-base) end in its two comparison tables,
and the Markdown section says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


# ~5 min on the loaded 2-core machine (base_study ~95 s of it): `make test-slow` (or `make gpu-check DRY=1`)
# before spending device time
@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_part_and_writes_one_section(tmp_path, trained):
    """The toy runs reuse the session's tiny toy corpus and model (gpu_check's TOY, src/study.py's TINY and the
    tests' TINY all select conf/experiment/tiny.yaml)."""
    out = tmp_path / "gpu_check.md"
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py", "--dry-run", "--out", str(out),
                           "--work", str(tmp_path / "work"), "--cache", str(trained[0] / "cache")], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    md = out.read_text()
    assert md.startswith("## GPU check (CPU dry run): none (CPU), ")
    for part in ("versions", "moe", "encoder", "train_step", "upcycle", "toy_spri_resumed", "base_study"):
        assert f"| {part} | ok |" in md, part
    assert "| toy_spri_killed | ok (killed with SIGKILL as planned) |" in md
    assert "resumed mid-stage 2: yes" in md and "all finite: yes" in md and "(steps 1-30)" in md
    assert "job status: completed; results.csv: present" in md
    assert "| dense FFN" in md and "step time MoE / dense" in md and "SPRI upcycling" in md
    assert len(list((trained[0] / "cache" / "whisper_toy").glob("*/model.safetensors"))) == 1  # reused, not rebuilt
    # base_study: its tables beside the section and in it, a row per strategy and schedule, every run finished
    study = tmp_path / "base_study" / "base_constrained"
    assert (study / "report" / "comparison.md").exists() and (study / "report" / "comparison.csv").exists()

    def rows(table: str) -> list[str]:
        text = (study / table / "summary.md").read_text()
        assert text.strip() in md, table
        return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith(
            ("| method", "| contrast")) and "/" not in line.split("|")[1]]  # the contrasts' rows name a/b

    main_rows = rows("report")
    assert sorted(line.split(" | ")[0][2:] for line in main_rows) == ["dense", "drop", "random", "spri", "spri",
                                                                      "vanilla"]
    assert sum("| spri | 2 stages: residual+router 33% -> all" in line for line in main_rows) == 1
    assert sum("| spri | 1 stage: all" in line for line in main_rows) == 1
    assert sorted(line.split(" | ")[0][2:] for line in rows("report-budget")) == ["dense", "spri", "vanilla"]
    assert "7 run configs valid" in md and "offline:base" in md and "SPRI's init at kl0.3" in md
    for run in ("dense-one_stage", "vanilla-one_stage", "random-one_stage", "drop-one_stage", "spri-two_stage33",
                "spri-one_stage", "spri-one_stage-kl0.3"):
        assert (study / f"{run}-seed1" / "train_summary.json").exists(), run
        assert f"base_constrained {run}-seed1: done in " in md and f"{run}-seed1: FAILED" not in md
