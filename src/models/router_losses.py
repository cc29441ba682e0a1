"""Router regularisers, one registry, plus the MoE training loss that sums them over layers.

Each registered loss maps one MoE layer's routing (fp32 logits, top-k ids, per-token target
language; padding already removed) and its options to a scalar. `MoELoss` reads every block's
`Routing` record of the forward pass (src/models/whisper_moe.py RoutingCollector) and adds, per layer,
coef * loss for every configured regulariser and expert-ensemble self-distillation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from src.data.dataset import ENCODER_STATES
from src.data.text import PROMPT_LANG_POS
from src.models.backbone import encoder_audio_mask
from src.models.config import DPSLConfig, MoEConfig
from src.models.moe import Routing, expert_load, router_z, routing_stats, self_distill_loss
from src.models.whisper_moe import moe_blocks
from src.utils.errors import UserError
from src.utils.extension import TrainerExtension
from src.utils.registry import make_register


@dataclass
class MaskedRouting:
    """One MoE layer's routing decisions on the real (non-padding) tokens of a batch."""

    logits: torch.Tensor  # (N, E) fp32
    idx: torch.Tensor  # (N, k)
    num_experts: int
    lang: torch.Tensor | None = None  # (N,) target-language index (-1: none), decoder layers only
    decoder: bool = False


RouterLossFn = Callable[..., torch.Tensor]  # (masked routing, **options) -> scalar
ROUTER_LOSSES: dict[str, RouterLossFn] = {}
register_router_loss = make_register(ROUTER_LOSSES)


@register_router_loss("balance")
def load_balance(r: MaskedRouting) -> torch.Tensor:
    """E * sum_i f_i P_i; f_i = fraction of top-k assignments to expert i, P_i = mean probability."""
    probs = r.logits.softmax(-1)
    f = expert_load(r.idx, r.num_experts).to(probs.dtype)
    return r.num_experts * (f * probs.mean(0)).sum()


@register_router_loss("z")
def z_loss(r: MaskedRouting) -> torch.Tensor:
    """mean(logsumexp(logits)^2): keeps router logits small (ST-MoE)."""
    return router_z(r.logits)


@functools.lru_cache(maxsize=4096)
def beta_quantiles(n: int, a: float, b: float) -> np.ndarray:
    """Beta(a, b) quantiles at the plotting positions (i - 1/2)/n, i = 1..n (scipy's Beta.ppf)."""
    from scipy.stats import beta

    return beta.ppf((np.arange(n) + 0.5) / n, a, b)


def empirical_quantiles(p: torch.Tensor, m: int) -> torch.Tensor:
    """(m, E) quantiles of each column of p (N, E) at (j - 1/2)/m; the sorted values when m == N.

    Linear interpolation between order statistics, so it stays differentiable.
    """
    s = p.sort(0).values
    n = s.shape[0]
    if m == n:
        return s
    pos = ((torch.arange(m, device=p.device, dtype=torch.float64) + 0.5) / m * n - 0.5).clamp(0, n - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=n - 1)
    w = (pos - lo).to(s.dtype)[:, None]
    return s[lo] * (1 - w) + s[hi] * w


@register_router_loss("dpsl")
def dpsl(r: MaskedRouting, alpha: torch.Tensor, alpha_by_lang: torch.Tensor | None = None,
         num_quantiles: int = 512) -> torch.Tensor:
    """Dirichlet-prior shaping: per expert k, quantile-match the tokens' router probabilities to the
    Beta(alpha_k, A - alpha_k) marginal of Dirichlet(alpha), mean squared difference.

    With ``alpha_by_lang`` (L, E), decoder tokens of direction l are matched to their direction's
    prior (tokens of no known direction, and encoder layers, to ``alpha``).
    """
    probs = r.logits.softmax(-1)
    groups: list[tuple[torch.Tensor, torch.Tensor]] = []
    if alpha_by_lang is not None and r.decoder and r.lang is not None:
        for lang in r.lang.unique().tolist():
            rows = r.lang == lang
            groups.append((probs[rows], alpha_by_lang[lang] if lang >= 0 else alpha))
    else:
        groups.append((probs, alpha))
    total, count = probs.new_zeros(()), 0
    for p, a in groups:
        n = p.shape[0]
        if n == 0:
            continue
        m = min(n, num_quantiles)
        a_sum = float(a.sum())
        target = torch.from_numpy(np.stack([beta_quantiles(m, float(ak), a_sum - float(ak)) for ak in a], 1))
        q = empirical_quantiles(p, m)
        total = total + (q - target.to(q)).pow(2).mean() * n
        count += n
    return total / max(1, count)


def dpsl_alphas(cfg: DPSLConfig, num_experts: int, top_k: int,
                languages: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(base alpha (E,), per-direction alpha (L, E) or None) from `moe.dpsl`.

    language_prior `auto` gives direction i the experts (i*k .. i*k+k-1) mod E; a mapping names them.
    """
    a = cfg.alpha
    base = torch.full((num_experts,), float(a)) if isinstance(a, (int, float)) else \
        torch.tensor(list(a), dtype=torch.float)
    prior = cfg.language_prior
    if prior is None:
        return base, None
    if prior == "auto":
        groups = {code: [(i * top_k + j) % num_experts for j in range(top_k)] for i, code in enumerate(languages)}
    else:
        groups = {str(k): list(v) for k, v in prior.items()}
        unknown = sorted(set(groups) - set(languages))
        if unknown:
            raise UserError(f"moe.dpsl.language_prior names directions {unknown} that the data does not have "
                             f"({', '.join(languages)})")
    by_lang = base.repeat(len(languages), 1)
    for code, experts in groups.items():
        bad = [e for e in experts if not 0 <= int(e) < num_experts]
        if bad:
            raise UserError(f"moe.dpsl.language_prior[{code}]: expert ids {bad} outside 0..{num_experts - 1}")
        by_lang[languages.index(code), [int(e) for e in experts]] += cfg.prior_boost
    return base, by_lang


def batch_token_masks(batch: dict, device: torch.device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(encoder mask (B, T_enc), decoder mask (B, T_dec)) of a batch: True on real tokens (None where unknown)."""
    enc = dec = None
    if "feature_lengths" in batch:
        states = batch.get(ENCODER_STATES)  # cached encoder outputs: one position per 2 feature frames
        n_frames = batch["input_features"].shape[-1] if states is None else 2 * states.shape[1]
        enc = encoder_audio_mask(n_frames, batch["feature_lengths"], len(batch["feature_lengths"])).to(device)
    if "decoder_attention_mask" in batch:
        dec = batch["decoder_attention_mask"].bool().to(device)
    return enc, dec


def token_masks(batch: dict, lang_token_ids: torch.Tensor, device: torch.device
                ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(encoder mask (B, T_enc), decoder mask (B, T_dec), direction per example (B,), -1 where unknown) of a
    training batch: True on real tokens; the direction from the language token of the decoder prompt."""
    enc, dec = batch_token_masks(batch, device)
    lang = None
    if lang_token_ids.numel() and "decoder_input_ids" in batch:
        match = batch["decoder_input_ids"][:, PROMPT_LANG_POS, None].cpu() == lang_token_ids[None, :]
        lang = torch.where(match.any(1), match.long().argmax(1), torch.full_like(match[:, 0], -1, dtype=torch.long))
        lang = lang.to(device)
    return enc, dec, lang


def flat_for(r: Routing, mask: torch.Tensor | None, lang: torch.Tensor | None
             ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The batch's (B, T) token mask and (B,) directions as per-token vectors of the record's N = B * T tokens
    (None where they do not fit the block's input, e.g. a block run on another batch)."""
    n = r.idx.shape[0]
    mask = mask.reshape(-1) if mask is not None and mask.numel() == n else None
    lang = lang[:, None].expand(lang.shape[0], n // lang.shape[0]).reshape(-1) \
        if lang is not None and n % lang.shape[0] == 0 else None
    return mask, lang


class MoELoss(TrainerExtension):
    """Trainer extension: per MoE layer, coef * each configured router regulariser, plus expert-ensemble
    self-distillation where `moe.self_distill.coef` > 0, on the layers' Routing records, padding masked.

    Which tokens are padding, and which direction each example is (the language token of its decoder
    prompt), come from the batch (`token_masks`).
    """

    def __init__(self, coefs: dict[str, float], options: dict[str, dict] | None = None,
                 lang_token_ids: Sequence[int] = (), warmup: dict[str, int | None] | None = None) -> None:
        unknown = [n for n in coefs if n not in ROUTER_LOSSES]
        if unknown:
            raise UserError(f"unknown router loss(es) {unknown}; known: {sorted(ROUTER_LOSSES)}")
        self.coefs = {n: c for n, c in coefs.items() if c}
        self.options = options or {}
        self.warmup = warmup or {}
        self.lang_token_ids = torch.tensor(list(lang_token_ids), dtype=torch.long)
        self.step = 0
        self.latest: dict[str, tuple] = {}  # metrics(): (logits, idx, mask, E) of the last batch per layer
        self._blocks: tuple[torch.nn.Module, list] | None = None  # (model, its MoE blocks): found once, not per step

    @classmethod
    def from_config(cls, cfg: MoEConfig, languages: Sequence[str] = (), lang_token_ids: Sequence[int] = ()) -> MoELoss:
        coefs = {"balance": cfg.balance_coef, "z": cfg.z_coef, "dpsl": cfg.dpsl.coef}
        options = {}
        if cfg.dpsl.coef:
            base, by_lang = dpsl_alphas(cfg.dpsl, cfg.num_experts, cfg.top_k, list(languages))
            options["dpsl"] = {"alpha": base, "alpha_by_lang": by_lang, "num_quantiles": cfg.dpsl.num_quantiles}
        return cls(coefs, options, lang_token_ids, {"dpsl": cfg.dpsl.warmup_steps})

    def before_step(self, model, batch: dict, step: int = 0):
        self.step = step  # warmup-limited losses (dpsl.warmup_steps) count optimizer steps
        return super().before_step(model, batch, step)

    def active(self, name: str) -> bool:
        limit = self.warmup.get(name)
        return limit is None or self.step < limit

    def loss(self, model, batch: dict, out, routing: dict[str, Routing]) -> dict[str, torch.Tensor]:
        totals: dict[str, torch.Tensor] = {}

        def add(name: str, value: torch.Tensor) -> None:
            totals[name] = totals[name] + value if name in totals else value

        if self._blocks is None or self._blocks[0] is not model:
            self._blocks = (model, moe_blocks(model))
        blocks = self._blocks[1]
        enc, dec, lang_per_example = token_masks(batch, self.lang_token_ids, blocks[0][1].router.weight.device
                                                 if blocks else torch.device("cpu"))
        self.latest = {}
        for name, block in blocks:
            r = routing.get(name)
            if r is None:
                continue
            decoder = name.startswith("decoder")
            mask, lang = flat_for(r, dec if decoder else enc, lang_per_example)
            E = block.cfg.num_experts
            self.latest[name] = (r.logits.detach(), r.idx, mask, E)
            logits, idx = (r.logits, r.idx) if mask is None else (r.logits[mask], r.idx[mask])
            if mask is not None and lang is not None:
                lang = lang[mask]
            routed = MaskedRouting(logits, idx, E, lang, decoder)
            for loss_name, coef in self.coefs.items():
                if self.active(loss_name):
                    value = ROUTER_LOSSES[loss_name](routed, **self.options.get(loss_name, {}))
                    add(f"router_{loss_name}", coef * value)
            if block.cfg.self_distill.coef > 0:
                add("self_distill", self_distill_loss(block, r, mask))
        return totals

    def metrics(self, model) -> dict[str, float]:
        """Per-layer routing entropy and the largest expert load (1/E is perfectly balanced), on the last
        batch of the step."""
        out = {}
        for name, (logits, idx, mask, E) in self.latest.items():
            s = routing_stats(logits, idx, E, mask)
            out[f"moe/{name}/entropy"] = float(s["entropy"])
            out[f"moe/{name}/max_load"] = float(s["load"].max())
        return out
