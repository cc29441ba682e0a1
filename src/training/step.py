"""The optimizer step and its non-finite policy: the step clips and updates, or skips when the loss or the
gradient norm is not finite (as Megatron-Core's optimizer returns `update_successful`); the policy counts the
skipped steps and stops a run that skips too many."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from src.training.distributed import clip_grad_norm
from src.utils.errors import NonFiniteError

log = logging.getLogger(__name__)


@dataclass
class StepResult:
    """What one optimizer step trained on: its finite micro-batches' loss and tokens, and its last metrics."""

    loss_sum: float = 0.0  # translation loss x tokens, summed over the finite micro-batches
    tokens: int = 0
    metrics: dict = field(default_factory=dict)  # the last finite micro-batch's (empty if none was finite)
    grad_norm: torch.Tensor | float = 0.0
    bad_loss: bool = False  # a micro-batch's loss was not finite (on any process)


def optimizer_step(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], clip_norm: float | None,
                   bad_loss: bool) -> tuple[bool, torch.Tensor]:
    """Clip and step; (False, grad norm) with the gradients dropped when the loss or the norm is not finite (the
    norm is all-reduced by the wrapper, so every process decides alike)."""
    grad_norm = clip_grad_norm(params, clip_norm or None)
    if bad_loss or not bool(torch.isfinite(grad_norm)):
        optimizer.zero_grad(set_to_none=True)
        return False, grad_norm
    optimizer.step()
    return True, grad_norm


class NonFinitePolicy:
    """Counts skipped steps; stops past trainer.max_nonfinite_steps in the run, or past
    trainer.max_nonfinite_fraction of a stage's steps (a run that skips most of its steps has not trained)."""

    def __init__(self, max_steps: int, max_fraction: float) -> None:
        self.max_steps, self.max_fraction = max_steps, max_fraction
        self.run_total = 0
        self.stage_total = 0
        self.first: int | None = None  # the global step (1-based) of the run's first skipped step

    def start_stage(self) -> None:
        self.stage_total = 0

    def skipped(self, stage: str, step: int, stage_steps: int, global_step: int, what: str,
                last_good: Path | None) -> None:
        """Count the skipped step (``step`` of the stage, ``global_step`` of the run, both 0-based); raise
        NonFiniteError naming ``last_good`` (the newest checkpoint saved before the run's first skipped step: every
        checkpoint so far, at the first) when a limit is passed."""
        where = f"stage {stage} step {step + 1}"
        self.run_total += 1
        self.stage_total += 1
        if self.first is None:
            self.first = global_step + 1
        log.warning(
            "%s: non-finite %s, step skipped (%d so far; trainer.max_nonfinite_steps=%d)", where, what,
            self.run_total, self.max_steps)
        over = (f"more than trainer.max_nonfinite_steps={self.max_steps}" if self.run_total > self.max_steps else
                f"more than trainer.max_nonfinite_fraction={self.max_fraction:g} of the stage's {stage_steps}"
                if self.stage_total > self.max_fraction * stage_steps else None)
        if over:
            raise NonFiniteError(
                f"{where}: {self.stage_total} non-finite steps in stage {stage} ({self.run_total} in the run; {over}); "
                f"last good checkpoint: {last_good or 'none yet'}. Lower trainer.lr or check the data")
