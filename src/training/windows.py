"""The log window: the steps since the last log line, summed over every process into one record (mean loss,
throughput, the step's metrics), so rank 0 logs the global figures."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from src.training.runtime import Runtime
from src.training.step import StepResult


@dataclass
class LogWindow:
    loss: float = 0.0  # translation loss x tokens
    tokens: int = 0
    metrics: dict = field(default_factory=dict)  # the last finite metrics among the window's steps
    t0: float = field(default_factory=time.perf_counter)

    def state(self) -> dict:
        """What a mid-window checkpoint records, so the resumed run's next log line averages the whole window."""
        return {"loss": self.loss, "tokens": self.tokens}

    def add(self, result: StepResult) -> None:
        self.loss += result.loss_sum
        self.tokens += result.tokens
        if result.metrics:
            self.metrics = result.metrics

    def record(self, runtime: Runtime, result: StepResult, stage: str, lr: float, counters: dict) -> dict:
        """The window's log record: every process's mean loss and throughput, the last step's grad norm, the run's
        ``counters`` (skipped clips, skipped steps) and the window's last extra loss terms."""
        elapsed = time.perf_counter() - self.t0
        loss, tokens = runtime.sum(self.loss, self.tokens)
        tokens = int(tokens)
        return {"stage": stage, "loss": loss / max(1, tokens), "lr": lr, "grad_norm": float(result.grad_norm),
                "tokens_per_s": tokens / max(elapsed, 1e-9), **counters,
                **{k: float(v) for k, v in self.metrics.items() if k.startswith("loss/") and k != "loss/translation"}}
