"""One training loop for every model and strategy; stages are data (`trainer.stages`).

Each stage selects trainable parameter groups and gets a fresh optimizer and LR schedule; a
checkpoint is written at the end of each stage (and every `save_every` steps for resuming). Which weights
the run ends with (last, best dev loss, an average) and early stopping: src/training/selection.py.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from src.data.schema import SkipLog
from src.data.text import IGNORE_INDEX
from src.models.backbone import encoder_inputs, has_audio
from src.models.router_losses import batch_token_masks
from src.models.whisper_moe import RoutingCollector
from src.training.checkpoint import (
    capture_rng,
    clear_steps,
    find_resume_point,
    has_checkpoints,
    load_extension_states,
    load_optimizer_state,
    load_rng,
    load_weights,
    optimizer_state,
    publish_step,
    restore_rng,
    save_checkpoint,
    step_dir,
)
from src.training.config import StageConfig, TrainerConfig, check_trainer_config, resume_mode
from src.training.distributed import (
    DistInfo,
    all_reduce_mean,
    all_reduce_sum,
    barrier,
    check_ranks_agree,
    clip_grad_norm,
    dist_info,
    gathered_state_dict,
    init_distributed,
    is_sharded,
    process_device,
    release_gathered,
    wrap_model,
)
from src.training.optim import build_optimizer
from src.training.param_groups import set_trainable
from src.training.selection import Selector, dev_requirement, is_best_dir
from src.training.signals import StopSignals
from src.utils.errors import NonFiniteError, Preempted, UserError
from src.utils.extension import TrainerExtension
from src.utils.malloc import tune_glibc_malloc

log = logging.getLogger(__name__)

def make_deterministic() -> None:
    """One intra-op thread and deterministic algorithms (CUDA's cuBLAS needs its workspace setting)."""
    import os

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=False)


def resolve_device(name: str) -> torch.device:
    """`auto`: this process's GPU when there is one (cuda:LOCAL_RANK under torchrun), else the CPU."""
    return process_device(name, dist_info())


@dataclass
class StepResult:
    """What one optimizer step trained on: its finite micro-batches' loss and tokens, and its last metrics."""

    loss_sum: float = 0.0  # translation loss x tokens, summed over the finite micro-batches
    tokens: int = 0
    metrics: dict = field(default_factory=dict)  # the last finite micro-batch's (empty if none was finite)
    grad_norm: torch.Tensor | float = 0.0
    bad_loss: bool = False


@dataclass
class LogWindow:
    """The steps since the last log line: their loss and tokens, and the last finite metrics among them."""

    loss: float = 0.0
    tokens: int = 0
    metrics: dict = field(default_factory=dict)
    t0: float = field(default_factory=time.perf_counter)
    last_rate: float = 0.0

    def add(self, result: StepResult) -> None:
        self.loss += result.loss_sum
        self.tokens += result.tokens
        if result.metrics:
            self.metrics = result.metrics


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over non-ignored label tokens, and their count."""
    n = int((labels != IGNORE_INDEX).sum())
    loss = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX
    )
    return loss, n


# Training extensions (router regularisers, distillation, CTC, SD-MoE, SPRI's residual spectrum) implement
# src/utils/extension.py's TrainerExtension: its hooks are the only way they plug into this loop.



def _checked_extensions(extensions: list | None) -> list[TrainerExtension]:
    for ext in extensions or []:
        if not isinstance(ext, TrainerExtension):
            raise TypeError(f"{type(ext).__name__} is not a TrainerExtension (src/utils/extension.py)")
    return list(extensions or [])

class Trainer:
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
        self.cfg = cfg
        self.model = model
        self.tokenizer = tokenizer
        self.run_dir = Path(run_dir)
        self.train_loader = train_loader
        self.dev_loader = dev_loader
        self.logger = logger
        if dev_loader is None and (needs := dev_requirement(cfg)):
            raise UserError(f"{needs} needs a dev split, and this run has no dev loader")
        self.skips = skips if skips is not None else SkipLog()
        self.extensions = _checked_extensions(extensions)
        self._set_up_processes(distributed)
        self.routing = RoutingCollector(model)  # the MoE blocks' Routing records of each training forward
        self.engine: torch.nn.Module = model  # what a step calls: the model, compiled and/or DDP/FSDP-wrapped
        self.dtype = self._autocast_dtype()
        self.stop = StopSignals()  # SIGTERM / SIGINT / SIGUSR2 during fit: finish the step, save, stop
        self.selector = Selector(cfg, self.run_dir / "checkpoints", self.dist.is_main)
        self.selection: dict | None = None  # after fit: the rule, its label, the step and checkpoint selected
        self._start_progress()

    def _start_progress(self) -> None:
        """Where the run stands (a resume overwrites these from its checkpoint)."""
        self.global_step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.history: list[dict] = []
        self.nonfinite_steps = 0
        self.first_nonfinite: int | None = None  # the global step (1-based) of the run's first skipped step
        self.saved: list[tuple[int, Path]] = []  # (global step, dir) of each resumable checkpoint written
        self._rng_to_restore: dict | None = None  # a mid-stage resume restores it just before the step loop
        self._dev_seen: tuple[int, float | None] | None = None  # (global step, dev loss) of the last evaluation

    def _fused_optimizer(self) -> bool:
        """AdamW's fused kernel: on CUDA, and on the CPU (3.7x faster than the per-tensor loop on the toy model's
        parameters, ~5% of a toy step; it rounds differently, at ~3e-8 relative) except for CPU-sharded FSDP."""
        return self.device.type == "cuda" or (self.device.type == "cpu" and not is_sharded(self.model))

    def _set_up_processes(self, distributed: bool) -> None:
        """Process group (distributed=False: a single-process job even under torchrun, e.g. rank 0 pretraining the
        toy model), device, determinism and the CPU allocator."""
        cfg = self.cfg
        self.dist = init_distributed(cfg.device) if distributed else DistInfo(local_rank=dist_info().local_rank)
        self.device = resolve_device(cfg.device)
        if cfg.deterministic:
            make_deterministic()
        if cfg.tune_cpu_malloc and self.device.type == "cpu":
            tune_glibc_malloc()
        if self.device.type == "cpu":
            log.info("device: cpu, %d thread(s)", torch.get_num_threads())

    def _autocast_dtype(self) -> torch.dtype | None:
        p = self.cfg.precision
        if p == "auto":
            return torch.bfloat16 if self.device.type == "cuda" and torch.cuda.is_bf16_supported() else None
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[p]

    def _autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    # -- batches ----------------------------------------------------------------------------------
    def _account(self, batch: dict) -> bool:
        """Count the batch's skipped clips; False when nothing usable is left."""
        for reason, ex_id, detail in batch.get("skipped", []):
            self.skips.skip(reason, ex_id, detail)
        return has_audio(batch)

    def _prepared(self, batch: dict) -> contextlib.ExitStack:
        """Extensions' per-batch contexts (`before_step`), kept open through the backward pass: gradient
        checkpointing re-runs the forward there. (The MoE routing needs none: it is data, src/models/whisper_moe.py.)"""
        stack = contextlib.ExitStack()
        for ext in self.extensions:
            stack.enter_context(ext.before_step(self.model, batch, self.global_step))
        return stack

    def _outputs(self, batch: dict):
        """The one model call of training and dev evaluation (teacher-forced)."""
        return self.engine(
            **encoder_inputs(batch, self.device),
            decoder_input_ids=batch["decoder_input_ids"].to(self.device),
            decoder_attention_mask=batch["decoder_attention_mask"].to(self.device),
        )

    def _forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        enc, dec = batch_token_masks(batch, self.device) if self.routing.needs_masks else (None, None)
        with self._autocast(), self.routing.collect({"encoder": enc, "decoder": dec}) as routing:
            out = self._outputs(batch)
            labels = batch["labels"].to(self.device)
            loss, n_tokens = token_loss(out.logits, labels)
            metrics = {"loss/translation": loss.detach(), "tokens": n_tokens}
            total = loss
            for ext in self.extensions:
                for name, value in ext.loss(self.model, batch, out, routing).items():
                    total = total + value
                    metrics[f"loss/{name}"] = value.detach()
        return total, metrics

    def _batches(self):
        """Endless batches; continues exactly at (epoch, batch_in_epoch) after a resume."""
        while True:
            skip = self.batch_in_epoch
            sampler = getattr(self.train_loader, "batch_sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(self.epoch, start=skip)
                skip = 0
            yielded = 0
            for i, batch in enumerate(self.train_loader):
                if i < skip:
                    continue
                self.batch_in_epoch += 1
                yielded += 1
                if self._account(batch):
                    yield batch
            if yielded == 0 and self.batch_in_epoch == 0:
                raise UserError("the training data yields no batches; check the data split and data.loader")
            self.epoch += 1
            self.batch_in_epoch = 0

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
            if not self._account(batch):
                continue
            with self._autocast():
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
        for ext in self.extensions:
            if isinstance(ext, torch.nn.Module):
                ext.to(self.device)
        if self.cfg.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self.model.config.use_cache = False
        resume = self._start_point()
        self.selector.start(resume)
        if resume is not None and resume["stage_step"] == 0 and self._rng_to_restore is not None:
            restore_rng(self._rng_to_restore)  # at a stage boundary: before the next stage's set-up, as it ran
            self._rng_to_restore = None
        batches = self._batches()
        with self.stop:
            for idx, stage in enumerate(self.cfg.stages):
                if resume is not None and idx < resume["stage_index"]:
                    log.info("stage %s already complete (resume)", stage.name)
                    continue
                start = resume["stage_step"] if resume is not None and idx == resume["stage_index"] else 0
                self.history.append(self._run_stage(idx, stage, batches, start, resume if start else None))
                self._end_stage(idx, stage)
                resume = None
        self.engine = self.model
        self._select()
        if self.dist.enabled and not is_sharded(self.model):  # FSDP keeps one (sharded) copy: nothing to compare
            check_ranks_agree(self.model, self.device)
        return self.history

    def _end_stage(self, idx: int, stage: StageConfig) -> None:
        """The stage's checkpoint, which supersedes its mid-stage ones (after the last stage's are averaged)."""
        done_dir = self.run_dir / "checkpoints" / stage.name
        self._save(done_dir, {"stage": stage.name, "stage_index": idx, "stage_step": None, "complete": True,
                              "global_step": self.global_step, **self._data_position()})
        if self.dist.is_main:
            if idx == len(self.cfg.stages) - 1 and self.selector.averaging:
                self.selector.average(self.model, self.tokenizer, done_dir, self.global_step)
            clear_steps(self.run_dir / "checkpoints")
        if self.dist.enabled:
            barrier()

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

    def _all_ranks(self, flag: bool) -> bool:
        """True on every process when ``flag`` holds on any of them (so all take the same branch)."""
        if not self.dist.enabled:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        all_reduce_sum([t])
        return bool(t.item() > 0)

    def _weights_finite(self) -> bool:
        local = all(bool(torch.isfinite(p.detach().to_local() if hasattr(p, "to_local") else p.detach()).all())
                    for p in self.model.parameters())
        return not self._all_ranks(not local)

    def _skip_nonfinite(self, stage: StageConfig, step: int, total: int, what: str) -> None:
        """Count a skipped step; stop past trainer.max_nonfinite_steps in the run, or past
        trainer.max_nonfinite_fraction of the stage's steps (a run that skips most of its steps has not trained)."""
        self.nonfinite_steps += 1
        self.stage_nonfinite += 1
        if self.first_nonfinite is None:
            self.first_nonfinite = self.global_step + 1
        where = f"stage {stage.name} step {step + 1}"
        log.warning("%s: non-finite %s, step skipped (%d so far; trainer.max_nonfinite_steps=%d)", where, what,
                    self.nonfinite_steps, self.cfg.max_nonfinite_steps)
        over = (f"more than trainer.max_nonfinite_steps={self.cfg.max_nonfinite_steps}"
                if self.nonfinite_steps > self.cfg.max_nonfinite_steps else
                f"more than trainer.max_nonfinite_fraction={self.cfg.max_nonfinite_fraction:g} of the stage's {total}"
                if self.stage_nonfinite > self.cfg.max_nonfinite_fraction * total else None)
        if over:
            raise NonFiniteError(
                f"{where}: {self.stage_nonfinite} non-finite steps in stage {stage.name} ({self.nonfinite_steps} in "
                f"the run; {over}); last good checkpoint: {self.last_good or 'none yet'}. "
                "Lower trainer.lr or check the data")

    def _save(self, path: Path, state: dict, optimizer=None, scheduler=None) -> None:
        """Every process helps gather what FSDP shards; rank 0 writes, the others wait. Weights that are not
        all finite are never saved (the last good checkpoint stays the newest)."""
        best = is_best_dir(path)
        if not best:  # a resumable checkpoint records the best so far and the completed stages' summaries
            state = {**state, **self.selector.state(), "history": self.history}
        if not self._weights_finite():
            raise NonFiniteError(f"non-finite weights at step {self.global_step}, not saved to {path}; last good "
                                 f"checkpoint: {self.last_good or 'none yet'}. Lower trainer.lr or check the data")
        weights = gathered_state_dict(self.model) if is_sharded(self.model) else None
        optim = optimizer_state(self._trained_modules(), optimizer) if optimizer is not None else None
        rng = self._rng_states()
        ext_states = {key: st for key, ext in self._extension_keys() if (st := ext.state_dict())}
        if self.dist.is_main:
            save_checkpoint(self.model, self.tokenizer, path, state, optim, scheduler, weights=weights, rng=rng,
                            extensions=ext_states)
            if path.name.startswith("step-"):
                publish_step(path.parent, path, self.cfg.keep_checkpoints, protect=self.last_good)
            if not best:  # only now: the best this checkpoint refers to stays on disk until then
                self.selector.prune()
        if self.dist.enabled:
            barrier()
        if not best:
            self.saved.append((self.global_step, path))

    @property
    def last_good(self) -> Path | None:
        """The checkpoint a diverged run names: the newest saved before its first non-finite step (weights after a
        skipped step are finite but already on the way out; the rule is the step, not the values)."""
        good = [p for step, p in self.saved if self.first_nonfinite is None or step < self.first_nonfinite]
        return good[-1] if good else None

    def _rng_states(self) -> dict:
        """Every rank's random-number states (rank 0 gets the list), so a resume draws the same dropout."""
        mine = capture_rng()
        if not self.dist.enabled:
            return {"ranks": [mine]}
        gathered: list = [None] * self.dist.world_size
        torch.distributed.all_gather_object(gathered, mine)
        return {"ranks": gathered}

    def _trained_modules(self) -> torch.nn.Module:
        """The model and the extensions with parameters, under one name space for the optimizer state."""
        aux = [ext for ext in self.extensions if isinstance(ext, torch.nn.Module)]
        return torch.nn.ModuleDict({"model": self.model, "aux": torch.nn.ModuleList(aux)})

    def _wrap(self) -> None:
        """Compile and/or wrap for several processes; DDP is rebuilt per stage (its parameter set changes),
        FSDP shards once, in place."""
        self.engine = wrap_model(self.model, self.cfg.parallel, self.device, distributed=self.dist.enabled,
                                 compile_backend=self.cfg.compile_backend if self.cfg.compile else None,
                                 param_dtype=self.dtype)

    def _run_stage(self, idx: int, stage: StageConfig, batches, start: int, resume: dict | None) -> dict:
        """Train one stage from its step ``start``: set up, then step, log, evaluate and save until its end."""
        counts, params, optimizer, scheduler = self._stage_setup(idx, stage, resume)
        total = self.stage_steps(stage)
        # tokens / seconds: the target tokens trained on (all processes) and the wall time of this stage's
        # step loop. A resumed stage counts only the steps this process ran, not those before the checkpoint.
        summary = {"stage": stage.name, "steps": total, "trainable": counts["trainable"], "losses": [],
                   "tokens": 0, "seconds": None}
        window, stage_t0 = LogWindow(), time.perf_counter()
        self.stage_nonfinite = 0
        show = self.cfg.progress and self.dist.is_main
        bar = tqdm(range(start, total), desc=f"stage {stage.name}", disable=not show, initial=start, total=total,
                   dynamic_ncols=True)
        for step in bar:
            result = self._train_step(stage, step, total, batches, params, optimizer, scheduler)
            window.add(result)
            summary["tokens"] += result.tokens
            last = step + 1 == total
            if (step + 1) % self.cfg.log_every == 0 or last:
                avg = self._log_window(stage, window, result, scheduler)
                summary["losses"].append((self.global_step, avg))
                bar.set_postfix(loss=f"{avg:.3f}", tok_s=f"{window.last_rate:.0f}")
                window = LogWindow()
            if self._eval_point(idx, stage, last):  # trainer.patience ran out (last stage only)
                summary["steps"] = step + 1
                break
            saving = bool(self.cfg.save_every) and self.global_step % self.cfg.save_every == 0 and not last
            stopping = self._all_ranks(self.stop.received is not None)
            if saving or stopping:
                self._save(step_dir(self.run_dir / "checkpoints", self.global_step),
                           {"stage": stage.name, "stage_index": idx, "stage_step": step + 1,
                            "global_step": self.global_step, **self._data_position()}, optimizer, scheduler)
            if stopping:
                bar.close()
                self._preempted()
        bar.close()
        return self._stage_summary(idx, stage, summary, stage_t0)

    def _stage_setup(self, idx: int, stage: StageConfig, resume: dict | None):
        """Trainable groups, extensions, the wrapper, and a fresh optimizer (restored on resume) for a stage."""
        counts = set_trainable(self.model, stage.trainable, self.cfg.frozen)
        for ext in self.extensions:
            ext.stage_start(self.model, stage)
        self._wrap()
        log.info("stage %d '%s': training %s of %s parameters (%s)", idx + 1, stage.name,
                 f"{counts['trainable']:,}", f"{counts['total']:,}",
                 ", ".join(f"{g}={counts[g]:,}" for g in stage.trainable))
        params = [p for p in self.model.parameters() if p.requires_grad] + self._extension_params()  # clipped
        optimizer, scheduler = build_optimizer(
            [self.model, *self._extension_modules()], stage.lr, self.cfg.weight_decay, self.cfg.beta2,
            stage.schedule, stage.warmup_steps, self.stage_steps(stage), fused=self._fused_optimizer())
        if resume is not None:
            load_optimizer_state(resume["dir"], self._trained_modules(), optimizer, scheduler, is_sharded(self.model))
            if self._rng_to_restore is not None:
                restore_rng(self._rng_to_restore)
                self._rng_to_restore = None
        self.model.train()
        return counts, params, optimizer, scheduler

    def _train_step(self, stage: StageConfig, step: int, total: int, batches, params, optimizer,
                    scheduler) -> StepResult:
        """One optimizer step: accumulate micro-batches, reduce, clip, and step, or skip a non-finite step.

        A non-finite micro-batch is left out of everything (no backward, no loss, no tokens, no metrics):
        the metrics a step reports are its last finite micro-batch's.
        """
        optimizer.zero_grad(set_to_none=True)
        result = StepResult()
        for _ in range(self.cfg.grad_accum):
            batch = next(batches)
            with self._prepared(batch):
                loss, metrics = self._forward(batch)
                if self._all_ranks(not bool(torch.isfinite(loss.detach()))):  # every rank skips backward
                    result.bad_loss = True
                    continue
                (loss / self.cfg.grad_accum).backward()
            result.loss_sum += float(metrics["loss/translation"]) * metrics["tokens"]
            result.tokens += metrics["tokens"]
            result.metrics = metrics
        self._reduce_extension_grads()
        for ext in self.extensions:
            ext.after_backward(self.model, self.global_step)
        result.grad_norm = clip_grad_norm(params, self.cfg.clip_norm or None)
        if result.bad_loss or not bool(torch.isfinite(result.grad_norm)):  # the same on every rank
            optimizer.zero_grad(set_to_none=True)
            self._skip_nonfinite(stage, step, total, "loss" if result.bad_loss else "gradient norm")
        else:
            optimizer.step()
            for ext in self.extensions:
                ext.after_step(self.model, self.global_step)
        scheduler.step()
        self.global_step += 1
        return result

    def _reduce_extension_grads(self) -> None:
        """Several processes: the wrapper syncs the model's gradients; the auxiliary heads' are ours."""
        if not self.dist.enabled:
            return
        aux_params = self._extension_params()
        for p in aux_params:  # every rank reduces the same list, used this step or not
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        all_reduce_mean([p.grad for p in aux_params])

    def _log_window(self, stage: StageConfig, window: LogWindow, result: StepResult, scheduler) -> float:
        """Log the window's mean loss and throughput (every process's tokens) and the step's metrics."""
        elapsed = time.perf_counter() - window.t0
        if self.dist.enabled:  # every process's tokens: the global loss and throughput
            totals = torch.tensor([window.loss, window.tokens], dtype=torch.float64, device=self.device)
            all_reduce_sum([totals])
            window.loss, window.tokens = totals[0].item(), int(totals[1].item())
        avg = window.loss / max(1, window.tokens)
        window.last_rate = window.tokens / max(elapsed, 1e-9)
        record = {"stage": stage.name, "loss": avg, "lr": scheduler.get_last_lr()[0],
                  "grad_norm": float(result.grad_norm), "tokens_per_s": window.last_rate,
                  "skipped": self.skips.total, "nonfinite_steps": self.nonfinite_steps,
                  **{k: float(v) for k, v in window.metrics.items()
                     if k.startswith("loss/") and k != "loss/translation"}}
        for ext in self.extensions:
            record.update(ext.metrics(self.model))
        if self.logger is not None and self.dist.is_main:
            self.logger.log_metrics(record, self.global_step)
        return avg

    def _stage_summary(self, idx: int, stage: StageConfig, summary: dict, stage_t0: float) -> dict:
        summary["seconds"] = time.perf_counter() - stage_t0
        if self.dist.enabled:  # every process's tokens, like the window counters
            stage_tokens = torch.tensor([summary["tokens"]], dtype=torch.float64, device=self.device)
            all_reduce_sum([stage_tokens])
            summary["tokens"] = int(stage_tokens.item())
        summary["dev_loss"] = self._dev_point(idx, stage)
        for ext in self.extensions:
            summary.update(ext.stage_end(self.model, stage))
        return summary

    def _extension_keys(self) -> list[tuple[str, TrainerExtension]]:
        """A stable key per extension for its saved state: position and class name."""
        return [(f"{i}:{type(ext).__name__}", ext) for i, ext in enumerate(self.extensions)]

    def _extension_modules(self) -> list[torch.nn.Module]:
        """The extensions that are modules (e.g. the CTC head): their parameters train with the model's."""
        return [ext for ext in self.extensions if isinstance(ext, torch.nn.Module)]

    def _extension_params(self) -> list[torch.nn.Parameter]:
        return [p for ext in self._extension_modules() for p in ext.parameters()]

    def _data_position(self) -> dict:
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}

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
        if dev is not None and self.dist.enabled:  # one value on every process, so all decide alike
            t = torch.tensor([dev], dtype=torch.float64, device=self.device)
            all_reduce_mean([t])
            dev = t.item()
        self._dev_seen = (self.global_step, dev)
        if self.selector.observe(dev, self.global_step, idx):
            self._save(self.selector.best_dir(self.global_step),
                       {"global_step": self.global_step, "dev_loss": dev, "stage": stage.name})
        return dev

    def _log_dev(self, stage: StageConfig) -> float | None:
        dev = self.dev_loss()
        if dev is not None:
            log.info("stage %s step %d: dev loss %.4f", stage.name, self.global_step, dev)
            if self.logger is not None and self.dist.is_main:
                self.logger.log_metrics({"stage": stage.name, "dev_loss": dev}, self.global_step)
        return dev

    def _preempted(self) -> None:
        """After a stop signal's checkpoint: stop, handing the entry point the scheduler's own handler for the
        signal (submitit requeues the job; rank 0 only)."""
        signum = self.stop.received or 15
        saved = str(self.saved[-1][1]) if self.saved else None
        raise Preempted(signum, self.global_step, saved, then=self.stop.replaced() if self.dist.is_main else None)

    def _start_point(self) -> dict | None:
        """Where fit starts, by trainer.resume: `auto` (default) continues an unfinished run found in the run dir
        (so a rerun of the same command, or a requeued job, resumes) and starts from the beginning when there is
        none; `true` the same, with a warning when there is nothing to resume; `false` starts from the beginning
        and refuses a run dir that holds checkpoints (it would train over them). A fresh start truncates
        metrics.jsonl and sets unusable checkpoints aside in checkpoints.unusable/."""
        mode, ckpts = resume_mode(self.cfg), self.run_dir / "checkpoints"
        point = None
        if mode == "false":
            if has_checkpoints(ckpts):
                raise UserError(f"{ckpts} holds checkpoints of an earlier run and trainer.resume=false would train "
                                "over them: trainer.resume=auto continues that run; to start over, delete "
                                f"{ckpts} or pick another hydra.run.dir")
        else:
            point = find_resume_point(ckpts, [s.name for s in self.cfg.stages])
        if point is not None:
            return self._resume_from(point)
        if mode == "true":
            log.warning("trainer.resume=true but %s holds no usable checkpoint: training from the beginning", ckpts)
        if self.dist.is_main:
            if has_checkpoints(ckpts):
                aside = ckpts.with_name("checkpoints.unusable")
                shutil.rmtree(aside, ignore_errors=True)
                ckpts.rename(aside)
                log.warning("no usable checkpoint in %s: moved to %s; training from the beginning", ckpts, aside)
            if self.logger is not None and hasattr(self.logger, "truncate_after"):
                self.logger.truncate_after(0)  # an earlier attempt's rows would interleave with this run's
        if self.dist.enabled:
            barrier()
        return None

    def _resume_from(self, point: dict) -> dict:
        """Continue from a checkpoint find_resume_point chose: its extension states, weights, step, data position,
        RNG and completed stages' summaries. An extension that measures from a stage's start (SPRI's movement)
        first sees the resumed stage's starting weights again (_replay_stage_start)."""
        saved = load_extension_states(point["dir"])
        for key, ext in self._extension_keys():
            if key in saved:
                ext.load_state_dict(saved[key])
        if point["stage_step"]:
            self._replay_stage_start(point)
        load_weights(self.model, point["dir"])
        self.global_step = point["global_step"]
        self.epoch = point.get("epoch", 0)
        self.batch_in_epoch = point.get("batch_in_epoch", 0)
        self.history = list(point.get("history", []))
        self._rng_to_restore = load_rng(point["dir"], self.dist.rank, self.dist.world_size)
        if self.logger is not None and self.dist.is_main and hasattr(self.logger, "truncate_after"):
            self.logger.truncate_after(self.global_step)  # the steps about to be replayed are logged again
        log.info("resuming at stage %d step %d (global step %d) from %s",
                 point["stage_index"] + 1, point["stage_step"], self.global_step, point["dir"])
        return point

    def _replay_stage_start(self, point: dict) -> None:
        """Mid-stage resume: call the extensions' stage_start on the weights the stage began with (the model as
        built, for the first stage; the previous stage's checkpoint otherwise), as the interrupted run did."""
        hooked = [e for e in self.extensions if type(e).stage_start is not TrainerExtension.stage_start]
        if not hooked:
            return
        idx = point["stage_index"]
        if idx > 0:
            load_weights(self.model, self.run_dir / "checkpoints" / self.cfg.stages[idx - 1].name)
        for ext in hooked:
            ext.stage_start(self.model, self.cfg.stages[idx])
