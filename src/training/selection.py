"""Which weights a run ends with (`trainer.select`, `trainer.average_last`) and when it stops (`trainer.patience`).

Rules, one per run:
- `last`: the final weights (the last stage's checkpoint).
- `best_dev_loss`: the weights with the lowest dev loss over the whole run (every stage), evaluated every
  `trainer.eval_every` steps and at each stage end; each improvement is saved as `checkpoints/best-<step>/`.
- `average_last: N`: the element-wise mean of the final weights and the N-1 newest mid-stage `step-*`
  checkpoints of the last stage (fairseq's scripts/average_checkpoints.py), written to `checkpoints/averaged/`.

Early stopping (`trainer.patience: P`) counts only the evaluations of the LAST stage: earlier stages of a
multi-stage schedule always run their whole budget (stopping there would drop the rest of the method's
schedule, e.g. SPRI's stage 2), and the last stage stops after P consecutive evaluations that do not improve
on the best dev loss so far; that ends training.

Resume: every step and stage checkpoint's trainer_state.json carries `best` and `evals_since_best`; best
dirs newer than the checkpoint resumed from are deleted (they are replayed). Best dirs older than the current
best are pruned only when a step or stage checkpoint is published, so the best that the newest checkpoint
refers to stays on disk (a resume that falls back past a damaged newest checkpoint to an older one may find
its best pruned: it says so, and the best dev loss starts over).

Step checkpoints (`save_every`) and evaluations (`eval_every`) fall on global steps, so a two-stage schedule
saves, evaluates and averages at the same steps as a one-stage one.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

import torch

from src.training.checkpoint import (
    COMPLETE,
    WEIGHTS_FILE,
    ResumePoint,
    checkpoint_problem,
    read_state,
    save_checkpoint,
    step_dirs,
)

log = logging.getLogger(__name__)

BEST_PREFIX = "best-"
AVERAGED = "averaged"


def dev_requirement(cfg) -> str | None:
    """The setting that needs a dev split ('trainer.select=best_dev_loss', 'trainer.patience=P'), or None."""
    if cfg.select == "best_dev_loss":
        return "trainer.select=best_dev_loss"
    if cfg.patience is not None:
        return f"trainer.patience={cfg.patience}"
    return None


def _weights_file(path: str | Path) -> Path:
    path = Path(path)
    return path / WEIGHTS_FILE if path.is_dir() else path


def average_state_dicts(paths: list[str | Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of each floating-point tensor of the checkpoints' safetensors files (dirs or
    files), as fairseq's average_checkpoints.py: summed in float32 (float64 stays float64), returned in each
    tensor's own dtype. Other tensors (integer buffers) are taken from the first path. One tensor is read at
    a time from each file, so memory holds one model plus one tensor."""
    from safetensors import safe_open

    if not paths:
        raise ValueError("average_state_dicts: no checkpoints to average")
    files = [_weights_file(p) for p in paths]
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(safe_open(str(f), framework="pt")) for f in files]
        keys = set(handles[0].keys())
        for f, h in zip(files[1:], handles[1:]):
            if set(h.keys()) != keys:
                diff = sorted(set(h.keys()) ^ keys)[:5]
                raise ValueError(f"{f}: tensors differ from {files[0]} ({diff}); cannot average")
        out = {}
        for key in sorted(keys):
            first = handles[0].get_tensor(key)
            if not first.is_floating_point():
                out[key] = first
                continue
            acc = first.to(torch.float64 if first.dtype == torch.float64 else torch.float32)
            for h in handles[1:]:
                acc += h.get_tensor(key).to(acc.dtype)
            out[key] = (acc / len(handles)).to(first.dtype)
    return out


def _step_of(d: Path, prefix: str) -> int:
    return int(d.name[len(prefix):])


def best_dirs(ckpts: Path) -> list[Path]:
    """checkpoints/best-<step> dirs, oldest first (temp and old copies excluded)."""
    found = [d for d in Path(ckpts).glob(f"{BEST_PREFIX}*") if d.is_dir() and d.name[len(BEST_PREFIX):].isdigit()]
    return sorted(found, key=lambda d: _step_of(d, BEST_PREFIX))


def is_best_dir(path: Path) -> bool:
    return path.name.startswith(BEST_PREFIX)


class Selector:
    """Tracks the best dev loss and the patience count; says when to save a best checkpoint and when to stop;
    averages at the end of the last stage; and names the selected checkpoint (`result`). File changes happen
    on the main process only; the decisions are the same on every process (the dev loss is)."""

    def __init__(self, cfg, ckpts: Path, is_main: bool = True) -> None:
        self.cfg, self.ckpts, self.is_main = cfg, Path(ckpts), is_main
        self.last_index = len(cfg.stages) - 1
        self.best: dict | None = None  # {"global_step", "dev_loss"} of the lowest dev loss so far
        self.evals_since_best = 0  # the last stage's evaluations since the best (or since it began)
        self.stopped_at: int | None = None

    @property
    def averaging(self) -> bool:
        return (self.cfg.average_last or 1) > 1

    @property
    def averaged_dir(self) -> Path:
        return self.ckpts / AVERAGED

    def best_dir(self, global_step: int) -> Path:
        return self.ckpts / f"{BEST_PREFIX}{global_step:08d}"

    def state(self) -> dict:
        """What a step or stage checkpoint's trainer_state.json records for the resume."""
        return {"best": self.best, "evals_since_best": self.evals_since_best}

    def start(self, point: ResumePoint | None) -> None:
        """Before training: restore the best so far from the resume point (None: a fresh start) and delete
        what the run will redo (best dirs newer than the point; the average unless the run is complete)."""
        self.best = point.best if point else None
        self.evals_since_best = point.evals_since_best if point else 0
        step = point.global_step if point else -1
        if self.is_main:
            for d in best_dirs(self.ckpts):
                if _step_of(d, BEST_PREFIX) > step:
                    shutil.rmtree(d, ignore_errors=True)
            if not (point and point.complete and point.stage_index == self.last_index + 1):
                shutil.rmtree(self.averaged_dir, ignore_errors=True)
        if self.best is not None and self.cfg.select == "best_dev_loss" \
                and not (self.best_dir(self.best["global_step"]) / COMPLETE).exists():
            log.warning("resume: %s (the best so far) is gone; the best dev loss starts over",
                        self.best_dir(self.best["global_step"]))
            self.best, self.evals_since_best = None, 0

    def observe(self, dev_loss: float | None, global_step: int, stage_index: int) -> bool:
        """Record an evaluation; True when the trainer should save the weights as best_dir(global_step)."""
        if dev_loss is None:
            return False
        if self.best is None or dev_loss < self.best["dev_loss"]:
            self.best = {"global_step": global_step, "dev_loss": dev_loss}
            self.evals_since_best = 0
            return self.cfg.select == "best_dev_loss"
        if stage_index == self.last_index:
            self.evals_since_best += 1
        return False

    def should_stop(self, global_step: int) -> bool:
        """trainer.patience ran out (only the last stage's evaluations count, see the module docstring)."""
        if self.cfg.patience is None or self.evals_since_best < self.cfg.patience:
            return False
        self.stopped_at = global_step
        log.info("early stop at step %d: no better dev loss in %d evaluations (trainer.patience); best %.4f "
                 "at step %d", global_step, self.evals_since_best, self.best["dev_loss"], self.best["global_step"])
        return True

    def prune(self) -> None:
        """After a step or stage checkpoint is published: delete the best dirs older than the current best."""
        if not self.is_main or self.best is None:
            return
        for d in best_dirs(self.ckpts):
            if _step_of(d, BEST_PREFIX) < self.best["global_step"]:
                shutil.rmtree(d, ignore_errors=True)

    def average(self, model, tokenizer, final_dir: Path, global_step: int) -> None:
        """Main process: write the mean of the final weights and the newest step checkpoints of the last
        stage to checkpoints/averaged/ (call before the stage's step checkpoints are cleared)."""
        steps = [d for d in step_dirs(self.ckpts) if checkpoint_problem(d, True) is None]  # newest first
        states = [read_state(d) for d in steps]
        steps = [d for d, st in zip(steps, states)
                 if st.get("stage_index") == self.last_index and st["global_step"] < global_step]
        paths = [final_dir, *steps[: self.cfg.average_last - 1]]
        if len(paths) < self.cfg.average_last:
            log.warning("trainer.average_last=%d: the last stage has only %d step checkpoint(s); averaging %d",
                        self.cfg.average_last, len(paths) - 1, len(paths))
        state = {"global_step": global_step, "averaged": [p.name for p in paths]}
        save_checkpoint(model, tokenizer, self.averaged_dir, state, weights=average_state_dicts(paths))
        log.info("averaged %s into %s", ", ".join(state["averaged"]), self.averaged_dir)

    def result(self, final_dir: Path, global_step: int) -> dict:
        """The selection: rule, a short label for tables, the step and the checkpoint the run ends with."""
        out = {"rule": "last", "label": f"last (patience {self.cfg.patience})" if self.cfg.patience else "last",
               "global_step": global_step, "checkpoint": str(final_dir), "stopped_early_at": self.stopped_at}
        if self.cfg.select == "best_dev_loss":
            every = f"every {self.cfg.eval_every} steps" if self.cfg.eval_every else "stage ends"
            patience = f", patience {self.cfg.patience}" if self.cfg.patience else ""
            out.update(rule="best_dev_loss", label=f"best dev loss ({every}{patience})")
            if self.best is None:
                log.warning("trainer.select=best_dev_loss: no dev loss was ever computed; the last weights stay")
                return out
            return {**out, "global_step": self.best["global_step"], "dev_loss": self.best["dev_loss"],
                    "checkpoint": str(self.best_dir(self.best["global_step"]))}
        if self.averaging:
            if not (self.averaged_dir / COMPLETE).exists():
                log.warning("trainer.average_last: %s missing; the last weights stay", self.averaged_dir)
                return out
            names = read_state(self.averaged_dir)["averaged"]
            return {**out, "rule": "average_last", "checkpoint": str(self.averaged_dir), "averaged": names,
                    "label": f"average of last {len(names)} (every {self.cfg.save_every} steps)"}
        return out
