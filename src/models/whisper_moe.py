"""MoE Whisper layers: a Whisper encoder/decoder layer whose FFN slot holds one `MoEBlock` (`mlp`), the helpers
that install and find them, and the collector that gathers each block's `Routing` record per forward.

The layers compute attention exactly as transformers' WhisperEncoderLayer/WhisperDecoderLayer do (the same
modules, adopted from the dense layer); only the FFN half differs: `final_layer_norm -> mlp -> dropout ->
residual`. Whisper's activation dropout sits between fc1 and fc2 of a dense FFN; the experts have no such
point exposed, and every Whisper checkpoint sets it to 0, so an MoE layer refuses a non-zero one.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.whisper.modeling_whisper import WhisperDecoderLayer, WhisperEncoderLayer

from src.models.config import MoEConfig
from src.models.moe import MoEBlock, Routing
from src.utils.errors import UserError
from src.utils.structured import to_dataclass


def _adopt(layer: nn.Module, dense: nn.Module, block: MoEBlock, names: tuple[str, ...]) -> None:
    """Take the dense layer's attention modules and settings (the same objects, so no weight is copied) and put
    ``block`` in the FFN slot, registered in the dense layer's order (attention, FFN, final norm)."""
    nn.Module.__init__(layer)
    if getattr(dense, "activation_dropout", 0.0):
        raise UserError(f"config.activation_dropout={dense.activation_dropout}: MoE layers apply no activation "
                        "dropout (every Whisper checkpoint has 0); set it to 0 before upcycling")
    layer.embed_dim, layer.dropout = dense.embed_dim, dense.dropout
    for name in names:
        setattr(layer, name, getattr(dense, name))
    layer.mlp = block
    layer.final_layer_norm = dense.final_layer_norm


class _MoEFFNSlot:
    """The FFN half both MoE layers share: final_layer_norm -> mlp -> dropout -> residual."""

    def _ffn(self, hidden_states: torch.Tensor) -> torch.Tensor:
        out, _ = self.mlp(self.final_layer_norm(hidden_states))  # the record reaches the RoutingCollector
        return hidden_states + F.dropout(out, p=self.dropout, training=self.training)


class MoEEncoderLayer(_MoEFFNSlot, WhisperEncoderLayer):
    """WhisperEncoderLayer with an MoE block in the FFN slot."""

    def __init__(self, dense: WhisperEncoderLayer, block: MoEBlock):
        _adopt(self, dense, block, ("self_attn", "self_attn_layer_norm"))

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                layer_head_mask: torch.Tensor | None = None, output_attentions: bool = False):
        residual = hidden_states
        hidden_states, attn_weights = self.self_attn(
            hidden_states=self.self_attn_layer_norm(hidden_states), attention_mask=attention_mask,
            layer_head_mask=layer_head_mask, output_attentions=output_attentions)
        hidden_states = residual + F.dropout(hidden_states, p=self.dropout, training=self.training)
        hidden_states = self._ffn(hidden_states)
        if hidden_states.dtype == torch.float16:
            clamp_value = torch.finfo(hidden_states.dtype).max - 1000
            hidden_states = torch.clamp(hidden_states, min=-clamp_value, max=clamp_value)
        return hidden_states, attn_weights


class MoEDecoderLayer(_MoEFFNSlot, WhisperDecoderLayer):
    """WhisperDecoderLayer with an MoE block in the FFN slot."""

    def __init__(self, dense: WhisperDecoderLayer, block: MoEBlock):
        _adopt(self, dense, block, ("self_attn", "self_attn_layer_norm", "encoder_attn", "encoder_attn_layer_norm"))

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                encoder_hidden_states: torch.Tensor | None = None, encoder_attention_mask: torch.Tensor | None = None,
                layer_head_mask: torch.Tensor | None = None, cross_attn_layer_head_mask: torch.Tensor | None = None,
                past_key_values=None, output_attentions: bool | None = False, use_cache: bool | None = True,
                cache_position: torch.LongTensor | None = None, **kwargs):
        past_key_values = kwargs.pop("past_key_value", past_key_values)  # transformers' deprecated spelling
        residual = hidden_states
        hidden_states, self_attn_weights = self.self_attn(
            hidden_states=self.self_attn_layer_norm(hidden_states), past_key_values=past_key_values,
            attention_mask=attention_mask, layer_head_mask=layer_head_mask, output_attentions=output_attentions,
            cache_position=cache_position)
        hidden_states = residual + F.dropout(hidden_states, p=self.dropout, training=self.training)
        cross_attn_weights = None
        if encoder_hidden_states is not None:
            residual = hidden_states
            hidden_states, cross_attn_weights = self.encoder_attn(
                hidden_states=self.encoder_attn_layer_norm(hidden_states), key_value_states=encoder_hidden_states,
                attention_mask=encoder_attention_mask, layer_head_mask=cross_attn_layer_head_mask,
                past_key_values=past_key_values, output_attentions=output_attentions)
            hidden_states = residual + F.dropout(hidden_states, p=self.dropout, training=self.training)
        outputs = (self._ffn(hidden_states),)
        if output_attentions:
            outputs += (self_attn_weights, cross_attn_weights)
        return outputs


MOE_LAYER = {WhisperEncoderLayer: MoEEncoderLayer, WhisperDecoderLayer: MoEDecoderLayer}


def whisper_ffn_layers(model: nn.Module, where: str, every: int) -> list[tuple[str, nn.Module]]:
    """(name, layer) of the layers whose FFN becomes MoE: every n-th layer of encoder/decoder."""
    out = []
    for side in ("encoder", "decoder"):
        if where not in (side, "both"):
            continue
        for i, layer in enumerate(getattr(model.model, side).layers):
            if (i + 1) % every == 0:
                out.append((f"{side}.layers.{i}", layer))
    return out


def install_moe(model: nn.Module, name: str, block: MoEBlock) -> nn.Module:
    """Replace the dense layer ``name`` ("encoder.layers.3") by its MoE layer holding ``block``; returns it."""
    side, _, index = name.split(".")
    layers = getattr(model.model, side).layers
    dense = layers[int(index)]
    moe = MOE_LAYER[next(c for c in type(dense).__mro__ if c in MOE_LAYER)](dense, block)
    layers[int(index)] = moe
    return moe


def moe_blocks(model: nn.Module) -> list[tuple[str, MoEBlock]]:
    """(layer name, block) of every MoE block, e.g. ("decoder.layers.1", block)."""
    return [(name.removeprefix("model.").removesuffix(".mlp"), m) for name, m in model.named_modules()
            if isinstance(m, MoEBlock)]


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
    for name, layer in whisper_ffn_layers(model, cfg.where, cfg.every):
        d_ff, d_model = layer.fc1.weight.shape
        install_moe(model, name, MoEBlock(d_model, d_ff, cfg))


def renamed_moe_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict written before the MoE block had its own slot (`.fc1.router.` ...) in today's names
    (`.mlp.router.` ...); other keys unchanged."""
    old = (".fc1.router.", ".fc1.experts.", ".fc1.shared_expert.")
    return {next((k.replace(".fc1.", ".mlp.") for o in old if o in k), k): v for k, v in state.items()}


class RoutingCollector:
    """Gathers every MoE block's `Routing` record during a forward pass: `with collector.collect() as records:`
    yields {layer name: Routing}, filled by the forward run inside the block.

    transformers' layer loops pass only hidden states on, so the records are read off the blocks' outputs by
    forward hooks, registered once (a compiled model traces them once): the one hook mechanism on MoE blocks.
    Outside `collect()` (evaluation forwards, gradient checkpointing's recomputation in backward) nothing is
    kept; `listeners` (callables (layer name, block inputs, Routing)) see every record, in or out of it (the
    evaluation's routing counts).
    """

    def __init__(self, model: nn.Module) -> None:
        self.records: dict[str, Routing] = {}
        self.masks: dict[str, torch.Tensor] = {}
        self.listeners: list = []
        self.active = False
        blocks = moe_blocks(model)
        self.hooks = [block.register_forward_hook(partial(self._keep, name)) for name, block in blocks]
        mask_hooks = [block.register_forward_pre_hook(partial(self._mask, name.split(".")[0]), with_kwargs=True)
                      for name, block in blocks if block.cfg.capacity_factor is not None]
        self.needs_masks = bool(mask_hooks)  # only a capacity limit reads the batch's token masks
        self.hooks += mask_hooks

    def _keep(self, name: str, module: nn.Module, inputs, output) -> None:
        if self.active:
            self.records[name] = output[1]
        for listen in self.listeners:
            listen(name, inputs, output[1])

    def _mask(self, side: str, module: nn.Module, args, kwargs):
        """Hand the block its side's token mask (capacity counts real tokens only) when it fits the input."""
        mask = self.masks.get(side) if self.active else None
        if mask is None or "token_mask" in kwargs or mask.numel() != args[0].shape[:-1].numel():
            return None
        return args, {**kwargs, "token_mask": mask.reshape(args[0].shape[:-1])}

    @contextlib.contextmanager
    def collect(self, masks: dict[str, torch.Tensor | None] | None = None):
        """Collect the records of the forward run inside; ``masks`` ({"encoder"/"decoder": (B, T) True on real
        tokens}) reach the blocks whose capacity limit reads them."""
        self.records.clear()
        self.masks = {k: v for k, v in (masks or {}).items() if v is not None}
        self.active = True
        try:
            yield self.records
        finally:
            self.active = False
            self.records.clear()  # consumers read the records inside the block; nothing outlives the step
            self.masks = {}

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()
