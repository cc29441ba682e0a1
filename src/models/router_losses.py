"""Router regularisers, one registry. Each maps one MoE layer's routing (fp32 logits, top-k ids,
padding mask) to a scalar; `RouterLoss` sums them over layers with their coefficients."""

from __future__ import annotations

from collections.abc import Callable

import torch

from src.models.moe import moe_layers, moe_token_masks
from src.utils.registry import make_register

RouterLossFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
ROUTER_LOSSES: dict[str, RouterLossFn] = {}


register_router_loss = make_register(ROUTER_LOSSES)


@register_router_loss("balance")
def load_balance(logits: torch.Tensor, idx: torch.Tensor, num_experts: int) -> torch.Tensor:
    """E * sum_i f_i P_i; f_i = fraction of top-k assignments to expert i, P_i = mean probability."""
    probs = logits.softmax(-1)
    f = torch.bincount(idx.reshape(-1), minlength=num_experts).to(probs.dtype) / max(1, idx.numel())
    return num_experts * (f * probs.mean(0)).sum()


@register_router_loss("z")
def z_loss(logits: torch.Tensor, idx: torch.Tensor, num_experts: int) -> torch.Tensor:
    """mean(logsumexp(logits)^2): keeps router logits small (ST-MoE)."""
    return torch.logsumexp(logits, dim=-1).pow(2).mean()


class RouterLoss:
    """Aux loss for the trainer: sum over MoE layers of coef * loss, padding masked.

    `prepare` tells the layers which tokens are padding (from the batch) before the forward pass.
    """

    def __init__(self, coefs: dict[str, float]) -> None:
        unknown = [n for n in coefs if n not in ROUTER_LOSSES]
        if unknown:
            raise ValueError(f"unknown router loss(es) {unknown}; known: {sorted(ROUTER_LOSSES)}")
        self.coefs = {n: c for n, c in coefs.items() if c}

    def prepare(self, model, batch: dict):
        enc = None
        if "feature_lengths" in batch:
            n_frames = batch["input_features"].shape[-1]
            t_enc = (n_frames + 1) // 2
            enc_len = (batch["feature_lengths"] + 1) // 2
            enc = torch.arange(t_enc)[None, :] < enc_len[:, None]
        dec = batch["decoder_attention_mask"].bool() if "decoder_attention_mask" in batch else None
        device = next(model.parameters()).device
        return moe_token_masks(model, enc.to(device) if enc is not None else None,
                               dec.to(device) if dec is not None else None)

    def __call__(self, model, batch: dict, out) -> dict[str, torch.Tensor]:
        totals: dict[str, torch.Tensor] = {}
        for _, layer in moe_layers(model):
            logits, idx, mask = layer.last["logits"], layer.last["idx"], layer.last["mask"]
            if mask is not None:
                logits, idx = logits[mask], idx[mask]
            for name, coef in self.coefs.items():
                value = coef * ROUTER_LOSSES[name](logits, idx, layer.cfg.num_experts)
                totals[name] = totals[name] + value if name in totals else value
        return {f"router_{k}": v for k, v in totals.items()}

    @staticmethod
    def metrics(model) -> dict[str, float]:
        """Per-layer routing entropy and the largest expert load (1/E is perfectly balanced)."""
        out = {}
        for name, layer in moe_layers(model):
            if layer.last:
                s = layer.routing_stats()
                out[f"moe/{name}/entropy"] = float(s["entropy"])
                out[f"moe/{name}/max_load"] = float(s["load"].max())
        return out
