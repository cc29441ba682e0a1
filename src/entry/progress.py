"""One progress line per job while a demo or study phase runs: the phase's own output goes to a log file, the
console gets each job's latest step, loss and training ETA (read from the job's Hydra log) and its end state
(status.json). On a terminal the lines are redrawn in place; elsewhere (CI, a pipe) a job's line is printed
again only when it changes."""

from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from src.utils.status import job_status, sweep_jobs

STEP_LINE = re.compile(r"\bstep (\d+) (?:.*?\b)?loss=([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))\b")


@dataclass
class JobProgress:
    name: str
    state: str  # running | completed | failed
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    seconds: float | None = None  # wall time so far (running) or in all (ended)
    error: str = ""

    def line(self) -> str:
        if self.state == "completed":
            return f"{self.name:<28} done in {fmt_seconds(self.seconds)}"
        if self.state == "failed":
            return f"{self.name:<28} FAILED: {self.error}"
        if self.step is None:
            return f"{self.name:<28} starting ({fmt_seconds(self.seconds)})"
        budget = f"/{self.total}" if self.total else ""
        text = f"{self.name:<28} step {self.step:>5}{budget}  loss {self.loss:.3f}"
        if self.total and self.step >= self.total:
            return text + "  evaluating"
        if self.total and self.step and self.seconds:
            text += f"  training ETA {fmt_seconds(self.seconds * (self.total - self.step) / self.step)}"
        return text


def short_name(job: str) -> str:
    """A job dir's name without what every demo job shares (`experiment-toy_demo__`, `+rebuild-False__`)."""
    return re.sub(r"(experiment-[^_]+(_[^_]+)*?__|\+rebuild-\w+__)", "", job)


def fmt_seconds(seconds: float | None) -> str:
    """`3 min 07 s`, `42 s`; `?` when unknown (the demo's console, its timing table, the study's job lines)."""
    if seconds is None:
        return "?"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def step_budget(job: Path) -> int | None:
    """The job's optimizer-step budget from its composed config (.hydra/config.yaml): trainer.total_steps for a
    training job, pretrain.steps for the toy model's pretraining; None when not a plain number."""
    from omegaconf import OmegaConf

    try:
        cfg = OmegaConf.load(job / ".hydra" / "config.yaml")
        # the entry module names the job's log (Hydra's job name): src.pretrain's budget is the recipe's
        key = "pretrain.steps" if (job / "pretrain.log").exists() else "trainer.total_steps"
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
    except Exception:  # noqa: BLE001 - Hydra writes the file in place: a half-written one is just not read yet
        return None
    return value if isinstance(value, int) else None


def last_step(job: Path) -> tuple[int, float] | None:
    """(step, loss) of the newest training log line in the job's Hydra log (<task>.log)."""
    for log in sorted(job.glob("*.log"), key=lambda f: f.stat().st_mtime, reverse=True):  # the newest first
        try:
            with open(log, "rb") as fh:
                fh.seek(0, 2)
                fh.seek(max(0, fh.tell() - 16384))
                tail = fh.read().decode(errors="replace")
        except OSError:
            continue
        found = STEP_LINE.findall(tail)
        if found:
            step, loss = found[-1]
            return int(step), float(loss)
    return None


def job_progress(job: Path, now: float | None = None) -> JobProgress:
    now = time.time() if now is None else now
    status = job_status(job)
    if status is not None:
        return JobProgress(short_name(job.name), status.get("status", "unknown"), seconds=status.get("seconds"),
                           error=status.get("error", ""))
    started = (job / ".hydra").stat().st_mtime if (job / ".hydra").exists() else job.stat().st_mtime
    progress = JobProgress(short_name(job.name), "running", total=step_budget(job), seconds=max(0.0, now - started))
    if (found := last_step(job)) is not None:
        progress.step, progress.loss = found
    return progress


class Watch:
    """Prints the jobs of ``sweep`` (a Hydra sweep dir) as they progress; `poll` is called every few seconds."""

    def __init__(self, sweep: Path, out: TextIO = sys.stdout) -> None:
        self.sweep, self.out = Path(sweep), out
        self.tty = out.isatty()
        self.shown: dict[str, tuple] = {}
        self.drawn = 0

    def poll(self) -> None:
        if not self.sweep.is_dir():
            return
        jobs = [job_progress(job) for job in sweep_jobs(self.sweep)]
        if self.tty:  # one screen row per job, so the cursor can go back over them: cut to the width
            width = shutil.get_terminal_size().columns - 3
            self.out.write(f"\x1b[{self.drawn}F" if self.drawn else "")
            self.out.write("".join(f"\x1b[2K  {job.line()[:width]}\n" for job in jobs))
            self.drawn = len(jobs)
        else:
            for job in jobs:
                key = (job.state, job.step)  # not the times, which change at every poll
                if self.shown.get(job.name) != key:
                    self.out.write(f"  {job.line()}\n")
                    self.shown[job.name] = key
        self.out.flush()
