"""The Whisper backbone: loading by hub name or path, the toy config, and short-clip encoding.

`pad_to_30s=false` puts an encoder in the model that accepts fewer than 3000 frames by slicing the (fixed,
sinusoidal) positional embeddings; at exactly 3000 frames it runs transformers' own code.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import torch
from torch import nn
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperTokenizerFast
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from src.data.dataset import ENCODER_STATES
from src.data.text import EOT, SOT, token_id
from src.models.config import ToyArch
from src.utils.errors import UserError
from src.utils.safetensors_file import safetensors_problem

log = logging.getLogger(__name__)


def encoder_lengths(frames):
    """Encoder positions for ``frames`` log-mel frames (an int or a tensor of lengths): Whisper's conv stem
    halves the length (its second conv has stride 2 and padding 1)."""
    return (frames + 1) // 2


def encoder_audio_mask(n_frames: int, feature_lengths: torch.Tensor | None, batch: int) -> torch.Tensor:
    """(batch, encoder positions) True where a position holds audio, False on the batch's padding (every
    position when the lengths are unknown)."""
    t_enc = encoder_lengths(n_frames)
    if feature_lengths is None:
        return torch.ones(batch, t_enc, dtype=torch.bool)
    return torch.arange(t_enc)[None, :] < encoder_lengths(feature_lengths.cpu())[:, None]


class ShortFormWhisperEncoder(WhisperEncoder):
    """WhisperEncoder that takes any even number of frames up to 30 s (positions sliced)."""

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        full = self.config.max_source_positions * self.conv1.stride[0] * self.conv2.stride[0]
        n = input_features.shape[-1]
        if n == full or output_attentions:
            return super().forward(input_features, attention_mask, head_mask, output_attentions,
                                   output_hidden_states, return_dict, **kwargs)
        if n > full:
            raise UserError(f"input has {n} mel frames; the encoder takes at most {full} (30 s)")
        x = nn.functional.gelu(self.conv1(input_features))
        x = nn.functional.gelu(self.conv2(x)).permute(0, 2, 1)
        hidden = x + self.embed_positions.weight[: x.shape[1]]
        hidden = nn.functional.dropout(hidden, p=self.dropout, training=self.training)
        states = () if output_hidden_states else None
        for idx, layer in enumerate(self.layers):
            if output_hidden_states:
                states = states + (hidden,)
            if self.training and torch.rand([]) < self.layerdrop:
                continue
            extra = {"layer_head_mask": head_mask[idx] if head_mask is not None else None} if _HEAD_MASK_ARG else {}
            out = layer(hidden, None, **extra)
            hidden = out[0] if isinstance(out, tuple) else out
        hidden = self.layer_norm(hidden)
        if output_hidden_states:
            states = states + (hidden,)
        if return_dict is False:
            return tuple(v for v in (hidden, states) if v is not None)
        return BaseModelOutput(last_hidden_state=hidden, hidden_states=states)


def _layer_takes_head_mask() -> bool:
    from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer

    return "layer_head_mask" in inspect.signature(WhisperEncoderLayer.forward).parameters


_HEAD_MASK_ARG = _layer_takes_head_mask()


def set_pad_to_30s(model: WhisperForConditionalGeneration, pad_to_30s: bool) -> None:
    """Put transformers' exact 30 s encoder or the short-clip one in the model's encoder slot. The new module
    is built empty (on the meta device) and adopts the old one's submodules, so no weight is copied."""
    encoder = model.get_encoder()
    cls = WhisperEncoder if pad_to_30s else ShortFormWhisperEncoder
    if type(encoder) is not cls:
        with torch.device("meta"):
            new = cls(encoder.config)
        for name, child in encoder.named_children():
            setattr(new, name, child)
        new.gradient_checkpointing = encoder.gradient_checkpointing
        model.model.encoder = new.train(encoder.training)
    model.config.pad_to_30s = bool(pad_to_30s)


def toy_config(tokenizer: WhisperTokenizerFast, arch: ToyArch) -> WhisperConfig:
    eot = token_id(tokenizer, EOT)
    return WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=arch.num_mel_bins,
        encoder_layers=arch.encoder_layers,
        decoder_layers=arch.decoder_layers,
        encoder_attention_heads=arch.attention_heads,
        decoder_attention_heads=arch.attention_heads,
        encoder_ffn_dim=arch.ffn_dim,
        decoder_ffn_dim=arch.ffn_dim,
        d_model=arch.d_model,
        max_source_positions=arch.max_source_positions,
        max_target_positions=arch.max_target_positions,
        dropout=arch.dropout,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=token_id(tokenizer, SOT),
        suppress_tokens=[],
        begin_suppress_tokens=None,
    )


def load_moe_checkpoint(path: Path, config: WhisperConfig, dtype: torch.dtype) -> WhisperForConditionalGeneration:
    """An upcycled checkpoint: rebuild the MoE structure from config.moe, then load strictly."""
    from safetensors.torch import load_file

    from src.models.whisper_moe import build_moe_structure, renamed_moe_keys

    files = sorted(path.glob("model*.safetensors"))
    if not files:
        raise UserError(f"{path} has no model*.safetensors")
    model = WhisperForConditionalGeneration(config)
    build_moe_structure(model)
    state = {}
    for f in files:
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(renamed_moe_keys(state), strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]  # tied to the token embeddings
    if missing or unexpected:
        raise UserError(f"{path}: weights do not match config.moe (missing {missing[:4]}, unexpected {unexpected[:4]})")
    model.tie_weights()
    return model.to(dtype).eval()


def load_whisper(name_or_path: str | Path, pad_to_30s: bool = True, dtype: str = "float32"):
    """(model, tokenizer) from a hub name or a local directory (safetensors only; a damaged file is one line)."""
    weights = Path(name_or_path) / "model.safetensors"
    if weights.is_file() and (problem := safetensors_problem(weights)):
        raise UserError(f"{problem}: this checkpoint cannot be loaded; rerun the training command (it resumes from "
                        "its last usable checkpoint) or pass another checkpoint=DIR")
    try:
        config = WhisperConfig.from_pretrained(str(name_or_path))
        if getattr(config, "moe", None):
            model = load_moe_checkpoint(Path(name_or_path), config, getattr(torch, dtype))
        else:
            model = WhisperForConditionalGeneration.from_pretrained(
                str(name_or_path), torch_dtype=getattr(torch, dtype), use_safetensors=True
            )
        tokenizer = WhisperTokenizerFast.from_pretrained(str(name_or_path))
    except OSError as e:
        raise UserError(
            f"cannot load a Whisper checkpoint from '{name_or_path}': {e}. Set model.name_or_path to a hub "
            "name (e.g. openai/whisper-small) with network access, or to a local directory holding "
            "config.json, model.safetensors and the tokenizer files."
        ) from e
    set_pad_to_30s(model, pad_to_30s)
    return model, tokenizer


def has_audio(batch: dict) -> bool:
    """Whether a batch has anything for the encoder side (features, or a frozen encoder's cached states)."""
    return "input_features" in batch or ENCODER_STATES in batch


def encoder_inputs(batch: dict, device: torch.device, dtype: torch.dtype | None = None) -> dict:
    """The encoder-side keyword of a Whisper call: the audio features, or a frozen encoder's cached outputs (then
    the encoder does not run: transformers skips it when `encoder_outputs` is given)."""
    if ENCODER_STATES in batch:
        states = batch[ENCODER_STATES].to(device, dtype or torch.float32, non_blocking=True)
        return {"encoder_outputs": BaseModelOutput(last_hidden_state=states)}
    feats = batch["input_features"].to(device, non_blocking=True)
    return {"input_features": feats if dtype is None else feats.to(dtype)}
