"""Finding the runs a comparison covers: run dirs (or sweep dirs holding them) with eval/<split>/results.csv,
each typed as a `ScoredRun` from its records (src/evaluation/records.py). A run that cannot be read is skipped with
one line naming the file, and listed under the table (`Skipped`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from src.evaluation.config import MetricsConfig
from src.evaluation.records import Cost, MethodLabel, RecordError, TrainSummary, UpcyclingReport, cost_of
from src.evaluation.results import read_results
from src.utils.status import job_status

log = logging.getLogger(__name__)


@dataclass
class ScoredRun:
    """A finished run read back for the comparison: its row label, seed, scores per direction and cost."""

    path: Path
    label: MethodLabel
    seed: int
    results: dict[str, dict]  # direction (and "average") -> results row
    cost: Cost = field(default_factory=Cost)
    scoring: MetricsConfig = field(default_factory=MetricsConfig)  # how the run scored (its tokenizer overrides)
    machine: dict | None = None  # train_summary.json's record of the machine (src/utils/machine.py)
    model: str | None = None  # the pretrained model it started from (the toy model's cache dir, or its name)
    selection: str | None = None  # which weights were evaluated: "last", "best dev loss (...)", ...

    @property
    def key(self) -> tuple[str, str | None]:
        """The comparison row it belongs to: (method, schedule)."""
        return self.label.method, self.label.schedule


@dataclass
class Skipped:
    path: Path
    reason: str


def _candidates(p: Path) -> list[Path]:
    """``p`` itself when it is a run dir, else the run dirs under it (hydra's .hydra/ copies are not runs)."""
    if (p / "config.yaml").exists():
        return [p]
    return sorted(c.parent for c in p.rglob("config.yaml")
                  if not any(part.startswith(".") for part in c.relative_to(p).parent.parts))


def read_run(d: Path, split: str) -> ScoredRun:
    """The run in ``d``; RecordError (one line naming the file) when a file it needs cannot be read."""
    try:
        loaded = OmegaConf.load(d / "config.yaml")
    except Exception as e:  # noqa: BLE001 - a truncated or non-YAML config.yaml: name it, skip the run
        raise RecordError(f"{d / 'config.yaml'} is unreadable ({type(e).__name__}: {e})") from e
    try:
        cfg = OmegaConf.to_container(loaded, resolve=True)
    except Exception:  # noqa: BLE001 - a hand-edited interpolation: read it as written (its schedule: n/a parts)
        cfg = OmegaConf.to_container(loaded, resolve=False)
    if not isinstance(cfg, dict):
        raise RecordError(f"{d / 'config.yaml'} is not a mapping; it is not a run's config")
    summary, report = TrainSummary.read(d), UpcyclingReport.read(d)
    # The row is derived from the run's config by today's rule, so one report never holds one row under two names
    # (a label an older train_summary.json recorded is not read).
    label = MethodLabel.from_config(cfg, report.num_experts if report else None)
    cost = cost_of(summary, report)
    results_file = d / "eval" / split / "results.csv"
    try:
        results = {r["direction"]: r for r in read_results(results_file)}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise RecordError(f"{results_file} is unreadable ({type(e).__name__}: {e}); rescore it: python -m "
                          f"src.evaluate run_dir={d} rescore=true") from e
    if "average" not in results:
        raise RecordError(f"{results_file} has no average row; rescore it: python -m src.evaluate run_dir={d} "
                          "rescore=true")
    tokenize = ((cfg.get("eval") or {}).get("bleu_tokenize")) or {}
    return ScoredRun(d, label, int(cfg.get("seed", 0) or 0), results, cost, MetricsConfig(bleu_tokenize=dict(tokenize)),
               summary.machine if summary else None, (summary.model or {}).get("label") if summary else None,
               (summary.selection or {}).get("label") if summary else None)


def find_runs(paths: list[str | Path], split: str) -> tuple[list[ScoredRun], list[Skipped]]:
    """The runs under ``paths`` that have eval/<split>/results.csv, and those skipped (failed jobs, unreadable
    files), each with its reason; FileNotFoundError when a path does not exist or no run is left."""
    runs, skipped = [], []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        for d in _candidates(p):
            status = job_status(d)
            if status is not None and status.get("status") == "preempted":
                skipped.append(Skipped(d, f"stopped at step {status.get('global_step', '?')} (signal "
                                          f"{status.get('signal', '?')}): its training command continues it"))
            elif status is not None and status.get("status") != "completed":
                skipped.append(Skipped(d, f"the job failed ({status.get('error', 'no message')})"))
            elif not (d / "eval" / split / "results.csv").exists():
                skipped.append(Skipped(d, "not finished (running, or killed): its training command continues it"
                                       if status is None and (d / "checkpoints").is_dir() else
                                       f"no {split} results (run `python -m src.evaluate run_dir={d}`)"))
            else:
                try:
                    runs.append(read_run(d, split))
                except RecordError as e:
                    skipped.append(Skipped(d, str(e)))
    for s in skipped:
        log.warning("%s: skipped: %s", s.path, s.reason)
    if not runs:
        raise FileNotFoundError(f"no readable run with eval/{split}/results.csv under {', '.join(map(str, paths))}")
    return runs, skipped
