"""The demo's console: one progress line per job (step, loss, ETA) from the job's own files, the phase's output
in a log file, and the log's tail on the console when the phase fails."""

from __future__ import annotations

import io
import sys
import time

from src.entry import timing as tm
from src.entry.progress import Watch, job_progress
from src.utils.status import write_status

HYDRA_LINE = "[2026-12-02 10:00:00,000][src.training.loggers][INFO] - step {} loss={} lr=0.002 tok/s=1200\n"


def make_job(sweep, name: str, total: int = 1200, task: str = "train", steps=()):
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    key = "pretrain:\n  steps" if task == "pretrain" else "trainer:\n  total_steps"
    (job / ".hydra" / "config.yaml").write_text(f"task_name: {task}\n{key}: {total}\n")
    (job / f"{task}.log").write_text("".join(HYDRA_LINE.format(s, loss) for s, loss in steps))
    return job


def test_a_running_job_shows_its_latest_step_loss_and_eta(tmp_path):
    job = make_job(tmp_path, "0_upcycle-spri", steps=[(200, "2.5000"), (400, "2.1234")])
    started = (job / ".hydra").stat().st_mtime
    p = job_progress(job, now=started + 100.0)
    assert (p.state, p.step, p.total, p.loss) == ("running", 400, 1200, 2.1234)
    assert p.line() == f"{'0_upcycle-spri':<28} step   400/1200  loss 2.123  training ETA 3 min 20 s"  # 100 s x 800/400
    make_job(tmp_path, "1_pre", total=1000, task="pretrain", steps=[(1000, "1.5")])
    assert job_progress(tmp_path / "1_pre").line().endswith("step  1000/1000  loss 1.500  evaluating")


def test_an_ended_job_shows_its_status(tmp_path):
    job = make_job(tmp_path, "2_upcycle-drop", steps=[(200, "2.5")])
    write_status(job, "failed", 12.0, "ConfigError: moe.top_k=3 must be between 1 and moe.num_experts=2")
    assert job_progress(job).line().endswith("FAILED: ConfigError: moe.top_k=3 must be between 1 and moe.num_experts=2")
    write_status(job, "completed", 605.0)
    assert job_progress(job).line().endswith("done in 10 min 05 s")


def test_the_plain_console_prints_a_line_only_when_a_job_moves(tmp_path):
    job = make_job(tmp_path, "0_upcycle-dense", steps=[(200, "2.5")])
    out = io.StringIO()
    watch = Watch(tmp_path, out)
    watch.poll()
    watch.poll()  # nothing new: nothing printed
    with open(job / "train.log", "a") as fh:
        fh.write(HYDRA_LINE.format(400, "2.25"))
    watch.poll()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "step   200/1200" in lines[0] and "step   400/1200  loss 2.250" in lines[1]


def test_a_logged_phase_keeps_the_console_short_and_shows_the_tail_on_failure(tmp_path, capsys):
    t = tm.Timing()
    code = "import sys\nfor i in range(100): print('line', i)\nsys.exit(3)"
    rc = tm.run_phase("boom", [sys.executable, "-c", code], t, log=tmp_path / "logs" / "boom.log", poll_seconds=0.1)
    console = capsys.readouterr().out
    assert rc == 3 and t.phases[0].returncode == 3
    assert (tmp_path / "logs" / "boom.log").read_text().count("line ") == 100  # all of it in the log
    assert "   | line 99" in console and "   | line 70" in console and "line 69\n" not in console  # the last 30
    start = time.perf_counter()
    assert tm.run_phase("ok", [sys.executable, "-c", "print('quiet')"], t, log=tmp_path / "ok.log") == 0
    assert "quiet" not in capsys.readouterr().out and time.perf_counter() - start < 30


def test_half_written_job_files_never_end_the_phase(tmp_path, monkeypatch, capsys):
    job = make_job(tmp_path, "0_upcycle-vanilla", steps=[(200, "2.5")])
    (job / ".hydra" / "config.yaml").write_text("trainer:\n  total_steps: [1200\n")  # cut mid-write
    assert job_progress(job).total is None and job_progress(job).step == 200
    monkeypatch.setattr(Watch, "poll", lambda self: 1 / 0)  # whatever goes wrong in the display
    t = tm.Timing()
    assert tm.run_phase("p", [sys.executable, "-c", "pass"], t, log=tmp_path / "p.log", watch=tmp_path,
                        poll_seconds=0.1) == 0
    assert "progress unavailable: ZeroDivisionError" in capsys.readouterr().out


def test_a_terminal_gets_each_job_on_one_row(tmp_path, monkeypatch):
    import os

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    job = make_job(tmp_path, "0_upcycle-drop", steps=[(200, "2.5")])
    write_status(job, "failed", 3.0, "ConfigError: " + "x" * 500)
    monkeypatch.setattr("shutil.get_terminal_size", lambda *a: os.terminal_size((80, 24)))
    out = Tty()
    watch = Watch(tmp_path, out)
    watch.poll()
    watch.poll()
    rows = out.getvalue().split("\n")
    assert out.getvalue().count("\x1b[1F") == 1 and max(len(r.replace("\x1b[1F", "")) for r in rows) <= 4 + 2 + 77
