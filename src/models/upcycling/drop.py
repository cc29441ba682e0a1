"""`upcycle=drop` (Drop-Upcycling, Nakamura et al. 2025): per expert, a fraction of intermediate
neurons is re-initialised from N(mean, std) of the original weights; the rest are copies."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from src.models.upcycling.base import (
    Strategy,
    UpcycleConfig,
    copy_dense,
    init_router,
    normal_on,
    register_strategy,
)
from src.models.upcycling.random import pick_neurons
from src.utils.errors import UserError
from src.utils.ranges import check_range


@dataclass
class DropConfig(UpcycleConfig):
    ratio: float = 0.5
    # One index set per expert shared by W1 rows, b1 and W2 columns (the paper's description);
    # false samples each matrix's indices separately (as the reference code does).
    shared_indices: bool = True
    stats: str = "slice"  # N(mean, std) of the dropped slice's original values, or of the whole "matrix"

    def check(self) -> None:
        """At start-up (config validation), before any model loads."""
        super().check()
        if self.stats not in ("slice", "matrix"):
            raise UserError(f"upcycle.stats must be 'slice' or 'matrix', got '{self.stats}'")
        check_range("upcycle.ratio", self.ratio, 0, 1)


def _normal_like(values: torch.Tensor, ref: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    std = float(ref.std()) if ref.numel() > 1 else 0.0
    return normal_on(values, values.shape, gen, std, float(ref.mean()))


@register_strategy("drop")
class Drop(Strategy):
    config = DropConfig

    @torch.no_grad()
    def init_experts(self, moe, fc1, fc2, cfg: DropConfig, gen, state=None) -> dict:
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
