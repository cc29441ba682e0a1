"""Gradient surgery on expert weights as a trainer extension: project the gradient before the optimizer step,
and re-project the optimizer's actual update after it.

AdamW rescales every coordinate (and decays the weights), so a projected gradient alone does not give a projected
update: the update is re-projected from the weights saved before the step. SPRI's stage 1 (`ResidualSpectrum`,
the update outside P's subspaces) and SD-MoE (`SpectralDecoupler`, a shared in-subspace part) differ only in
the projector and in which weights they target.
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.whisper_moe import moe_blocks
from src.utils.extension import TrainerExtension
from src.utils.sharding import assign_full, full


def expert_matrices(model: nn.Module, trainable_only: bool = True) -> list[tuple[str, nn.Parameter]]:
    """(layer.w1 / layer.w2, the (E, out, in) expert weight) of every MoE layer, in a fixed order."""
    return [(f"{layer_name}.{w}", p) for layer_name, moe in moe_blocks(model) for w in ("w1", "w2")
            if (p := getattr(moe.experts, w)).requires_grad or not trainable_only]


class GradientProjection(TrainerExtension):
    """Projects the gradient of every target weight (after_backward) and, with `exact_update`, the optimizer's
    update of it (after_step). A subclass names the targets and the projector, and when it is active."""

    exact_update: bool = True  # re-project the optimizer's update, not only the gradient

    def __init__(self) -> None:
        self.before: dict[str, torch.Tensor] = {}  # each target's weights before the step (this process's shard)

    def is_active(self) -> bool:
        return True

    def targets(self, model: nn.Module) -> list[tuple[str, nn.Parameter]]:
        """(key, parameter) of the trainable weights to project, in a fixed order: every trainable expert matrix."""
        return expert_matrices(model)

    def project(self, key: str, delta: torch.Tensor) -> torch.Tensor:
        """The projection of ``delta`` (a whole gradient or update of the weight ``key``)."""
        raise NotImplementedError

    @torch.no_grad()
    def after_backward(self, model: nn.Module, step: int) -> None:
        if not self.is_active():
            return
        for key, p in self.targets(model):
            if p.grad is not None:  # under FSDP on whole tensors: a projector may mix experts
                assign_full(p.grad, self.project(key, full(p.grad)))
            if self.exact_update:
                self.before[key] = p.detach().clone()

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        if not (self.is_active() and self.exact_update):
            return
        for key, p in self.targets(model):
            old = self.before.pop(key, None)
            if old is not None:
                old = full(old)
                assign_full(p, old + self.project(key, full(p) - old))
