"""What the upcycling measures on calibration batches of the dense (or upcycled) model: the FFN inputs the
data-aware strategies fit, and the teacher-forced loss that prices an init end to end."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from src.data.text import IGNORE_INDEX
from src.models.backbone import encoder_audio_mask


@torch.no_grad()
def capture_ffn_inputs(model: nn.Module, layers: list[tuple[str, nn.Module]], batches: list[dict],
                       max_tokens: int = 16384, seed: int = 0) -> dict[str, torch.Tensor]:
    """The inputs of each chosen FFN (final_layer_norm outputs) over ``batches``, padding excluded.

    Decoder inputs are teacher-forced states. At most ``max_tokens`` per layer are kept: a seeded
    share of each batch, so memory stays bounded for large models and many calibration examples.
    """
    captured: dict[str, list[torch.Tensor]] = {name: [] for name, _ in layers}
    per_batch = -(-max_tokens // max(1, len(batches)))
    gen = torch.Generator().manual_seed(seed)
    state: dict = {}
    hooks = []
    for name, layer in layers:
        def hook(_m, _inp, out, name=name):
            mask = state["enc"] if name.startswith("encoder") else state["dec"]
            x = out[mask[:, : out.shape[1]].to(out.device)].float().cpu()
            captured[name].append(x[torch.randperm(x.shape[0], generator=gen)[:per_batch]])
        hooks.append(layer.final_layer_norm.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for batch in batches:
            feats = batch["input_features"]
            state["enc"] = encoder_audio_mask(feats.shape[-1], batch.get("feature_lengths"), feats.shape[0])
            state["dec"] = batch["decoder_attention_mask"].bool()
            dtype = next(model.parameters()).dtype
            model(input_features=feats.to(device, dtype), decoder_input_ids=batch["decoder_input_ids"].to(device),
                  decoder_attention_mask=batch["decoder_attention_mask"].to(device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {name: torch.cat(xs)[:max_tokens] for name, xs in captured.items() if xs}


@torch.no_grad()
def teacher_forced_ce(model: nn.Module, batches: list[dict]) -> float:
    """Token-weighted mean cross-entropy of the labels, teacher-forced, over ``batches`` (eval mode).

    The end-to-end cost of an init: per-layer output deviations do not say how errors compound
    through the stack, this does.
    """
    was_training = model.training
    model.eval()
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    total, tokens = 0.0, 0
    try:
        for batch in batches:
            logits = model(input_features=batch["input_features"].to(device, dtype),
                           decoder_input_ids=batch["decoder_input_ids"].to(device),
                           decoder_attention_mask=batch["decoder_attention_mask"].to(device)).logits
            labels = batch["labels"].to(device)
            total += float(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                           ignore_index=IGNORE_INDEX, reduction="sum"))
            tokens += int((labels != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    return total / max(1, tokens)


def labelled(batches: list[dict] | None) -> bool:
    """The end-to-end cost needs labels: batches from the data pipeline have them (hand-built ones may not)."""
    return bool(batches) and all("labels" in b for b in batches)
