"""One process per run directory (src/utils/runlock.py): a live holder stops the second process, a gone one is
taken over with a warning."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from src.utils.errors import UserError
from src.utils.runlock import LOCK_FILE, run_lock


def hold(tmp_path, **holder) -> None:
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), **holder}))


def test_the_lock_is_held_for_the_block_and_removed_after(tmp_path):
    with run_lock(tmp_path) as path:
        held = json.loads(path.read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_live_holder_stops_a_second_process_with_one_line(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        hold(tmp_path, pid=child.pid)
        with pytest.raises(UserError) as err, run_lock(tmp_path):
            pass
    finally:
        child.kill()
        child.wait()
    message = str(err.value)
    assert f"in use by another process (pid {child.pid} on {socket.gethostname()})" in message and "\n" not in message
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == child.pid  # the holder's lock is left alone


def test_a_dead_holder_is_taken_over_with_a_warning(tmp_path, caplog):
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    hold(tmp_path, pid=int(child.stdout))  # that process has exited
    with caplog.at_level("WARNING"), run_lock(tmp_path) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert f"process {int(child.stdout)} is not running" in caplog.text


def test_a_reused_pid_is_not_the_holder(tmp_path, caplog):
    """The pid runs, but it is another process than the one that wrote the lock (its start time differs)."""
    hold(tmp_path, pid=os.getppid(), start="1")
    with caplog.at_level("WARNING"), run_lock(tmp_path):
        pass
    assert "is now another process" in caplog.text


def test_another_hosts_holder_stops_us_unless_it_is_the_same_slurm_job(tmp_path, monkeypatch, caplog):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "node-7", "slurm_job": "4242"}))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(UserError, match="pid 1 on node-7"), run_lock(tmp_path):
        pass
    monkeypatch.setenv("SLURM_JOB_ID", "4242")  # the job requeued on another node continues its own run
    with caplog.at_level("WARNING"), run_lock(tmp_path):
        pass
    assert "the same SLURM job 4242 (requeued)" in caplog.text
