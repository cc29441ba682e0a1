"""The run's checkpoint and resume state: what each checkpoint records (weights, optimizer, every rank's
random-number states, the extensions' states, where the data stands), where a run continues (trainer.resume),
and which checkpoint a diverged run names. The files themselves: src/training/checkpoint.py."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from src.training.checkpoint import (
    ResumePoint,
    capture_rng,
    find_resume_point,
    has_checkpoints,
    load_extension_states,
    load_rng,
    load_weights,
    optimizer_state,
    publish_step,
    save_checkpoint,
)
from src.training.config import TrainerConfig, resume_mode
from src.training.distributed import gathered_state_dict, is_sharded
from src.training.extensions import Extensions
from src.training.runtime import Runtime
from src.training.selection import Selector, is_best_dir
from src.training.step import NonFinitePolicy
from src.utils.errors import NonFiniteError, UserError

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where the run stands: the optimizer steps done, the data position, the completed stages' summaries."""

    global_step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    history: list[dict] = field(default_factory=list)

    def position(self) -> dict:
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}


class Checkpointer:
    def __init__(self, cfg: TrainerConfig, run_dir: Path, runtime: Runtime, model: torch.nn.Module, tokenizer,
                 extensions: Extensions, selector: Selector, nonfinite: NonFinitePolicy, logger=None) -> None:
        self.cfg, self.runtime, self.model, self.tokenizer = cfg, runtime, model, tokenizer
        self.extensions, self.selector, self.nonfinite, self.logger = extensions, selector, nonfinite, logger
        self.dir = Path(run_dir) / "checkpoints"
        self.saved: list[tuple[int, Path]] = []  # (global step, dir) of each resumable checkpoint written

    def trained_modules(self) -> torch.nn.Module:
        """The model and the extensions with parameters, under one name space for the optimizer state."""
        return torch.nn.ModuleDict({"model": self.model, "aux": torch.nn.ModuleList(self.extensions.modules)})

    @property
    def last_good(self) -> Path | None:
        """The checkpoint a diverged run names: the newest saved before its first non-finite step (weights after a
        skipped step are finite but already on the way out; the rule is the step, not the values)."""
        first = self.nonfinite.first
        good = [p for step, p in self.saved if first is None or step < first]
        return good[-1] if good else None

    # -- saving -------------------------------------------------------------------------------------
    def save(self, path: Path, state: dict, progress: Progress, optimizer=None, scheduler=None) -> None:
        """Every process helps gather what FSDP shards; rank 0 writes, the others wait. Weights that are not
        all finite are never saved (the last good checkpoint stays the newest)."""
        best = is_best_dir(path)
        if not best:  # a resumable checkpoint records the best so far and the completed stages' summaries
            state = {**state, **self.selector.state(), "history": progress.history}
        if not self._weights_finite():
            raise NonFiniteError(f"non-finite weights at step {progress.global_step}, not saved to {path}; last "
                                 f"good checkpoint: {self.last_good or 'none yet'}. Lower trainer.lr or check the data")
        weights = gathered_state_dict(self.model) if is_sharded(self.model) else None
        optim = optimizer_state(self.trained_modules(), optimizer) if optimizer is not None else None
        rng = self._rng_states()
        ext_states = self.extensions.state_dict()
        if self.runtime.is_main:
            save_checkpoint(self.model, self.tokenizer, path, state, optim, scheduler, weights=weights, rng=rng,
                            extensions=ext_states)
            if path.name.startswith("step-"):
                publish_step(path.parent, path, self.cfg.keep_checkpoints, protect=self.last_good)
            if not best:  # only now: the best this checkpoint refers to stays on disk until then
                self.selector.prune()
        self.runtime.barrier()
        if not best:
            self.saved.append((progress.global_step, path))

    def _weights_finite(self) -> bool:
        local = all(bool(torch.isfinite(p.detach().to_local() if hasattr(p, "to_local") else p.detach()).all())
                    for p in self.model.parameters())
        return not self.runtime.any_rank(not local)

    def _rng_states(self) -> dict:
        """Every rank's random-number states (rank 0 gets the list), so a resume draws the same dropout."""
        mine = capture_rng()
        if not self.runtime.dist.enabled:
            return {"ranks": [mine]}
        gathered: list = [None] * self.runtime.dist.world_size
        torch.distributed.all_gather_object(gathered, mine)
        return {"ranks": gathered}

    # -- resuming -----------------------------------------------------------------------------------
    def start_point(self, progress: Progress) -> ResumePoint | None:
        """Where fit starts, by trainer.resume: `auto` (default) continues an unfinished run found in the run dir
        (so a rerun of the same command, or a requeued job, resumes) and starts from the beginning when there is
        none; `true` the same, with a warning when there is nothing to resume; `false` starts from the beginning
        and refuses a run dir that holds checkpoints (it would train over them). A fresh start truncates
        metrics.jsonl and sets unusable checkpoints aside in checkpoints.unusable/."""
        mode, ckpts = resume_mode(self.cfg), self.dir
        point = None
        if mode == "false":
            if has_checkpoints(ckpts):
                raise UserError(f"{ckpts} holds checkpoints of an earlier run and trainer.resume=false would train "
                                "over them: trainer.resume=auto continues that run; to start over, delete "
                                f"{ckpts} or pick another hydra.run.dir")
        else:
            point = find_resume_point(ckpts, [s.name for s in self.cfg.stages])
        if point is not None:
            return self._restore(point, progress)
        if mode == "true":
            log.warning("trainer.resume=true but %s holds no usable checkpoint: training from the beginning", ckpts)
        if self.runtime.is_main:
            if has_checkpoints(ckpts):
                aside = ckpts.with_name("checkpoints.unusable")
                shutil.rmtree(aside, ignore_errors=True)
                ckpts.rename(aside)
                log.warning("no usable checkpoint in %s: moved to %s; training from the beginning", ckpts, aside)
            self._truncate_log(0)  # an earlier attempt's rows would interleave with this run's
        self.runtime.barrier()
        return None

    def _restore(self, point: ResumePoint, progress: Progress) -> ResumePoint:
        """Continue from the point: its extension states, weights, step, data position, completed stages'
        summaries and this rank's random-number states (``point.rng``, restored by the trainer where they were
        captured). An extension that measures from a stage's start (SPRI's movement) first sees the resumed
        stage's starting weights again (_replay_stage_start)."""
        self.extensions.load_state_dict(load_extension_states(point.dir))
        if point.stage_step:
            self._replay_stage_start(point)
        load_weights(self.model, point.dir)
        progress.global_step, progress.epoch, progress.batch_in_epoch = (point.global_step, point.epoch,
                                                                         point.batch_in_epoch)
        progress.history = list(point.history)
        point.rng = load_rng(point.dir, self.runtime.dist.rank, self.runtime.dist.world_size)
        self._truncate_log(progress.global_step)  # the steps about to be replayed are logged again
        log.info("resuming at stage %d step %d (global step %d) from %s", point.stage_index + 1, point.stage_step,
                 progress.global_step, point.dir)
        return point

    def _replay_stage_start(self, point: ResumePoint) -> None:
        """Mid-stage resume: call the extensions' stage_start on the weights the stage began with (the model as
        built, for the first stage; the previous stage's checkpoint otherwise), as the interrupted run did."""
        if not self.extensions.hooked_stage_start:
            return
        idx = point.stage_index
        if idx > 0:
            load_weights(self.model, self.dir / self.cfg.stages[idx - 1].name)
        self.extensions.stage_start(self.model, self.cfg.stages[idx], only_hooked=True)

    def _truncate_log(self, step: int) -> None:
        if self.logger is not None and self.runtime.is_main and hasattr(self.logger, "truncate_after"):
            self.logger.truncate_after(step)
