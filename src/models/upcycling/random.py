"""`upcycle=random` (random-perturbation upcycling): copies, then Gaussian noise on a fraction of each expert's
intermediate neurons (rows of W1 and b1, the matching columns of W2)."""

from __future__ import annotations

import torch
from torch import nn

from src.models.moe import MoEBlock
from src.models.upcycling.base import DataFree, copy_dense, init_router, normal_on, register_strategy
from src.models.upcycling.config import RandomConfig


def pick_neurons(n: int, ratio: float, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=gen)[: round(ratio * n)]


@register_strategy
class RandomPerturbation(DataFree[RandomConfig]):
    @torch.no_grad()
    def init_experts(self, moe: MoEBlock, fc1: nn.Linear, fc2: nn.Linear, cfg: RandomConfig, gen: torch.Generator,
                     state: None) -> dict:
        copy_dense(moe, fc1, fc2)
        init_router(moe, cfg.router_std, gen)
        bank = moe.experts
        scale = {k: cfg.sigma * (float(t.std()) if cfg.relative_sigma else 1.0)
                 for k, t in (("w1", fc1.weight), ("b1", fc1.bias), ("w2", fc2.weight))}
        for e in range(bank.num_experts):
            idx = pick_neurons(fc1.weight.shape[0], cfg.ratio, gen)
            idx = idx.to(bank.w1.device)
            bank.w1[e, idx] += normal_on(bank.w1, bank.w1[e, idx].shape, gen, scale["w1"])
            bank.b1[e, idx] += normal_on(bank.b1, idx.shape, gen, scale["b1"])
            bank.w2[e][:, idx] += normal_on(bank.w2, bank.w2[e][:, idx].shape, gen, scale["w2"])
        return {}
