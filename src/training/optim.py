"""A training stage's optimizer and learning-rate schedule: AdamW with weight decay chosen by parameter role."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from src.models.moe import ExpertBank
from src.training.param_groups import owners_of

NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d)


def decays(name: str, owners: tuple[nn.Module, ...]) -> bool:
    """Weight decay by role: weight matrices, convolution kernels and embeddings decay; biases and norms do not.

    By role, not by shape: the expert bank stores its biases as 2-D (E, d) tensors, so a `dim() >= 2` rule
    decayed vanilla's expert biases where the dense FFN's fc1/fc2 biases were not, and the same learning
    rate did not mean the same update for every strategy.
    """
    leaf = name.rsplit(".", 1)[-1]
    if isinstance(owners[-1], NORMS) or leaf == "bias":
        return False
    if isinstance(owners[-1], ExpertBank):
        return leaf in ("w1", "w2")
    return True


def decay_split(modules: list[nn.Module]) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decayed, not decayed) trainable parameters of ``modules``, each in the modules' parameter order."""
    decay, no_decay = [], []
    for module in modules:
        owners = owners_of(module)
        for name, p in module.named_parameters():
            if p.requires_grad:
                (decay if decays(name, owners[name]) else no_decay).append(p)
    return decay, no_decay


def lr_lambda(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    """The lr multiplier at each step: linear warmup over ``warmup`` steps, then linear/cosine decay or constant."""

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        frac = (step - warmup) / max(1, total - warmup)
        if schedule == "linear":
            return max(0.0, 1.0 - frac)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))

    return f


def build_optimizer(modules: list[nn.Module], lr: float, weight_decay: float, beta2: float, schedule: str,
                    warmup_steps: int, total_steps: int, fused: bool = False):
    """(AdamW over the trainable parameters of ``modules``, its LambdaLR schedule) for one training stage."""
    decay, no_decay = decay_split(modules)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=lr, betas=(0.9, beta2), fused=fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(schedule, warmup_steps, total_steps))
    return optimizer, scheduler
