"""`make demo`'s machinery: the phase timing table (and the README block generated from it), the parallel
job count, and the CPU allocator tuning that training applies by default."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from src.demo import default_jobs
from src.entry import timing as tm
from src.utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def fake_sweep(root: Path) -> Path:
    sweep = root / "sweep"
    for i, (name, status, secs, stages) in enumerate([("dense", "completed", 100.0, [10.0]),
                                                       ("spri", "completed", 200.5, [20.0, 60.0]),
                                                       ("drop", "failed", 3.0, None)]):
        d = sweep / f"{i}_upcycle-{name}"
        d.mkdir(parents=True)
        (d / "status.json").write_text(json.dumps({"status": status, "seconds": secs}))
        if stages:
            (d / "train_summary.json").write_text(json.dumps({"stages": [{"seconds": s, "steps": 1, "tokens": 1}
                                                                         for s in stages]}))
    (sweep / "report").mkdir()  # not a job dir
    return sweep


def test_timing_table_lists_phases_jobs_and_total(tmp_path):
    sweep = fake_sweep(tmp_path)
    t = tm.Timing(command="python -m src.demo")
    t.phases = [tm.Phase("toy corpus", 85.2, 0, "built"), tm.Phase("sweep", 600.0, 1, "3 jobs"),
                tm.Phase("report", 9.6, 0)]
    t.jobs = tm.collect_jobs(sweep)
    assert [j["job"] for j in t.jobs] == ["0_upcycle-dense", "1_upcycle-spri", "2_upcycle-drop"]
    assert t.jobs[1]["train_seconds"] == 80.0 and t.jobs[2]["train_seconds"] is None
    md = tm.finish(t, sweep)
    lines = md.splitlines()
    assert lines[0].startswith("`python -m src.demo` on ") and "cores" in lines[0]
    assert "| toy corpus | 1 min 25 s | built |" in lines
    assert "| sweep | 10 min 00 s | 3 jobs; exit 1 |" in lines
    assert "| &nbsp;&nbsp;job 1_upcycle-spri | 3 min 20 s | training 1 min 20 s; completed |" in lines
    assert "| &nbsp;&nbsp;job 2_upcycle-drop | 3 s | training n/a; failed |" in lines
    assert lines[-1] == "| **total** | **11 min 35 s** | |"
    saved = json.loads((sweep / "timing.json").read_text())
    assert saved["phases"][1] == {"name": "sweep", "seconds": 600.0, "returncode": 1, "note": "3 jobs"}
    assert (sweep / "timing.md").read_text() == md


def test_readme_block_is_replaced_from_a_measured_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "timing.md").write_text("| phase | wall time |\n| new | 1 s |\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{tm.README_START}\n| old | 9 s |\n{tm.README_END}\nrest\n")
    tm.update_readme(readme, run)
    assert readme.read_text() == (f"intro\n{tm.README_START}\n| phase | wall time |\n| new | 1 s |\n"
                                  f"{tm.README_END}\nrest\n")
    with pytest.raises(FileNotFoundError, match="no timing table"):
        tm.update_readme(readme, tmp_path / "nothing")
    # the comparison block, once the report wrote its summary: a README without its markers is told so
    (run / "report").mkdir()
    (run / "report" / "summary.md").write_text("| strategy | BLEU |\n| dense | 20 [19, 21] |\n")
    with pytest.raises(UserError, match="demo-results:start"):
        tm.update_readme(readme, run)
    start, end = tm.markers("demo-results")
    readme.write_text(f"intro\n{tm.README_START}\n{tm.README_END}\nmid\n{start}\nold\n{end}\nrest\n")
    tm.update_readme(readme, run)
    assert readme.read_text() == (f"intro\n{tm.README_START}\n| phase | wall time |\n| new | 1 s |\n{tm.README_END}"
                                  f"\nmid\n{start}\n| strategy | BLEU |\n| dense | 20 [19, 21] |\n{end}\nrest\n")


def test_the_repository_readme_has_the_generated_blocks():
    text = (ROOT / "README.md").read_text()
    for block in tm.README_BLOCKS:
        start, end = tm.markers(block)
        assert text.count(start) == 1 and text.count(end) == 1, block


def test_default_jobs_run_everything_at_once_up_to_three_per_core(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert [default_jobs(n) for n in (1, 5, 6, 15)] == [1, 5, 6, 6]


PROBE = """
import ctypes, sys
from src.utils.malloc import tune_glibc_malloc
assert tune_glibc_malloc() if sys.argv[1] == "tuned" else True
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
n = 64 << 20
p = libc.malloc(n)
ctypes.memset(p, 1, n)
before = rss()
libc.free(ctypes.c_void_p(p))
print(before - rss())
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tuned_allocator_keeps_a_freed_block_resident():
    """Default glibc returns a freed 64 MiB block to the kernel (the page faults the tuning avoids); tuned,
    the block stays in the heap for the next step."""
    returned = {}
    for mode in ("default", "tuned"):
        out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True,
                             check=True)
        returned[mode] = int(out.stdout.strip())
    assert returned["default"] >= 60 << 20
    assert returned["tuned"] < 4 << 20


def test_trainer_applies_the_tuning_on_cpu_unless_turned_off(tmp_path, monkeypatch):
    from src.training import runtime
    from src.training.config import StageConfig, TrainerConfig
    from src.training.trainer import Trainer

    calls = []
    monkeypatch.setattr(runtime, "tune_glibc_malloc", lambda: calls.append(1) or True)
    model = __import__("torch").nn.Linear(2, 2)
    for flag in (True, False):
        Trainer(model, None, TrainerConfig(stages=[StageConfig(steps=1)], progress=False, tune_cpu_malloc=flag,
                                           device="cpu"), tmp_path, [])
    assert calls == [1]


def test_the_demo_pretrains_one_toy_model_per_seed_before_the_sweep(tmp_path):
    from src.demo import demo_phases

    phases = demo_phases("toy_demo", "dense,spri", "1,2,3", tmp_path / "out", jobs=4)
    assert [name for name, _, _, _ in phases] == ["toy corpus", "dense toy model", "sweep"]
    assert [watch for *_, watch in phases] == [None, tmp_path / "out" / ".pretrain", tmp_path / "out"]
    pretrain, sweep = phases[1][1], phases[2][1]
    assert pretrain[2:5] == ["src.pretrain", "-m", "+rebuild=false"]
    assert "seed=1,2,3" in pretrain and "hydra.launcher.n_jobs=3" in pretrain  # the three models in parallel
    assert f"hydra.sweep.dir={tmp_path / 'out' / '.pretrain'}" in pretrain  # hidden: the report skips it
    assert "seed=1,2,3" in sweep and "upcycle=dense,spri" in sweep and "hydra.launcher.n_jobs=4" in sweep
    assert sweep.index("seed=1,2,3") < sweep.index("upcycle=dense,spri")  # seed-major job order
