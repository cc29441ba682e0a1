"""The MoE block that takes the FFN slot of a Whisper layer (src/models/whisper_moe.py installs it), its config
and its output record.

Experts are stacked (E, ...) tensors so dispatch is one grouped computation and DDP sees every
parameter. Every strategy stores the same layout (one tensor per expert matrix), so the same learning
rate moves every strategy's experts by the same amount; what a strategy restricts in a stage (SPRI's
residual spectrum) it restricts through its trainer extension, not through a different parametrisation.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from src.models.config import MoEConfig
from src.models.dispatch import expert_forward


class ExpertBank(nn.Module):
    """E FFN experts with stacked weights: w1 (E, F, D), b1 (E, F), w2 (E, D, F), b2 (E, D)."""

    def __init__(self, num_experts: int, d_model: int, d_ff: int):
        super().__init__()
        E, D, Fd = num_experts, d_model, d_ff
        self.w1 = nn.Parameter(torch.empty(E, Fd, D))
        self.w2 = nn.Parameter(torch.empty(E, D, Fd))
        self.b1 = nn.Parameter(torch.zeros(E, Fd))
        self.b2 = nn.Parameter(torch.zeros(E, D))

    @property
    def num_experts(self) -> int:
        return self.b1.shape[0]

    def weight(self, name: str) -> torch.Tensor:
        """The (E, out, in) weight ``name``."""
        return getattr(self, name)


class Router(nn.Linear):
    """The router's linear map, computed in fp32 with autocast off: top-k choices flip on bf16 rounding.
    `fsdp_fp32` asks FSDP mixed precision to keep its weights fp32 too (it becomes its own unit)."""

    fsdp_fp32 = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.float(), self.weight.float())


class Routing(NamedTuple):
    """What one MoE block decided for one forward call: its output record (the way transformers' MoE models
    return `router_logits`). Flat over the tokens of the call, padding included: which tokens are padding
    is a property of the batch, so the consumers (router losses, self-distillation, the routing recorder)
    mask with the batch's masks (`token_masks`)."""

    logits: torch.Tensor  # (N, E) fp32, before jitter
    weights: torch.Tensor  # (N, k) combine weights (after renormalisation and capacity)
    idx: torch.Tensor  # (N, k) chosen experts
    inputs: torch.Tensor  # (N, D) the block's input: the expert ensemble of self-distillation runs on it
    routed: torch.Tensor  # (N, D) the routed experts' combined output (the shared expert's not added)


class SharedExpert(nn.Sequential):
    """An always-on dense FFN next to the routed experts (`moe.shared_expert`)."""

    def __init__(self, d_model: int, d_ff: int):
        super().__init__(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))


class MoEBlock(nn.Module):
    """The FFN slot of an MoE Whisper layer: route -> dispatch -> experts -> combine (Megatron-Core's
    MoELayer reads the same way). Returns the output and its `Routing` record; holds no per-batch state."""

    def __init__(self, d_model: int, d_ff: int, cfg: MoEConfig):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.router = Router(d_model, cfg.num_experts, bias=False)
        self.experts = ExpertBank(cfg.num_experts, d_model, d_ff)
        self.shared_expert = SharedExpert(d_model, d_ff) if cfg.shared_expert else None

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits fp32 (N, E), top-k weights (N, k), top-k expert ids (N, k)); jitter only in training."""
        logits = self.router(x)
        if self.training and self.cfg.jitter > 0:
            logits = logits + torch.randn_like(logits) * self.cfg.jitter
        probs = logits.softmax(-1)
        weights, idx = probs.topk(self.cfg.top_k, dim=-1)
        if self.cfg.renormalize:
            weights = weights / weights.sum(-1, keepdim=True)
        return logits, weights, idx

    def apply_capacity(self, weights: torch.Tensor, idx: torch.Tensor, token_mask: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(combine weights, kept assignments (N, k) bool or None = all) under `moe.capacity_factor`: an
        assignment over its expert's capacity is dropped (weight 0, and the expert never runs it). Padding
        (``token_mask`` False) neither counts toward the capacity nor takes room from a real token."""
        if self.cfg.capacity_factor is None:
            return weights, None
        keep = capacity_mask(idx, self.cfg.num_experts, self.cfg.capacity_factor, token_mask)
        return weights * keep, keep.bool()

    def forward(self, hidden: torch.Tensor, token_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, Routing]:
        """``token_mask`` (hidden.shape[:-1], True on real tokens; optional): only the capacity limit reads it."""
        shape = hidden.shape
        x = hidden.reshape(-1, shape[-1])
        logits, weights, idx = self.route(x)
        mask = token_mask.reshape(-1) if token_mask is not None else None
        weights, keep = self.apply_capacity(weights, idx, mask)
        routed = expert_forward(x, weights.to(x.dtype), idx, self.experts, self.cfg.dispatch, keep)
        out = routed if self.shared_expert is None else routed + self.shared_expert(x)
        return out.reshape(shape), Routing(logits, weights, idx, x, routed)

    @torch.no_grad()
    def ensemble(self, x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """Every expert on every row of ``x``, weighted by ``probs`` (N, E): self-distillation's teacher."""
        every = torch.arange(self.cfg.num_experts, device=x.device).expand(x.shape[0], self.cfg.num_experts)
        return expert_forward(x, probs.to(x.dtype), every, self.experts, self.cfg.dispatch)


def self_distill_loss(block: MoEBlock, r: Routing, mask: torch.Tensor | None) -> torch.Tensor:
    """Distance of the routed output to the all-expert ensemble, on the router's uncertain tokens (padding
    excluded by ``mask`` (N,))."""
    cfg = block.cfg.self_distill
    probs = r.logits.softmax(-1)
    sel = probs.max(-1).values < cfg.threshold
    if mask is not None:
        sel = sel & mask
    if not bool(sel.any()):
        return r.routed.sum() * 0.0
    teacher = block.ensemble(r.inputs[sel], probs[sel])
    s = r.routed[sel].float()
    if cfg.loss == "mse":
        return cfg.coef * F.mse_loss(s, teacher.float())
    t = cfg.temperature
    return cfg.coef * t * t * F.kl_div((s / t).log_softmax(-1), (teacher.float() / t).log_softmax(-1),
                                       log_target=True, reduction="batchmean")


# Router statistics, one definition each (router losses, training metrics, the upcycling report, cluster's fit).
def expert_load(idx: torch.Tensor, num_experts: int) -> torch.Tensor:
    """(E,) float32: the fraction of the top-k assignments ``idx`` (..., k) each expert got."""
    return torch.bincount(idx.reshape(-1), minlength=num_experts).float() / max(1, idx.numel())


def router_z(logits: torch.Tensor) -> torch.Tensor:
    """mean(logsumexp(logits)^2), ST-MoE's z-loss (differentiable): large when router logits grow."""
    return torch.logsumexp(logits, dim=-1).pow(2).mean()


def router_top1(logits: torch.Tensor) -> torch.Tensor:
    """The mean top-1 routing probability: near 1, a saturated router never leaves its choices."""
    return logits.softmax(-1).max(-1).values.mean()


def routing_stats(logits: torch.Tensor, idx: torch.Tensor, num_experts: int, mask: torch.Tensor | None
                  ) -> dict[str, torch.Tensor]:
    """Per-expert load (fraction of top-k assignments) and mean routing entropy, padding excluded."""
    if mask is not None:
        logits, idx = logits[mask], idx[mask]
    probs = logits.softmax(-1)
    load = expert_load(idx, num_experts)
    entropy = -(probs * probs.clamp_min(1e-9).log()).sum(-1).mean()
    return {"load": load.detach(), "entropy": entropy.detach()}


def capacity_mask(idx: torch.Tensor, num_experts: int, factor: float, token_mask: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """(N, k) 1/0: an assignment is kept while its expert has room (capacity = factor * N_real * k / E).

    Priority: first choices of all real tokens, then their second choices, ..., and padding's assignments
    (``token_mask`` (N,) False) after every real one, so padding only fills room no real token wanted.
    """
    n, k = idx.shape
    n_real = n if token_mask is None else int(token_mask.sum())
    capacity = max(1, math.ceil(factor * n_real * k / num_experts))
    order = torch.arange(n * k, device=idx.device).reshape(k, n)  # choice-major: (choice, token)
    if token_mask is not None:
        order = order + (~token_mask.bool()).to(order.dtype)[None, :] * (n * k)  # padding last
    rank = order.reshape(-1).argsort().argsort()  # each assignment's place in the priority order
    flat = idx.t().reshape(-1)
    onehot = F.one_hot(flat, num_experts)[rank.argsort()]  # assignments in priority order
    position = ((onehot.cumsum(0) * onehot).sum(-1) - 1)[rank]  # back in choice-major order
    return (position < capacity).reshape(k, n).t().to(torch.float32)
