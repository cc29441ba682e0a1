"""`upcycle=spri` (SVD-Partitioned Residual Initialization, Shan et al. 2026).

For each of W1 and W2: W = sum_i s_i u_i v_i^T. The top components form the principal part P
(`rank`, or the smallest rank keeping `energy` of sum s_i^2); the remaining components are
partitioned across the E experts, and expert e gets P + residual_scale * R_e. P is stored once
(`principal: shared`) or per expert, and kept apart from R_e so stage 1 can train the residuals
alone. With residual_scale 1, P + sum_e R_e = W.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from src.models.upcycling.base import Strategy, UpcycleConfig, copy_dense, init_router, register_strategy

PARTITIONS = ("interleaved", "contiguous", "random")


@dataclass
class SPRIConfig(UpcycleConfig):
    stage1_trainable: list[str] = field(default_factory=lambda: ["residual", "router"])
    rank: int | None = None
    energy: float | None = 0.9  # used when rank is null
    partition: str = "interleaved"
    residual_scale: float = 1.0
    principal: str = "shared"  # shared | per_expert


def principal_rank(s: torch.Tensor, rank: int | None, energy: float | None) -> int:
    if rank is not None:
        if not 0 <= rank <= s.numel():
            raise ValueError(f"upcycle.rank={rank} is outside [0, {s.numel()}]")
        return int(rank)
    if energy is None or not 0.0 <= energy <= 1.0:
        raise ValueError("upcycle: set upcycle.rank, or upcycle.energy in [0, 1]")
    if energy == 0.0:
        return 0
    cum = (s.double() ** 2).cumsum(0) / (s.double() ** 2).sum()
    return int(torch.searchsorted(cum, torch.tensor(energy, dtype=cum.dtype) - 1e-12).item()) + 1


def partition_components(first: int, total: int, num_experts: int, how: str, gen: torch.Generator) -> list[list[int]]:
    """Residual component indices first..total-1 split across experts (disjoint and covering)."""
    comps = list(range(first, total))
    if how == "random":
        comps = [comps[i] for i in torch.randperm(len(comps), generator=gen).tolist()]
        how = "interleaved"
    if how == "interleaved":
        return [comps[e::num_experts] for e in range(num_experts)]
    if how == "contiguous":
        bounds = torch.linspace(0, len(comps), num_experts + 1).round().long().tolist()
        return [comps[bounds[e] : bounds[e + 1]] for e in range(num_experts)]
    raise ValueError(f"upcycle.partition must be one of {PARTITIONS}, got '{how}'")


def spri_split(w: torch.Tensor, cfg: SPRIConfig, num_experts: int, gen: torch.Generator):
    """(P, R (E, out, in), r, parts) for one matrix; SVD in float64 so P + sum R_e = W to fp32 precision."""
    u, s, vh = torch.linalg.svd(w.double(), full_matrices=False)
    r = principal_rank(s, cfg.rank, cfg.energy)
    principal = (u[:, :r] * s[:r]) @ vh[:r]
    parts = partition_components(r, s.numel(), num_experts, cfg.partition, gen)
    residual = torch.stack([(u[:, p] * s[p]) @ vh[p] for p in parts])
    return principal.to(w.dtype), residual.to(w.dtype), r, parts


@register_strategy("spri")
class SPRI(Strategy):
    config = SPRIConfig

    def layout(self, cfg: SPRIConfig) -> str:
        if cfg.principal not in ("shared", "per_expert"):
            raise ValueError(f"upcycle.principal must be 'shared' or 'per_expert', got '{cfg.principal}'")
        return f"principal_{cfg.principal}"

    def residual_scale(self, cfg: SPRIConfig) -> float:
        return cfg.residual_scale

    @torch.no_grad()
    def init_experts(self, moe, fc1, fc2, cfg: SPRIConfig, gen, calib=None) -> dict:
        copy_dense(moe, fc1, fc2)
        init_router(moe, cfg.router_std, gen)
        bank = moe.experts
        err_num, err_den, ranks = 0.0, 0.0, {}
        for name, dense in (("w1", fc1.weight), ("w2", fc2.weight)):
            p, r, rank, _ = spri_split(dense, cfg, bank.num_experts, gen)
            target = getattr(bank, f"{name}_principal")
            target.copy_(p if target.dim() == 2 else p.expand_as(target))
            getattr(bank, f"{name}_residual").copy_(r)
            err_num += float((p + r.sum(0) - dense).pow(2).sum())
            err_den += float(dense.pow(2).sum())
            ranks[name] = rank
        return {"reconstruction_error": (err_num / err_den) ** 0.5, "principal_rank": ranks}
