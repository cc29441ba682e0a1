"""Hydra callbacks: the end-of-sweep summary (which jobs failed, and why) and a non-zero exit if any did."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

STATUS_FILE = "status.json"


def job_status(run_dir: Path) -> dict | None:
    """A job dir's status.json ({"status": "completed" | "failed", "error": ...}), None when it has none."""
    path = Path(run_dir) / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class SweepSummary(Callback):
    """After a multirun: one line per failed job and a count; exits 1 when any job failed."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        if not sweep.is_dir():
            return
        statuses = {d: job_status(d) for d in sweep.iterdir() if d.is_dir()}  # each status.json read once
        jobs = sorted((d for d, s in statuses.items() if s is not None), key=_job_order)
        if not jobs:
            return
        failed = [d for d in jobs if statuses[d].get("status") != "completed"]
        if not failed:
            print(f"sweep {sweep}: all {len(jobs)} jobs completed", file=sys.stderr)
            return
        lines = [f"  #{d.name.split('_', 1)[0]} {d}: {statuses[d].get('error', 'no message')}" for d in failed]
        print(f"sweep {sweep}: {len(failed)}/{len(jobs)} failed:\n" + "\n".join(lines), file=sys.stderr)
        sys.exit(1)


def _job_order(d: Path) -> tuple[int, str]:
    """Hydra's job dirs start with the job number (`3_upcycle-spri`): numeric order, not string order."""
    num = d.name.split("_", 1)[0]
    return (int(num) if num.isdigit() else 1 << 30, d.name)
