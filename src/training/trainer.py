"""One training loop for every model and strategy; stages are data (`trainer.stages`).

The loop: stages (each selects trainable parameter groups and gets a fresh optimizer and LR schedule), steps
(micro-batches accumulated, then one optimizer step: training/step.py), log windows (training/windows.py),
dev evaluations and the weights selected at the end (training/selection.py). Its parts: the process's runtime
(training/runtime.py), the extensions' hooks (training/extensions.py), checkpoint and resume state
(training/resume.py, files: training/checkpoint.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from src.data.schema import SkipLog
from src.data.text import IGNORE_INDEX
from src.models.backbone import encoder_inputs, has_audio
from src.models.router_losses import batch_token_masks
from src.models.whisper_moe import RoutingCollector
from src.training.checkpoint import ResumePoint, clear_steps, load_optimizer_state, load_weights, restore_rng, step_dir
from src.training.config import StageConfig, TrainerConfig, check_trainer_config
from src.training.distributed import check_ranks_agree, is_sharded, release_gathered, wrap_model
from src.training.extensions import Extensions
from src.training.optim import build_optimizer
from src.training.param_groups import set_trainable
from src.training.resume import Checkpointer, Progress
from src.training.runtime import Runtime
from src.training.selection import Selector, dev_requirement
from src.training.signals import StopSignals
from src.training.step import NonFinitePolicy, StepResult, optimizer_step
from src.training.windows import LogWindow
from src.utils.errors import Preempted, UserError
from src.utils.extension import TrainerExtension

log = logging.getLogger(__name__)


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over non-ignored label tokens, and their count."""
    n = int((labels != IGNORE_INDEX).sum())
    loss = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX
    )
    return loss, n


class Trainer:
    """Trains ``model`` through ``cfg.stages`` in ``run_dir`` (checkpoints, selection); `fit` returns the stages'
    summaries and leaves the selected weights in the model."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        cfg: TrainerConfig,
        run_dir: str | Path,
        train_loader: DataLoader,
        dev_loader: DataLoader | None = None,
        logger=None,
        skips: SkipLog | None = None,
        extensions: list[TrainerExtension] | None = None,
        distributed: bool = True,
    ) -> None:
        check_trainer_config(cfg)
        if dev_loader is None and (needs := dev_requirement(cfg)):
            raise UserError(f"{needs} needs a dev split, and this run has no dev loader")
        self.cfg, self.model, self.tokenizer, self.run_dir = cfg, model, tokenizer, Path(run_dir)
        self.train_loader, self.dev_loader, self.logger = train_loader, dev_loader, logger
        self.skips = skips if skips is not None else SkipLog()
        self.extensions = Extensions(extensions)
        self.runtime = Runtime.set_up(cfg, distributed)
        self.routing = RoutingCollector(model)  # the MoE blocks' Routing records of each training forward
        self.wrapped: torch.nn.Module = model  # what a step calls: the model, compiled and/or DDP/FSDP-wrapped
        self.stop = StopSignals()  # SIGTERM / SIGINT / SIGUSR2 during fit: finish the step, save, stop
        self.selector = Selector(cfg, self.run_dir / "checkpoints", self.runtime.is_main)
        self.selection: dict | None = None  # after fit: the rule, its label, the step and checkpoint selected
        self.progress = Progress()
        self.nonfinite = NonFinitePolicy(cfg.max_nonfinite_steps, cfg.max_nonfinite_fraction)
        self.checkpoints = Checkpointer(cfg, self.run_dir, self.runtime, model, tokenizer, self.extensions,
                                        self.selector, self.nonfinite, logger)
        self._dev_seen: tuple[int, float | None] | None = None  # (global step, dev loss) of the last evaluation

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def global_step(self) -> int:
        return self.progress.global_step

    # -- batches ----------------------------------------------------------------------------------
    def _count_skipped(self, batch: dict) -> bool:
        """Count the batch's skipped clips; False when nothing usable is left."""
        for reason, ex_id, detail in batch.get("skipped", []):
            self.skips.skip(reason, ex_id, detail)
        return has_audio(batch)

    def _outputs(self, batch: dict):
        """The one model call of training and dev evaluation (teacher-forced)."""
        return self.wrapped(
            **encoder_inputs(batch, self.device),
            decoder_input_ids=batch["decoder_input_ids"].to(self.device),
            decoder_attention_mask=batch["decoder_attention_mask"].to(self.device),
        )

    def _forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """The training loss (translation + the extensions' terms) and the micro-batch's metrics."""
        enc, dec = batch_token_masks(batch, self.device) if self.routing.needs_masks else (None, None)
        with self.runtime.autocast(), self.routing.collect({"encoder": enc, "decoder": dec}) as routing:
            out = self._outputs(batch)
            loss, n_tokens = token_loss(out.logits, batch["labels"].to(self.device))
            metrics = {"loss/translation": loss.detach(), "tokens": n_tokens}
            total = loss
            for name, value in self.extensions.losses(self.model, batch, out, routing):
                total = total + value
                metrics[f"loss/{name}"] = value.detach()
        return total, metrics

    def _batches(self) -> Iterator[dict]:
        """Endless batches; continues exactly at (epoch, batch_in_epoch) after a resume."""
        at = self.progress
        while True:
            skip = at.batch_in_epoch
            sampler = getattr(self.train_loader, "batch_sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(at.epoch, start=skip)
                skip = 0
            yielded = 0
            for i, batch in enumerate(self.train_loader):
                if i < skip:
                    continue
                at.batch_in_epoch += 1
                yielded += 1
                if self._count_skipped(batch):
                    yield batch
            if yielded == 0 and at.batch_in_epoch == 0:
                raise UserError("the training data yields no batches; check the data split and data.loader")
            at.epoch += 1
            at.batch_in_epoch = 0

    def stage_steps(self, stage: StageConfig) -> int:
        if stage.steps is not None:
            return int(stage.steps)
        return max(1, math.ceil(stage.epochs * len(self.train_loader) / self.cfg.grad_accum))

    # -- evaluation -------------------------------------------------------------------------------
    @torch.no_grad()
    def dev_loss(self) -> float | None:
        if self.dev_loader is None:
            return None
        was_training = self.model.training
        self.model.eval()
        total, tokens = 0.0, 0
        for i, batch in enumerate(self.dev_loader):
            if self.cfg.max_eval_batches is not None and i >= self.cfg.max_eval_batches:
                break
            if not self._count_skipped(batch):
                continue
            with self.runtime.autocast():
                out = self._outputs(batch)
            loss, n = token_loss(out.logits, batch["labels"].to(self.device))
            total += float(loss) * n
            tokens += n
        release_gathered(self.model)
        self.model.train(was_training)
        return total / tokens if tokens else None

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self) -> list[dict]:
        """Run all stages; returns one summary per stage (first/last loss, dev loss, counts)."""
        self.model.to(self.device)
        self.extensions.to(self.device)
        if self.cfg.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self.model.config.use_cache = False
        point = self.checkpoints.start_point(self.progress)
        self.selector.start(point)
        batches = self._batches()
        with self.stop:
            for idx, stage in enumerate(self.cfg.stages):
                if point is not None and idx < point.stage_index:
                    log.info("stage %s already complete (resume)", stage.name)
                    continue
                here = point if point is not None and idx == point.stage_index else None
                self.progress.history.append(self._run_stage(idx, stage, batches, here))
                self._end_stage(idx, stage)
                point = None
        self.wrapped = self.model
        self._select()
        if self.runtime.dist.enabled and not is_sharded(self.model):  # FSDP keeps one (sharded) copy
            check_ranks_agree(self.model, self.device)
        return self.progress.history

    def _end_stage(self, idx: int, stage: StageConfig) -> None:
        """The stage's checkpoint, which supersedes its mid-stage ones (after the last stage's are averaged)."""
        done_dir = self.run_dir / "checkpoints" / stage.name
        self.checkpoints.save(done_dir, {"stage": stage.name, "stage_index": idx, "stage_step": None,
                                         "complete": True, "global_step": self.global_step,
                                         **self.progress.position()}, self.progress)
        if self.runtime.is_main:
            if idx == len(self.cfg.stages) - 1 and self.selector.averaging:
                self.selector.average(self.model, self.tokenizer, done_dir, self.global_step)
            clear_steps(self.run_dir / "checkpoints")
        self.runtime.barrier()

    def _select(self) -> None:
        """Record the selection; the model in memory becomes the selected weights (an FSDP-sharded model
        stays as it is: the pipeline reloads the selected checkpoint from disk)."""
        self.selection = self.selector.result(self.run_dir / "checkpoints" / self.cfg.stages[-1].name,
                                              self.global_step)
        chosen = Path(self.selection["checkpoint"])
        if chosen.name != self.cfg.stages[-1].name and not is_sharded(self.model):
            load_weights(self.model, chosen)
        log.info("selected weights: %s, step %d (%s)", self.selection["label"], self.selection["global_step"],
                 chosen)

    def _run_stage(self, idx: int, stage: StageConfig, batches, point: ResumePoint | None) -> dict:
        """Train one stage (from the resume point's step when it is in this stage): set up, then step, log,
        evaluate and save until its end."""
        start = point.stage_step if point is not None else 0
        counts, params, optimizer, scheduler = self._stage_setup(idx, stage, point)
        total = self.stage_steps(stage)
        # tokens / seconds: the target tokens trained on (all processes) and the wall time of this stage's
        # step loop. A resumed stage counts only the steps this process ran, not those before the checkpoint.
        summary = {"stage": stage.name, "steps": total, "trainable": counts["trainable"], "losses": [],
                   "tokens": 0, "seconds": None}
        window = LogWindow(**point.window) if point is not None and point.window else LogWindow()
        stage_t0 = time.perf_counter()
        self.nonfinite.start_stage()
        bar = tqdm(range(start, total), desc=f"stage {stage.name}", disable=not (self.cfg.progress and
                   self.runtime.is_main), initial=start, total=total, dynamic_ncols=True)
        for step in bar:
            result = self._train_step(stage, step, total, batches, params, optimizer, scheduler)
            window.add(result)
            summary["tokens"] += result.tokens
            last = step + 1 == total
            if (step + 1) % self.cfg.log_every == 0 or last:
                record = self._log_window(stage, window, result, scheduler)
                summary["losses"].append((self.global_step, record["loss"]))
                bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
                window = LogWindow()
            if self._eval_point(idx, stage, last):  # trainer.patience ran out (last stage only)
                summary["steps"] = step + 1
                break
            self._save_point(idx, stage, step, last, optimizer, scheduler, window, bar)
        bar.close()
        return self._stage_summary(idx, stage, summary, stage_t0)

    def _save_point(self, idx: int, stage: StageConfig, step: int, last: bool, optimizer, scheduler,
                    window: LogWindow, bar) -> None:
        """Every trainer.save_every global steps, and when a stop signal came (then stop: Preempted)."""
        saving = bool(self.cfg.save_every) and self.global_step % self.cfg.save_every == 0 and not last
        stopping = self.runtime.any_rank(self.stop.received is not None)
        if saving or stopping:
            self.checkpoints.save(step_dir(self.run_dir / "checkpoints", self.global_step),
                                  {"stage": stage.name, "stage_index": idx, "stage_step": step + 1,
                                   "global_step": self.global_step, "window": window.state(),
                                   **self.progress.position()},
                                  self.progress, optimizer, scheduler)
        if stopping:
            bar.close()
            self._preempted()

    def _stage_setup(self, idx: int, stage: StageConfig, point: ResumePoint | None):
        """Trainable groups, extensions, the wrapper, and a fresh optimizer for a stage. A resume point restores
        the random-number states where they were captured: before the set-up at a stage boundary, after it (with
        the optimizer's state) mid-stage."""
        if point is not None and not point.stage_step and point.rng is not None:
            restore_rng(point.rng)
        counts = set_trainable(self.model, stage.trainable, self.cfg.frozen)
        self.extensions.stage_start(self.model, stage)
        self._wrap()
        log.info("stage %d '%s': training %s of %s parameters (%s)", idx + 1, stage.name,
                 f"{counts['trainable']:,}", f"{counts['total']:,}",
                 ", ".join(f"{g}={counts[g]:,}" for g in stage.trainable))
        params = [p for p in self.model.parameters() if p.requires_grad] + self.extensions.params  # clipped
        optimizer, scheduler = build_optimizer(
            [self.model, *self.extensions.modules], stage.lr, self.cfg.weight_decay, self.cfg.beta2,
            stage.schedule, stage.warmup_steps, self.stage_steps(stage),
            fused=self.runtime.fused_optimizer(self.model))
        if point is not None and point.stage_step:
            load_optimizer_state(point.dir, self.checkpoints.trained_modules(), optimizer, scheduler,
                                 is_sharded(self.model))
            if point.rng is not None:
                restore_rng(point.rng)
        self.model.train()
        return counts, params, optimizer, scheduler

    def _wrap(self) -> None:
        """Compile and/or wrap for several processes; DDP is rebuilt per stage (its parameter set changes),
        FSDP shards once, in place."""
        self.wrapped = wrap_model(self.model, self.cfg.parallel, self.device, distributed=self.runtime.dist.enabled,
                                  compile_backend=self.cfg.compile_backend if self.cfg.compile else None,
                                  param_dtype=self.runtime.dtype)

    def _train_step(self, stage: StageConfig, step: int, total: int, batches, params, optimizer,
                    scheduler) -> StepResult:
        """One optimizer step: accumulate micro-batches, then step, or skip a non-finite step.

        A non-finite micro-batch is left out of everything (no backward, no loss, no tokens, no metrics):
        the metrics a step reports are its last finite micro-batch's.
        """
        optimizer.zero_grad(set_to_none=True)
        result = StepResult()
        for _ in range(self.cfg.grad_accum):
            batch = next(batches)
            with self.extensions.before_step(self.model, batch, self.global_step):
                loss, metrics = self._forward(batch)
                if self.runtime.any_rank(not bool(torch.isfinite(loss.detach()))):  # every rank skips backward
                    result.bad_loss = True
                    continue
                (loss / self.cfg.grad_accum).backward()
            result.loss_sum += float(metrics["loss/translation"]) * metrics["tokens"]
            result.tokens += metrics["tokens"]
            result.metrics = metrics
        self.extensions.reduce_grads(self.runtime)
        self.extensions.after_backward(self.model, self.global_step)
        ok, result.grad_norm = optimizer_step(optimizer, params, self.cfg.clip_norm, result.bad_loss)
        if ok:
            self.extensions.after_step(self.model, self.global_step)
        else:
            self.nonfinite.skipped(stage.name, step, total, self.global_step,
                                   "loss" if result.bad_loss else "gradient norm", self.checkpoints.last_good)
        scheduler.step()
        self.progress.global_step += 1
        return result

    def _log_window(self, stage: StageConfig, window: LogWindow, result: StepResult, scheduler) -> dict:
        """Log the window's record (every process's loss and tokens) with the extensions' metrics."""
        record = window.record(self.runtime, result, stage.name, scheduler.get_last_lr()[0],
                               {"skipped": self.skips.total, "nonfinite_steps": self.nonfinite.run_total})
        record.update(self.extensions.metrics(self.model))
        if self.logger is not None and self.runtime.is_main:
            self.logger.log_metrics(record, self.global_step)
        return record

    def _stage_summary(self, idx: int, stage: StageConfig, summary: dict, stage_t0: float) -> dict:
        summary["seconds"] = time.perf_counter() - stage_t0
        summary["tokens"] = int(self.runtime.sum(summary["tokens"])[0])  # every process's, like the windows'
        summary["dev_loss"] = self._dev_point(idx, stage)
        summary.update(self.extensions.stage_end(self.model, stage))
        return summary

    def _eval_point(self, idx: int, stage: StageConfig, last: bool) -> bool:
        """Every trainer.eval_every global steps (the stage end evaluates anyway): the dev loss; True to stop
        early. Global steps, like save_every: every schedule evaluates and saves at the same steps."""
        if not self.cfg.eval_every or self.global_step % self.cfg.eval_every or last:
            return False
        self._dev_point(idx, stage)
        return self.selector.should_stop(self.global_step)

    def _dev_point(self, idx: int, stage: StageConfig) -> float | None:
        """The dev loss (once per step: an early stop's stage end reuses it), told to the selector, and the
        weights saved when they are the best so far (trainer.select=best_dev_loss)."""
        if self._dev_seen is not None and self._dev_seen[0] == self.global_step:
            return self._dev_seen[1]
        dev = self._log_dev(stage)
        if dev is not None:
            dev = self.runtime.mean(dev)  # one value on every process, so all decide alike
        self._dev_seen = (self.global_step, dev)
        if self.selector.observe(dev, self.global_step, idx):
            self.checkpoints.save(self.selector.best_dir(self.global_step),
                                  {"global_step": self.global_step, "dev_loss": dev, "stage": stage.name},
                                  self.progress)
        return dev

    def _log_dev(self, stage: StageConfig) -> float | None:
        dev = self.dev_loss()
        if dev is not None:
            log.info("stage %s step %d: dev loss %.4f", stage.name, self.global_step, dev)
            if self.logger is not None and self.runtime.is_main:
                self.logger.log_metrics({"stage": stage.name, "dev_loss": dev}, self.global_step)
        return dev

    def _preempted(self) -> None:
        """After a stop signal's checkpoint: stop, handing the entry point the scheduler's own handler for the
        signal (submitit requeues the job; rank 0 only)."""
        signum = self.stop.received or 15
        saved = str(self.checkpoints.saved[-1][1]) if self.checkpoints.saved else None
        raise Preempted(signum, self.global_step, saved, then=self.stop.replaced() if self.runtime.is_main else None)
