"""`upcycle=vanilla` (Sparse Upcycling, Komatsuzaki et al. 2023): every expert an exact copy of the
dense FFN, router random; with renormalised top-k the MoE computes the dense FFN at init."""

import torch
from torch import nn

from src.models.moe import MoEBlock
from src.models.upcycling.base import DataFree, copy_dense, init_router, register_strategy
from src.models.upcycling.config import VanillaConfig


@register_strategy
class Vanilla(DataFree[VanillaConfig]):
    def init_experts(self, moe: MoEBlock, fc1: nn.Linear, fc2: nn.Linear, cfg: VanillaConfig,
                     gen: torch.Generator, state: None) -> dict:
        copy_dense(moe, fc1, fc2)
        init_router(moe, cfg.router_std, gen)
        return {}
