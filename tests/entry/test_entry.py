"""The entry wrapper (src/entry/cli.py): every way a job ends writes status.json, and a run dir has one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from helpers import ROOT, make_cfg

from src.entry.cli import entry
from src.utils.errors import Preempted
from src.utils.runlock import LOCK_FILE


def status(tmp_path) -> dict:
    return json.loads((tmp_path / "status.json").read_text())


def test_a_crash_keeps_its_traceback_and_writes_status_json(tmp_path):
    def crash(run):
        raise RuntimeError("boom\nsecond line")

    with pytest.raises(RuntimeError, match="boom"):
        entry(crash)(make_cfg(tmp=tmp_path))
    assert status(tmp_path)["status"] == "failed" and status(tmp_path)["error"] == "RuntimeError: boom"
    assert not (tmp_path / LOCK_FILE).exists()  # released on the way out


def test_a_preempted_job_exits_128_plus_the_signal_with_status_preempted(tmp_path, capsys):
    def stopped(run):
        raise Preempted(signal.SIGTERM, 15, str(tmp_path / "checkpoints" / "step-00000015"))

    with pytest.raises(SystemExit) as exit_:
        entry(stopped)(make_cfg(tmp=tmp_path))
    assert exit_.value.code == 143
    st = status(tmp_path)
    assert (st["status"], st["signal"], st["global_step"]) == ("preempted", 15, 15)
    assert st["checkpoint"].endswith("step-00000015")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"preempted: stopped by SIGTERM after global step 15: checkpoint {st['checkpoint']}; run the "
                   "same command again to continue"]


def test_a_schedulers_handler_runs_after_status_json_says_preempted(tmp_path):
    """submitit's SIGUSR2 handler requeues the job and exits: status.json must already say preempted then."""
    seen = []

    def requeue(signum, frame):
        seen.append((signum, status(tmp_path)["status"]))
        raise SystemExit(-1)  # as submitit's does after `scontrol requeue`

    def stopped(run):
        raise Preempted(signal.SIGUSR2, 3, None, then=requeue)

    with pytest.raises(SystemExit) as exit_:
        entry(stopped)(make_cfg(tmp=tmp_path))
    assert exit_.value.code == -1 and seen == [(signal.SIGUSR2, "preempted")]


def test_a_second_process_in_the_same_run_dir_stops_with_one_line(tmp_path, capsys):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": child.pid, "host": os.uname().nodename}))
        ran = []
        with pytest.raises(SystemExit) as exit_:
            entry(ran.append)(make_cfg(tmp=tmp_path))
    finally:
        child.kill()
        child.wait()
    assert exit_.value.code == 2 and ran == []
    first = capsys.readouterr().err.strip().splitlines()[0]
    assert first.startswith(f"error: {tmp_path} is in use by another process (pid {child.pid}")
    assert not (tmp_path / "status.json").exists() and not (tmp_path / "config.yaml").exists()  # the holder's


def test_the_cli_refuses_a_held_run_dir_before_hydra_writes_into_it(tmp_path):
    """The OutputDirCheck callback takes the lock before Hydra writes .hydra/ and its log (a second process would
    overwrite the holder's), and nothing is written."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": child.pid, "host": os.uname().nodename}))
        proc = subprocess.run([sys.executable, "-m", "src.train", f"hydra.run.dir={tmp_path}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    finally:
        child.kill()
        child.wait()
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path} is in use by another process (pid {child.pid} on {os.uname().nodename}): one process per "
        f"run directory. Wait for it, pick another hydra.run.dir, or delete {tmp_path / LOCK_FILE} if that process is "
        "gone"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]
