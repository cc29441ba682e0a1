"""What the upcycling measures on calibration batches of the dense (or upcycled) model: the FFN inputs the
data-aware strategies fit, and the teacher-forced loss that prices an init end to end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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


@dataclass
class TeacherForced:
    """What one teacher-forced pass over calibration batches measured (one forward per batch for all of it)."""

    ce: float | None  # token-weighted mean cross-entropy of the labels (None without labels)
    kl: float | None  # mean KL(reference || model) per target token (None without a reference)
    logprobs: list[torch.Tensor] | None  # per batch, float32 on the CPU (None unless asked for)


def teacher_forced(model: nn.Module, batches: list[dict], reference: list[torch.Tensor] | None = None,
                   keep_logprobs: bool = False) -> TeacherForced:
    """Cross-entropy, KL to ``reference`` and (optionally) the log-probabilities, in one pass (eval mode).

    The cross-entropy is an init's end-to-end cost (per-layer output deviations do not say how errors compound
    through the stack). The KL(reference || model), in nats per target token, measures how far the model's
    next-token distributions moved from the reference's (the dense model's), padding masked: an init budget
    that needs no labels the dense model has learned. On targets it does not know yet (translation for a
    pretrained Whisper) its cross-entropy is high, so a loss *ratio* is a loose budget; the KL measures
    disruption of what it predicts whatever the targets are, and is 0 for vanilla upcycling.
    """
    ce_sum, kl_sum, tokens, kept, has_labels = 0.0, 0.0, 0, [], True
    passes = target_logits(model, batches)
    pairs = zip(passes, reference, strict=True) if reference is not None else ((p, None) for p in passes)
    for (logits, labels), ref in pairs:
        logp = logits.log_softmax(-1)
        tokens += logits.shape[0]
        if labels is None:
            has_labels = False
        elif has_labels:
            ce_sum += float(F.nll_loss(logp, labels, reduction="sum"))
        if ref is not None:  # in float64 on renormalised distributions: a float32 KL came out -2.8e-9 at vanilla
            ref64 = ref.to(logits.device, torch.float64)
            ref64 = ref64 - ref64.logsumexp(-1, keepdim=True)
            kl_sum += float((ref64.exp() * (ref64 - logits.double().log_softmax(-1))).sum())
        if keep_logprobs:
            kept.append(logp.cpu())
    n = max(1, tokens)
    return TeacherForced(ce=ce_sum / n if has_labels and batches else None,
                         kl=max(0.0, kl_sum / n) if reference is not None else None,  # >= 0 up to rounding
                         logprobs=kept if keep_logprobs else None)


def labelled(batches: list[dict] | None) -> bool:
    """The end-to-end cost needs labels: batches from the data pipeline have them (hand-built ones may not)."""
    return bool(batches) and all("labels" in b for b in batches)
