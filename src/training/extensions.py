"""The trainer's extensions as one object: each hook of src/utils/extension.py fanned out in order, the
parameters of the extensions that are modules, their saved states under stable keys, and the reduction of
those parameters' gradients across processes (the model's own are synced by its wrapper)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from src.training.runtime import Runtime
from src.utils.extension import TrainerExtension


class Extensions:
    def __init__(self, extensions: list[TrainerExtension] | None = None) -> None:
        for ext in extensions or []:
            if not isinstance(ext, TrainerExtension):
                raise TypeError(f"{type(ext).__name__} is not a TrainerExtension (src/utils/extension.py)")
        self.items: list[TrainerExtension] = list(extensions or [])

    def __getitem__(self, i: int) -> TrainerExtension:
        return self.items[i]

    # -- parameters ---------------------------------------------------------------------------------
    @property
    def modules(self) -> list[torch.nn.Module]:
        """The extensions that are modules (e.g. the CTC head): their parameters train with the model's."""
        return [ext for ext in self.items if isinstance(ext, torch.nn.Module)]

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return [p for m in self.modules for p in m.parameters()]

    def to(self, device: torch.device) -> None:
        for m in self.modules:
            m.to(device)

    def reduce_grads(self, runtime: Runtime) -> None:
        """Several processes: every rank reduces the same list of gradients, used this step or not."""
        if not runtime.dist.enabled:
            return
        params = self.params
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        runtime.reduce_mean([p.grad for p in params])

    # -- hooks --------------------------------------------------------------------------------------
    def before_step(self, model: torch.nn.Module, batch: dict, step: int) -> contextlib.ExitStack:
        """Every extension's per-batch context, entered in order and kept open through the backward pass
        (gradient checkpointing re-runs the forward there)."""
        stack = contextlib.ExitStack()
        for ext in self.items:
            stack.enter_context(ext.before_step(model, batch, step))
        return stack

    def losses(self, model: torch.nn.Module, batch: dict, out: Any, routing: dict) -> list[tuple[str, torch.Tensor]]:
        """Every named loss term, in extension order (a name two extensions share is added twice)."""
        return [item for ext in self.items for item in ext.loss(model, batch, out, routing).items()]

    def after_backward(self, model: torch.nn.Module, step: int) -> None:
        for ext in self.items:
            ext.after_backward(model, step)

    def after_step(self, model: torch.nn.Module, step: int) -> None:
        for ext in self.items:
            ext.after_step(model, step)

    def stage_start(self, model: torch.nn.Module, stage: Any, only_hooked: bool = False) -> None:
        """Tell the extensions a stage begins; ``only_hooked``: only those that override the hook."""
        for ext in self.hooked_stage_start if only_hooked else self.items:
            ext.stage_start(model, stage)

    @property
    def hooked_stage_start(self) -> list[TrainerExtension]:
        """The extensions that measure from a stage's start (a mid-stage resume replays their hook)."""
        return [e for e in self.items if type(e).stage_start is not TrainerExtension.stage_start]

    def stage_end(self, model: torch.nn.Module, stage: Any) -> dict:
        out: dict = {}
        for ext in self.items:
            out.update(ext.stage_end(model, stage))
        return out

    def metrics(self, model: torch.nn.Module) -> dict[str, float]:
        out: dict[str, float] = {}
        for ext in self.items:
            out.update(ext.metrics(model))
        return out

    # -- state --------------------------------------------------------------------------------------
    def _keyed(self) -> list[tuple[str, TrainerExtension]]:
        """A stable key per extension for its saved state: position and class name."""
        return [(f"{i}:{type(ext).__name__}", ext) for i, ext in enumerate(self.items)]

    def state_dict(self) -> dict[str, dict]:
        return {key: st for key, ext in self._keyed() if (st := ext.state_dict())}

    def load_state_dict(self, saved: dict[str, dict]) -> None:
        for key, ext in self._keyed():
            if key in saved:
                ext.load_state_dict(saved[key])
