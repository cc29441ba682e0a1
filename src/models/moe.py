"""The MoE FFN that replaces Whisper's fc1 -> GELU -> fc2, and the helpers to install it.

Experts are stacked (E, ...) tensors so dispatch is one grouped computation and DDP sees every
parameter. An expert matrix is either one tensor (`w1`) or a principal part plus a residual part
(`w1_principal` + `w1_residual`, SPRI), so training stages can select them separately.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from src.models.dispatch import expert_forward


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
    balance_coef: float = 1e-2
    z_coef: float = 1e-3

    def check(self) -> None:
        if self.where not in ("encoder", "decoder", "both"):
            raise ValueError(f"moe.where: '{self.where}' is not one of encoder, decoder, both")
        if not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"moe.top_k={self.top_k} must be between 1 and moe.num_experts={self.num_experts}")
        if self.every < 1:
            raise ValueError("moe.every must be >= 1")
        if self.capacity_factor is not None and self.capacity_factor <= 0:
            raise ValueError("moe.capacity_factor must be positive (or null for dropless)")


# How each expert matrix is stored: "plain" (one stacked tensor) or SPRI's principal + residual.
LAYOUTS = ("plain", "principal_shared", "principal_per_expert")


class ExpertBank(nn.Module):
    """E FFN experts with stacked weights: w1 (E, F, D), b1 (E, F), w2 (E, D, F), b2 (E, D)."""

    def __init__(self, num_experts: int, d_model: int, d_ff: int, layout: str = "plain", residual_scale: float = 1.0):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"expert layout must be one of {LAYOUTS}, got '{layout}'")
        self.layout, self.residual_scale = layout, residual_scale
        E, D, Fd = num_experts, d_model, d_ff
        shapes = {"w1": (Fd, D), "w2": (D, Fd)}
        for name, shape in shapes.items():
            if layout == "plain":
                self.register_parameter(name, nn.Parameter(torch.empty(E, *shape)))
            else:
                p_shape = shape if layout == "principal_shared" else (E, *shape)
                self.register_parameter(f"{name}_principal", nn.Parameter(torch.empty(*p_shape)))
                self.register_parameter(f"{name}_residual", nn.Parameter(torch.empty(E, *shape)))
        self.b1 = nn.Parameter(torch.zeros(E, Fd))
        self.b2 = nn.Parameter(torch.zeros(E, D))

    @property
    def num_experts(self) -> int:
        return self.b1.shape[0]

    def weight(self, name: str) -> torch.Tensor:
        """The effective (E, out, in) weight: plain, or principal + residual_scale * residual."""
        if self.layout == "plain":
            return getattr(self, name)
        principal = getattr(self, f"{name}_principal")
        residual = getattr(self, f"{name}_residual")
        if principal.dim() == 2:
            principal = principal.unsqueeze(0)
        return principal + self.residual_scale * residual


class MoEFFN(nn.Module):
    """Router (fp32 softmax, top-k, optional renormalisation and jitter) over an ExpertBank.

    Installed as the layer's `fc1` with `fc2` and the activation set to identity, so transformers'
    own layer code runs unchanged around it.
    """

    def __init__(self, d_model: int, d_ff: int, cfg: MoEConfig, layout: str = "plain", residual_scale: float = 1.0):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.router = nn.Linear(d_model, cfg.num_experts, bias=False)
        self.experts = ExpertBank(cfg.num_experts, d_model, d_ff, layout, residual_scale)
        self.shared_expert = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model)) \
            if cfg.shared_expert else None
        self.token_mask: torch.Tensor | None = None  # (B, T) bool, set by moe_token_masks()
        self.last: dict[str, torch.Tensor] = {}

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits fp32 (N, E), top-k weights (N, k), top-k expert ids (N, k))."""
        logits = F.linear(x.float(), self.router.weight.float())
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
        out = expert_forward(x, weights.to(x.dtype), idx, self.experts)
        if self.shared_expert is not None:
            out = out + self.shared_expert(x)
        mask = self.token_mask.reshape(-1) if self.token_mask is not None and self.token_mask.numel() == x.shape[0] \
            else None
        self.last = {"logits": logits, "idx": idx, "mask": mask}
        return out.reshape(shape)

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
def moe_token_masks(model: nn.Module, encoder_mask: torch.Tensor | None, decoder_mask: torch.Tensor | None):
    """Tell encoder/decoder MoE layers which tokens are padding while a forward pass runs."""
    layers = moe_layers(model)
    for name, m in layers:
        m.token_mask = encoder_mask if name.startswith("encoder") else decoder_mask
    try:
        yield
    finally:
        for _, m in layers:
            m.token_mask = None


def moe_settings(model: nn.Module) -> dict | None:
    return getattr(model.config, "moe", None)


def record_moe_settings(model: nn.Module, cfg: MoEConfig, layout: str, residual_scale: float, upcycle: dict) -> None:
    model.config.moe = {**asdict(cfg), "layout": layout, "residual_scale": residual_scale}
    model.config.upcycle = upcycle


def build_moe_structure(model: nn.Module) -> None:
    """Recreate (uninitialised) MoE layers from `config.moe` so a saved state dict loads strictly."""
    settings = dict(moe_settings(model))
    layout, scale = settings.pop("layout"), settings.pop("residual_scale")
    cfg = MoEConfig(**settings)
    for _, layer in whisper_ffn_layers(model, cfg.where, cfg.every):
        d_ff, d_model = layer.fc1.weight.shape
        install_moe(layer, MoEFFN(d_model, d_ff, cfg, layout, scale))
