"""The `model` and `moe` groups' dataclasses: torch-free, so validating a config imports no torch
(src/config.py); the modules that build from them import them from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from src.utils.errors import UserError
from src.utils.ranges import check_range

DISPATCH = ("auto", "grouped", "loop")  # expert-pass implementations (src/models/dispatch.py)
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
class SDMoEConfig:
    """Spectral-decoupled experts (`moe.sd_moe`, Huang et al. 2026); off at rank 0."""

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
    sd_moe: SDMoEConfig = field(default_factory=SDMoEConfig)

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
        distill, dp, sdm = self.self_distill, self.dpsl, self.sd_moe
        if distill.loss not in DISTILL_LOSSES:
            raise UserError(f"moe.self_distill.loss: '{distill.loss}' is not one of {DISTILL_LOSSES}")
        if distill.coef < 0 or not 0 < distill.threshold <= 1 or distill.temperature <= 0:
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
            raise UserError("moe.sd_moe: rank >= 0 and period >= 1 are required")


@dataclass
class ToyArch:
    """A small Whisper for the toy corpus, sized so the toy demo trains on 2 CPU cores in minutes."""

    d_model: int = 128
    encoder_layers: int = 2
    decoder_layers: int = 2
    attention_heads: int = 4
    ffn_dim: int = 512
    num_mel_bins: int = 80
    max_source_positions: int = 1500
    max_target_positions: int = 128
    dropout: float = 0.1


@dataclass
class ModelConfig:
    """`model` group: a pretrained Whisper by hub name or path, or the project's toy model."""

    name_or_path: str | None = None
    # Batches padded to the longest clip (x32 frames), positions sliced; true: Whisper's 30 s (README).
    pad_to_30s: bool = False
    dtype: str = "float32"
    # The encoder frozen and its outputs computed once per clip, cached on disk (src/pipelines/encoder_cache.py):
    # a training step runs the decoder alone. Needs trainer.frozen=[encoder], no MoE in the encoder, pad_to_30s.
    cached_encoder: bool = False
    encoder_cache_dtype: str = "float16"  # the states on disk (float32: exact; float16: half the bytes)
    toy: ToyArch | None = None
