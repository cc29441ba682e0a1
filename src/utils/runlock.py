"""One process per run directory: `run.lock` (holder's pid, host, process start time and SLURM job id).

Two jobs writing one run dir interleave metrics.jsonl and overwrite each other's checkpoints while both exit 0,
so a second process stops with one line naming the holder. A lock whose holder is gone is taken over with a
warning: on this host, a pid that no longer runs (or runs a different process: its start time differs); on
any host, the same SLURM job id (a requeued job, possibly on another node, continues its own run).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from src.utils.errors import UserError

log = logging.getLogger(__name__)

LOCK_FILE = "run.lock"


class RunDirBusy(UserError):
    """Another live process holds the run dir: its files (status.json too) are that process's, not ours to write."""


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); None off Linux or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid()),
            "slurm_job": os.environ.get("SLURM_JOB_ID")}


def holder_gone(holder: dict) -> str | None:
    """Why the lock's holder no longer holds it (None: it may still be running)."""
    me = _me()
    if holder.get("slurm_job") and holder["slurm_job"] == me["slurm_job"]:
        return f"the same SLURM job {holder['slurm_job']} (requeued)"
    if holder.get("host") != me["host"]:
        return None  # another machine's process cannot be checked from here
    pid = int(holder.get("pid", -1))
    if pid <= 0 or not _alive(pid):
        return f"process {pid} is not running"
    if holder.get("start") and _process_start(pid) not in (None, holder["start"]):
        return f"pid {pid} is now another process"
    return None


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # unreadable: a crash between create and write; treated as held by nobody we can check


def _create(path: Path, me: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(me) + "\n")
    return True


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold ``run_dir``/run.lock for the block; a live holder stops this process with one line (UserError)."""
    path = Path(run_dir) / LOCK_FILE
    me = _me()
    if not _create(path, me):
        holder = _read(path)
        if holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
            yield path  # already ours (the Hydra callback took it before Hydra wrote .hydra/): the outer block frees it
            return
        why = holder_gone(holder) if holder else "the lock file is empty or unreadable"
        if why is None:
            raise RunDirBusy(
                f"{run_dir} is in use by another process (pid {holder.get('pid')} on {holder.get('host')}): "
                f"one process per run directory. Wait for it, pick another hydra.run.dir, or delete {path} if "
                "that process is gone")
        log.warning("taking over %s: %s", path, why)
        path.unlink(missing_ok=True)
        if not _create(path, me):
            raise RunDirBusy(f"{path}: another process took the lock at the same moment; one process per run "
                            "directory")
    try:
        yield path
    finally:
        if _read(path).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive(path: str | Path) -> Iterator[None]:
    """A blocking inter-process lock (flock on ``path``): parallel jobs build a shared cache (the toy model, the
    encoder states) once, the others wait and then reuse it."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
