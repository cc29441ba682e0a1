"""`upcycle=drop` (Drop-Upcycling, Nakamura et al. 2025): per expert, a fraction of intermediate
neurons is re-initialised from N(mean, std) of the original weights; the rest are copies."""

from __future__ import annotations

import torch
from torch import nn

from src.models.moe import MoEBlock
from src.models.upcycling.base import DataFree, copy_dense, init_router, normal_on, register_strategy
from src.models.upcycling.config import DropConfig
from src.models.upcycling.random import pick_neurons


def _normal_like(values: torch.Tensor, ref: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    std = float(ref.std()) if ref.numel() > 1 else 0.0
    return normal_on(values, values.shape, gen, std, float(ref.mean()))


@register_strategy
class Drop(DataFree[DropConfig]):
    @torch.no_grad()
    def init_experts(self, moe: MoEBlock, fc1: nn.Linear, fc2: nn.Linear, cfg: DropConfig, gen: torch.Generator,
                     state: None) -> dict:
        copy_dense(moe, fc1, fc2)
        init_router(moe, cfg.router_std, gen)
        bank, n = moe.experts, fc1.weight.shape[0]
        w1, b1, w2 = fc1.weight, fc1.bias, fc2.weight
        for e in range(bank.num_experts):
            i1 = pick_neurons(n, cfg.ratio, gen)
            ib = i1 if cfg.shared_indices else pick_neurons(n, cfg.ratio, gen)
            i2 = i1 if cfg.shared_indices else pick_neurons(n, cfg.ratio, gen)
            sl = cfg.stats == "slice"
            bank.w1[e, i1] = _normal_like(w1[i1], w1[i1] if sl else w1, gen)
            bank.b1[e, ib] = _normal_like(b1[ib], b1[ib] if sl else b1, gen)
            bank.w2[e][:, i2] = _normal_like(w2[:, i2], w2[:, i2] if sl else w2, gen)
        return {}
