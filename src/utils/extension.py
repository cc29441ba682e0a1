"""The trainer's one extension protocol: a base class whose hooks are all no-ops.

It lives in utils, below models and training, so that the extensions tied to MoE internals (in models/)
and the trainer (in training/) both depend on it and not on each other.

Router regularisers and self-distillation (`MoELoss`), the gradient projections (on the base class of
models/gradient_projection.py: SPRI's `ResidualSpectrum` in spri.py, SD-MoE's `SpectralDecoupler` in sd_moe.py)
and the toy pretraining's CTC head (`CTCAuxLoss`) plug into the same loop through these hooks and nothing else;
an extension overrides what it needs. The trainer holds them as one `Extensions` (src/training/extensions.py). Per
optimizer step the trainer calls, in order:

    before_step(model, batch, step)   a context kept open through forward AND backward (gradient
                                      checkpointing re-runs the forward inside backward), per micro-batch
    loss(model, batch, out, routing)  named loss terms added to the training loss, per micro-batch;
                                      `routing` maps each MoE layer to its block's Routing record
    after_backward(model, step)       gradients final (synced, not yet clipped): gradient surgery
    after_step(model, step)           after optimizer.step(): update surgery
    metrics(model)                    extra values for the log, at log steps

plus `stage_start(model, stage)` when a stage begins, `stage_end(model, stage)` when its steps are done (what it
returns joins the stage's summary in train_summary.json), and `state_dict()` / `load_state_dict()` for
state that a resumed run must restore (saved with every checkpoint). An extension that is also an
`nn.Module` has its parameters trained with the model's (and saved with the optimizer state).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch


class TrainerExtension:
    """No-op hooks; see the module docstring for when the trainer calls each."""

    def stage_start(self, model: torch.nn.Module, stage: Any) -> None:
        pass

    def stage_end(self, model: torch.nn.Module, stage: Any) -> dict:
        return {}

    def before_step(self, model: torch.nn.Module, batch: dict, step: int) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def loss(self, model: torch.nn.Module, batch: dict, out: Any, routing: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {}

    def after_backward(self, model: torch.nn.Module, step: int) -> None:
        pass

    def after_step(self, model: torch.nn.Module, step: int) -> None:
        pass

    def metrics(self, model: torch.nn.Module) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
