"""What a run records about itself, typed: `train_summary.json` (`TrainSummary`: stages, selection, model,
machine, cost, and the comparison row the run belongs to) and `upcycling_report.json` (`UpcyclingReport`).
Each file is written and read here alone; the pipelines write them, the report, the timing table and the
evaluate job read them. A file written before a field existed still loads (the field reads None); a file that
is not what it should be stops with one line naming it and the fix (`RecordError`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from src.models.upcycling.config import CONFIGS, DENSE
from src.utils.atomic import write_json
from src.utils.errors import UserError

TRAIN_SUMMARY = "train_summary.json"
UPCYCLING_REPORT = "upcycling_report.json"
# Training-time methods a row adds to its strategy, and the moe.* key that switches each on.
ADDED_METHODS = (("distill", "self_distill", "coef"), ("dpsl", "dpsl", "coef"), ("sd_moe", "sd_moe", "rank"))


class RecordError(UserError):
    """A run's record file exists but cannot be read."""


def _load(path: Path) -> dict | None:
    """The file's JSON object; None when the file does not exist."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RecordError(f"{path} is unreadable ({type(e).__name__}: {e}); delete it and rerun the job, or "
                          "leave the run out of the comparison") from e
    if not isinstance(data, dict):
        raise RecordError(f"{path} holds a {type(data).__name__}, not a JSON object; delete it and rerun the job")
    return data


def _known(cls, data: dict) -> tuple[dict, dict]:
    """(the fields `cls` declares, the rest), so that unknown keys survive a read and a write."""
    names = {f.name for f in fields(cls)} - {"extra"}
    return {k: v for k, v in data.items() if k in names}, {k: v for k, v in data.items() if k not in names}


def _load_fields(cls, path: Path) -> tuple[dict, dict] | None:
    """A record file's (declared fields, other keys); None when the file does not exist."""
    data = _load(path)
    return None if data is None else _known(cls, data)


@dataclass(frozen=True)
class MethodLabel:
    """The comparison row a run belongs to: its method (strategy plus the training-time methods it adds,
    `spri+dpsl`) and its schedule (`2 stages: residual+router 33% -> all`; `schedule_key` two_stage33)."""

    method: str
    schedule: str | None = None
    schedule_key: str | None = None

    @classmethod
    def from_config(cls, cfg: dict, num_experts: int | None = None) -> MethodLabel:
        """From a run's config.yaml (the resolved composition).
        ``num_experts``: the upcycled model's (1: dense, which adds no MoE-side methods)."""
        dense = DENSE  # a config without upcycle.strategy: the dense model
        strategy = str((cfg.get("upcycle") or {}).get("strategy", dense))
        moe = cfg.get("moe") or {}
        is_moe = num_experts > 1 if num_experts is not None else strategy != dense
        own = getattr(CONFIGS.get(strategy), "includes", ())  # methods that are part of the strategy itself
        extras = [name for name, group, key in ADDED_METHODS
                  if is_moe and name not in own and (moe.get(group) or {}).get(key)]
        trainer = cfg.get("trainer") or {}
        return cls("+".join([strategy + _variant(strategy, cfg.get("upcycle") or {}), *extras]),
                   *schedule_labels(trainer.get("stages") or None, trainer.get("stage1_fraction")))


def _variant(strategy: str, upcycle: dict) -> str:
    """`[max_init_kl=0.3]` where a knob of the strategy's `variant_knobs` is not its default (a method variant is
    its own row: another budget must not merge with the default's runs as if it were a seed), else ''."""
    cls = CONFIGS.get(strategy)
    if cls is None:
        return ""
    default = cls()
    changed = [f"{k}={upcycle[k]}" for k in cls.variant_knobs if k in upcycle and upcycle[k] != getattr(default, k)]
    return f"[{','.join(changed)}]" if changed else ""


def schedule_labels(stages: list | None, stage1_fraction: float | None = None) -> tuple[str | None, str | None]:
    """(`1 stage: all` / `2 stages: residual+router 10% -> all`, `one_stage` / `two_stage10`): each stage's
    trainable groups in order, with the first stages' share of the steps where there are several (a 10% and a
    33% stage 1 are two rows); (None, None) without stages. ``stage1_fraction`` (trainer.stage1_fraction): stage
    1's share as configured, not as its rounded step count reads (0.3333 of 200 steps is 67: 34%, still 33%)."""
    if not stages:
        return None, None
    steps = [st.get("steps") if isinstance(st, dict) else None for st in stages]
    total = sum(steps) if all(isinstance(n, int) for n in steps) else None
    parts, share = [], None
    for i, st in enumerate(stages):
        groups = st.get("trainable") if isinstance(st, dict) else None
        groups = [groups] if isinstance(groups, str) else list(groups or [])
        pct = round(100 * steps[i] / total) if total and len(stages) > 1 and i < len(stages) - 1 else None
        if i == 0 and pct is not None and isinstance(stage1_fraction, (int, float)):
            pct = round(100 * stage1_fraction)
        share = pct if i == 0 else share
        parts.append(("+".join(map(str, groups)) or "?") + (f" {pct}%" if pct is not None else ""))
    n = len(parts)
    key = "one_stage" if n == 1 else f"two_stage{share if share is not None else ''}" if n == 2 else f"{n}_stages"
    return f"{n} stage{'s' if n != 1 else ''}: " + " -> ".join(parts), key


@dataclass
class Cost:
    """What a run cost (None where a run dir does not record it, never 0)."""

    steps: int | None = None  # optimizer steps, summed over the stages
    tokens: int | None = None  # target tokens trained on, all processes
    seconds: float | None = None  # wall time of the stages' step loops
    total_params: int | None = None
    active_params: int | None = None
    init_kl: float | None = None  # KL(dense || upcycled) per target token at init (the upcycling report)
    init_wer: float | None = None  # greedy English WER of the init on the test clips (`src.evaluate at_init=true`)


def _stage_sum(stages: list, key: str) -> float | None:
    """The sum of `key` over the stages; None unless every stage records it (a partial sum would mislead)."""
    vals = [st.get(key) if isinstance(st, dict) else None for st in stages]
    if not vals or any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in vals):
        return None
    return sum(vals)


def _relative(path: str | None, run_dir: Path) -> str | None:
    """``path`` relative to ``run_dir`` when it lies inside it, else as it is."""
    if not path:
        return path
    p, root = Path(path).absolute(), Path(run_dir).absolute()
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(path)


def _count(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass
class TrainSummary:
    """train_summary.json: written by the train pipeline when a run finished."""

    run_dir: str | None = None
    checkpoint: str | None = None
    selection: dict = field(default_factory=dict)  # which weights were evaluated (`label`, `checkpoint`, ...)
    model: dict = field(default_factory=dict)  # the pretrained model it started from (`label`, ...)
    machine: dict | None = None  # src/utils/machine.py's record
    stages: list[dict] = field(default_factory=list)  # the trainer's per-stage history (steps, tokens, seconds)
    train_examples: int | None = None
    dev_examples: int | None = None
    skipped: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)  # {split: the results' average row}
    processes: int | None = None
    extra: dict = field(default_factory=dict)  # keys this version does not know, kept as they were

    @property
    def cost(self) -> Cost:
        steps, tokens = _stage_sum(self.stages, "steps"), _stage_sum(self.stages, "tokens")
        return Cost(_count(steps), _count(tokens), _stage_sum(self.stages, "seconds"))

    def write(self, run_dir: Path) -> Path:
        """Checkpoint paths inside the run dir are stored relative to it, so a copied or moved run dir
        evaluates its own checkpoint (`checkpoint_path`)."""
        data = {k: v for k, v in asdict(self).items() if k != "extra"}
        data["checkpoint"] = _relative(data["checkpoint"], run_dir)
        if isinstance(data["selection"], dict) and data["selection"].get("checkpoint"):
            data["selection"] = {**data["selection"], "checkpoint": _relative(data["selection"]["checkpoint"], run_dir)}
        path = Path(run_dir) / TRAIN_SUMMARY
        write_json(path, {**data, **self.extra}, default=str)
        return path

    def checkpoint_path(self, run_dir: Path) -> Path | None:
        """The evaluated checkpoint of the run now in ``run_dir``: a relative record under it; an older absolute
        record under the run dir it was written in, rebased onto ``run_dir`` (a copy never reads the original's)."""
        if not self.checkpoint:
            return None
        path = Path(self.checkpoint)
        if not path.is_absolute():
            return Path(run_dir) / path
        if self.run_dir and path.is_relative_to(self.run_dir):
            return Path(run_dir) / path.relative_to(self.run_dir)
        return path

    @classmethod
    def read(cls, run_dir: Path) -> TrainSummary | None:
        """The run's summary; None when it has none (a run that did not finish)."""
        fields_ = _load_fields(cls, Path(run_dir) / TRAIN_SUMMARY)
        if fields_ is None:
            return None
        own, extra = fields_
        summary = cls(**own, extra=extra)  # an older file's row label ("method") is kept in extra, unread
        for name in ("selection", "model", "skipped", "results"):  # older or hand-edited files: null -> {}
            if not isinstance(getattr(summary, name), dict):
                setattr(summary, name, {})
        if not isinstance(summary.stages, list):
            summary.stages = []
        return summary


@dataclass
class UpcyclingReport:
    """upcycling_report.json: what upcycling did (models/upcycling/apply.py's report) and, after training, how
    far each stage moved the experts and how alike they ended."""

    strategy: str = ""
    num_experts: int = 1
    top_k: int = 1
    total_parameters: int | None = None
    active_parameters: int | None = None
    layers: list[dict] = field(default_factory=list)
    init_loss: dict | None = None  # KL and CE ratio at init on the held-out calibration batches
    init_eval: dict | None = None  # `src.evaluate at_init=true`: the init decoded (task, decoding, splits' averages)
    auto: dict | None = None  # an `auto` knob's search
    warnings: list[str] = field(default_factory=list)
    upcycle_seconds: float | None = None
    calibration_task: str | None = None
    budget_task: str | None = None
    stage_movement: dict | None = None
    after_training: dict | None = None
    extra: dict = field(default_factory=dict)  # a strategy's own fields, kept as they were

    @classmethod
    def from_dict(cls, data: dict) -> UpcyclingReport:
        own, extra = _known(cls, data)
        return cls(**own, extra=extra)

    def to_dict(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k != "extra" and v is not None}
        return {**data, **self.extra}

    def write(self, run_dir: Path) -> Path:
        path = Path(run_dir) / UPCYCLING_REPORT
        write_json(path, self.to_dict())
        return path

    @classmethod
    def read(cls, run_dir: Path) -> UpcyclingReport | None:
        fields_ = _load_fields(cls, Path(run_dir) / UPCYCLING_REPORT)
        return None if fields_ is None else cls(**fields_[0], extra=fields_[1])


def cost_of(summary: TrainSummary | None, report: UpcyclingReport | None) -> Cost:
    """steps / tokens / seconds from the summary, total / active parameters from the report; None where missing."""
    cost = summary.cost if summary else Cost()
    if report:
        cost.total_params, cost.active_params = _count(report.total_parameters), _count(report.active_parameters)
        cost.init_kl = _number((report.init_loss or {}).get("kl"))
        cost.init_wer = init_wer(report)
    return cost


def init_wer(report: UpcyclingReport) -> float | None:
    """The init's English WER on the test split, where `src.evaluate at_init=true eval.task=transcribe` wrote one."""
    ev = report.init_eval or {}
    return _number(((ev.get("splits") or {}).get("test") or {}).get("wer")) if ev.get("task") == "transcribe" else None


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def run_cost(run_dir: Path) -> Cost:
    """A run dir's cost (`cost_of` its train_summary.json and upcycling_report.json)."""
    return cost_of(TrainSummary.read(run_dir), UpcyclingReport.read(run_dir))
