"""The MoE FFN that replaces Whisper's fc1 -> GELU -> fc2, and the helpers to install it.

Experts are stacked (E, ...) tensors so dispatch is one grouped computation and DDP sees every
parameter. Every strategy stores the same layout (one tensor per expert matrix), so the same learning
rate moves every strategy's experts by the same amount; what a strategy restricts in a stage (SPRI's
residual spectrum) it restricts through its trainer extension, not through a different parametrisation.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from src.models.dispatch import DISPATCH, expert_forward
from src.utils.errors import UserError
from src.utils.ranges import check_range
from src.utils.structured import to_dataclass

DISTILL_LOSSES = ("mse", "kl")


@dataclass
class SelfDistillConfig:
    """Expert-ensemble self-distillation (`moe.self_distill`, Chu et al. 2026); off while coef is 0.

    Teacher: all experts weighted by the full router softmax (no gradient); student: the routed top-k
    output; only tokens whose top router probability is below `threshold` (the uncertain ones).
    `kl` treats each output vector as logits over its features (our reading; the paper's form is not public).
    """

    coef: float = 0.0
    loss: str = "mse"  # mse | kl
    threshold: float = 0.5
    temperature: float = 1.0  # kl only


@dataclass
class DPSLConfig:
    """Dirichlet-prior shaping of router probabilities (`moe.dpsl`, Mirvakhabova et al. 2025); off at coef 0."""

    coef: float = 0.0
    alpha: Any = 1.0  # a float (symmetric) or one value per expert
    language_prior: Any = None  # null | auto | {xx: [expert, ...]}: experts whose alpha rises for direction xx
    prior_boost: float = 2.0  # added to alpha for a direction's preferred experts
    warmup_steps: int | None = None  # apply only during the first n optimizer steps (null: always)
    num_quantiles: int = 512  # quantile levels compared (all tokens when fewer)


@dataclass
class SDConfig:
    """Spectral-decoupled experts (`moe.sd`, Huang et al. 2026); off at rank 0."""

    rank: int = 0  # common spectral rank r_c of the shared subspace
    period: int = 50  # recompute the subspace every n optimizer steps
    exact_update: bool = True  # also decouple the optimizer's update (AdamW rescales per coordinate)


@dataclass
class MoEConfig:
    num_experts: int = 8
    top_k: int = 2
    where: str = "both"  # encoder | decoder | both
    every: int = 1
    renormalize: bool = True
    jitter: float = 0.0
    shared_expert: bool = False
    capacity_factor: float | None = None
    dispatch: str = "auto"  # auto | grouped | loop (src/models/dispatch.py)
    balance_coef: float = 1e-2
    z_coef: float = 1e-3
    self_distill: SelfDistillConfig = field(default_factory=SelfDistillConfig)
    dpsl: DPSLConfig = field(default_factory=DPSLConfig)
    sd: SDConfig = field(default_factory=SDConfig)

    def check(self) -> None:
        check_range("moe.num_experts", self.num_experts, 1, integer=True)
        for key in ("jitter", "balance_coef", "z_coef"):
            check_range(f"moe.{key}", getattr(self, key), 0)
        if self.where not in ("encoder", "decoder", "both"):
            raise UserError(f"moe.where: '{self.where}' is not one of encoder, decoder, both")
        if not 1 <= self.top_k <= self.num_experts:
            raise UserError(f"moe.top_k={self.top_k} must be between 1 and moe.num_experts={self.num_experts}")
        if self.every < 1:
            raise UserError("moe.every must be >= 1")
        if self.dispatch not in DISPATCH:
            raise UserError(f"moe.dispatch: '{self.dispatch}' is not one of {DISPATCH}")
        if self.capacity_factor is not None and self.capacity_factor <= 0:
            raise UserError("moe.capacity_factor must be positive (or null for dropless)")
        sd, dp, sdm = self.self_distill, self.dpsl, self.sd
        if sd.loss not in DISTILL_LOSSES:
            raise UserError(f"moe.self_distill.loss: '{sd.loss}' is not one of {DISTILL_LOSSES}")
        if sd.coef < 0 or not 0 < sd.threshold <= 1 or sd.temperature <= 0:
            raise UserError("moe.self_distill: coef >= 0, 0 < threshold <= 1 and temperature > 0 are required")
        alpha = [dp.alpha] if isinstance(dp.alpha, (int, float)) else list(dp.alpha)
        if dp.coef < 0 or any(a <= 0 for a in alpha) or len(alpha) not in (1, self.num_experts):
            raise UserError(f"moe.dpsl: coef >= 0 and alpha > 0 (one value, or one per expert: "
                             f"{self.num_experts}) are required, got coef={dp.coef}, alpha={dp.alpha}")
        if dp.language_prior is not None and dp.language_prior != "auto" and not hasattr(dp.language_prior, "items"):
            raise UserError("moe.dpsl.language_prior must be null, auto, or a mapping {xx: [expert ids]}")
        if dp.warmup_steps is not None and dp.warmup_steps < 0:
            raise UserError("moe.dpsl.warmup_steps must be >= 0 (or null)")
        if sdm.rank < 0 or sdm.period < 1:
            raise UserError("moe.sd: rank >= 0 and period >= 1 are required")


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

    def weight(self, name: str, fetch: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> torch.Tensor:
        """The (E, out, in) weight ``name``; `fetch` maps it first (e.g. to the whole tensor behind an FSDP shard)."""
        return fetch(getattr(self, name))


class Router(nn.Linear):
    """The router's linear map, computed in fp32 with autocast off: top-k choices flip on bf16 rounding.
    `fsdp_fp32` asks FSDP mixed precision to keep its weights fp32 too (it becomes its own unit)."""

    fsdp_fp32 = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.float(), self.weight.float())


class MoEFFN(nn.Module):
    """Router (fp32 softmax, top-k, optional renormalisation and jitter) over an ExpertBank.

    Installed as the layer's `fc1` with `fc2` and the activation set to identity, so transformers'
    own layer code runs unchanged around it.
    """

    def __init__(self, d_model: int, d_ff: int, cfg: MoEConfig):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.router = Router(d_model, cfg.num_experts, bias=False)
        self.experts = ExpertBank(cfg.num_experts, d_model, d_ff)
        self.shared_expert = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model)) \
            if cfg.shared_expert else None
        self.token_mask: torch.Tensor | None = None  # (B, T) bool, set by moe_token_masks()
        self.token_lang: torch.Tensor | None = None  # (B,) target-language index per example, same source
        self.last: dict[str, torch.Tensor] = {}

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits fp32 (N, E), top-k weights (N, k), top-k expert ids (N, k))."""
        logits = self.router(x)
        if self.training and self.cfg.jitter > 0:
            logits = logits + torch.randn_like(logits) * self.cfg.jitter
        probs = logits.softmax(-1)
        weights, idx = probs.topk(self.cfg.top_k, dim=-1)
        if self.cfg.renormalize:
            weights = weights / weights.sum(-1, keepdim=True)
        return logits, weights, idx

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        shape = hidden.shape
        x = hidden.reshape(-1, shape[-1])
        logits, weights, idx = self.route(x)
        keep = None
        if self.cfg.capacity_factor is not None:
            keep = capacity_mask(idx, self.cfg.num_experts, self.cfg.capacity_factor)
            weights = weights * keep
        out = expert_forward(x, weights.to(x.dtype), idx, self.experts, self.cfg.dispatch)
        mask = self.token_mask.reshape(-1) if self.token_mask is not None and self.token_mask.numel() == x.shape[0] \
            else None
        lang = self.token_lang[:, None].expand(shape[:-1]).reshape(-1) \
            if self.token_lang is not None and hidden.dim() == 3 and shape[0] == self.token_lang.shape[0] else None
        self.last = {"logits": logits, "idx": idx, "mask": mask, "lang": lang}
        if self.training and self.cfg.self_distill.coef > 0:
            self.last["self_distill"] = self.self_distill_loss(x, logits, out, mask)
        if self.shared_expert is not None:
            out = out + self.shared_expert(x)
        return out.reshape(shape)

    def self_distill_loss(self, x: torch.Tensor, logits: torch.Tensor, student: torch.Tensor,
                          mask: torch.Tensor | None) -> torch.Tensor:
        """Distance of the routed output to the all-expert ensemble, on the router's uncertain tokens."""
        cfg = self.cfg.self_distill
        probs = logits.softmax(-1)
        sel = probs.max(-1).values < cfg.threshold
        if mask is not None:
            sel = sel & mask
        if not bool(sel.any()):
            return student.sum() * 0.0
        with torch.no_grad():
            n, E = int(sel.sum()), self.cfg.num_experts
            every = torch.arange(E, device=x.device).expand(n, E)
            teacher = expert_forward(x[sel], probs[sel].to(x.dtype), every, self.experts, self.cfg.dispatch)
        s = student[sel].float()
        if cfg.loss == "mse":
            return cfg.coef * F.mse_loss(s, teacher.float())
        t = cfg.temperature
        return cfg.coef * t * t * F.kl_div((s / t).log_softmax(-1), (teacher.float() / t).log_softmax(-1),
                                           log_target=True, reduction="batchmean")

    def routing_stats(self) -> dict[str, torch.Tensor]:
        """Per-expert load (fraction of top-k assignments) and mean routing entropy, padding excluded."""
        logits, idx, mask = self.last["logits"], self.last["idx"], self.last["mask"]
        if mask is not None:
            logits, idx = logits[mask], idx[mask]
        probs = logits.softmax(-1)
        load = torch.bincount(idx.reshape(-1), minlength=self.cfg.num_experts).float() / max(1, idx.numel())
        entropy = -(probs * probs.clamp_min(1e-9).log()).sum(-1).mean()
        return {"load": load.detach(), "entropy": entropy.detach()}


def capacity_mask(idx: torch.Tensor, num_experts: int, factor: float) -> torch.Tensor:
    """(N, k) 1/0: an assignment is kept while its expert has room (capacity = factor * N * k / E)."""
    n, k = idx.shape
    capacity = max(1, math.ceil(factor * n * k / num_experts))
    flat = idx.t().reshape(-1)  # first choices of all tokens before second choices
    onehot = F.one_hot(flat, num_experts)
    position = (onehot.cumsum(0) * onehot).sum(-1) - 1
    return (position < capacity).reshape(k, n).t().to(torch.float32)


# -- installing MoE layers in a Whisper model -----------------------------------------------------
def whisper_ffn_layers(model: nn.Module, where: str, every: int) -> list[tuple[str, nn.Module]]:
    """(name, layer) of the layers whose FFN becomes MoE: every n-th layer of encoder/decoder."""
    out = []
    for side in ("encoder", "decoder"):
        if where not in (side, "both"):
            continue
        layers = getattr(model.model, side).layers
        for i, layer in enumerate(layers):
            if (i + 1) % every == 0:
                out.append((f"{side}.layers.{i}", layer))
    return out


def install_moe(layer: nn.Module, moe: MoEFFN) -> None:
    layer.fc1 = moe
    layer.fc2 = nn.Identity()
    layer.activation_fn = nn.Identity()


def moe_layers(model: nn.Module) -> list[tuple[str, MoEFFN]]:
    return [(name.removeprefix("model.").removesuffix(".fc1"), m) for name, m in model.named_modules()
            if isinstance(m, MoEFFN)]


@contextlib.contextmanager
def moe_token_masks(model: nn.Module, encoder_mask: torch.Tensor | None, decoder_mask: torch.Tensor | None,
                    lang: torch.Tensor | None = None):
    """Tell encoder/decoder MoE layers which tokens are padding (and each example's target-language
    index, for language-aware router losses) while a forward pass runs."""
    layers = moe_layers(model)
    for name, m in layers:
        m.token_mask = encoder_mask if name.startswith("encoder") else decoder_mask
        m.token_lang = lang
    try:
        yield
    finally:
        for _, m in layers:
            m.token_mask = m.token_lang = None


def moe_settings(model: nn.Module) -> dict | None:
    return getattr(model.config, "moe", None)


def record_moe_settings(model: nn.Module, cfg: MoEConfig, upcycle: dict) -> None:
    model.config.moe = asdict(cfg)
    model.config.upcycle = upcycle


def build_moe_structure(model: nn.Module) -> None:
    """Recreate (uninitialised) MoE layers from `config.moe` so a saved state dict loads strictly."""
    settings = dict(moe_settings(model))
    if settings.pop("layout", "plain") != "plain":
        raise UserError("this checkpoint stores SPRI experts as principal + residual tensors (before 2026-11-30); "
                      "re-run the upcycling with the current code, which stores one tensor per expert matrix")
    settings.pop("residual_scale", None)
    cfg = to_dataclass(MoEConfig, settings)
    for _, layer in whisper_ffn_layers(model, cfg.where, cfg.every):
        d_ff, d_model = layer.fc1.weight.shape
        install_moe(layer, MoEFFN(d_model, d_ff, cfg))
