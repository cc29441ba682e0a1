"""What the upcycling measures on calibration batches of the dense (or upcycled) model: the FFN inputs the
data-aware strategies fit, and the teacher-forced loss that prices an init end to end."""

from __future__ import annotations

from collections.abc import Iterator

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


def target_mask(batch: dict) -> torch.Tensor:
    """The positions a teacher-forced measure reads: the labelled target tokens (the decoder mask without labels)."""
    if "labels" in batch:
        return batch["labels"] != IGNORE_INDEX
    return batch["decoder_attention_mask"].bool()


@torch.no_grad()
def target_logits(model: nn.Module, batches: list[dict]) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(float32 logits at the target positions, their labels or None) per batch, teacher-forced, in eval mode."""
    was_training = model.training
    model.eval()
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    try:
        for batch in batches:
            logits = model(input_features=batch["input_features"].to(device, dtype),
                           decoder_input_ids=batch["decoder_input_ids"].to(device),
                           decoder_attention_mask=batch["decoder_attention_mask"].to(device)).logits
            mask = target_mask(batch).to(device)
            labels = batch["labels"].to(device)[mask] if "labels" in batch else None
            yield logits[mask].float(), labels
    finally:
        model.train(was_training)


def teacher_forced_ce(model: nn.Module, batches: list[dict]) -> float:
    """Token-weighted mean cross-entropy of the labels, teacher-forced, over ``batches`` (eval mode).

    The end-to-end cost of an init: per-layer output deviations do not say how errors compound
    through the stack, this does.
    """
    total, tokens = 0.0, 0
    for logits, labels in target_logits(model, batches):
        total += float(F.cross_entropy(logits, labels, reduction="sum"))
        tokens += labels.numel()
    return total / max(1, tokens)


def next_token_logprobs(model: nn.Module, batches: list[dict]) -> list[torch.Tensor]:
    """The model's next-token log-probabilities at the target positions of each batch (float32, on the CPU):
    the reference a later `teacher_forced_kl` compares against (the dense model, before it is upcycled)."""
    return [logits.log_softmax(-1).cpu() for logits, _ in target_logits(model, batches)]


def teacher_forced_kl(model: nn.Module, batches: list[dict], reference: list[torch.Tensor]) -> float:
    """Mean KL(reference || model) per target token, in nats: how far the model's next-token distributions
    moved from the reference's (the dense model's), teacher-forced, padding masked.

    An init budget that needs no labels the dense model has learned: on targets it does not know yet (e.g.
    translation for a pretrained Whisper) its cross-entropy is high, so a loss *ratio* is a loose budget; the
    KL measures disruption of what it predicts whatever the targets are, and is 0 for vanilla upcycling.
    """
    total, tokens = 0.0, 0
    for (logits, _), ref in zip(target_logits(model, batches), reference, strict=True):
        ref = ref.to(logits.device)
        total += float((ref.exp() * (ref - logits.log_softmax(-1))).sum())
        tokens += ref.shape[0]
    return total / max(1, tokens)


def labelled(batches: list[dict] | None) -> bool:
    """The end-to-end cost needs labels: batches from the data pipeline have them (hand-built ones may not)."""
    return bool(batches) and all("labels" in b for b in batches)
