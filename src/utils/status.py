"""A job dir's status.json (written by every entry point, read by the sweep summary and the report) and the
job dirs of a Hydra sweep: the run-dir format, in one leaf module both sides import."""

from __future__ import annotations

import json
from pathlib import Path

from src.utils.atomic import write_json

STATUS_FILE = "status.json"


def write_status(run_dir: Path, status: str, seconds: float, error: str | None = None,
                 extra: dict | None = None) -> None:
    """status.json: completed | failed | preempted, the one-line error, the job's wall time (the demo's timing
    table), and ``extra`` (a preempted job's signal, step and checkpoint)."""
    write_json(Path(run_dir) / STATUS_FILE, {"status": status, **({"error": error} if error else {}),
                                             "seconds": round(seconds, 2), **(extra or {})})


def job_status(run_dir: Path) -> dict | None:
    """A job dir's status.json ({"status": "completed" | "failed" | "preempted", "error": ...}); None if absent."""
    path = Path(run_dir) / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def sweep_jobs(sweep: Path) -> list[Path]:
    """The job dirs of a sweep dir (Hydra names them `N_...`), in job-number order."""
    return sorted((d for d in Path(sweep).iterdir() if d.is_dir() and d.name.split("_", 1)[0].isdigit()),
                  key=_job_order)


def _job_order(d: Path) -> tuple[int, str]:
    """Hydra's job dirs start with the job number (`3_upcycle-spri`): numeric order, not string order."""
    num = d.name.split("_", 1)[0]
    return (int(num) if num.isdigit() else 1 << 30, d.name)
