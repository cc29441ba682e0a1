"""Batched decoding with the target-language prompt forced per example, and routing statistics
(expert usage per direction) collected from the MoE layers while decoding."""

from __future__ import annotations

import contextlib

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig
from transformers.generation.utils import GenerationMixin

from src.data.languages import COVOST2_EN_XX
from src.data.text import EOT, prompt_ids, token_id
from src.evaluation.config import DecodeConfig
from src.models.backbone import encoder_inputs, encoder_lengths, has_audio
from src.models.whisper_moe import RoutingCollector, moe_blocks


class RoutingRecorder:
    """Counts top-k assignments per (MoE layer, direction, expert); encoder padding excluded.

    A listener of the model's `RoutingCollector` (its records, not hooks of its own); one bincount per layer
    call (keys lang * E + expert), so decoding pays no per-row Python loop.
    """

    LANGS = ("en", *COVOST2_EN_XX)

    def __init__(self, model, collector: RoutingCollector | None = None) -> None:
        self.model, self.collector, self.own = model, collector, collector is None
        self.num_experts = {name: block.cfg.num_experts for name, block in moe_blocks(model)}
        self.counts: dict[str, torch.Tensor] = {}  # layer -> (len(LANGS), E)
        self.lang_ids = torch.zeros(0, dtype=torch.long)
        self.enc_lengths: torch.Tensor | None = None

    def _record(self, name: str, inputs, routing) -> None:
        idx = routing.idx.cpu()
        rows = inputs[0].shape[0]  # batch (encoder) or batch * beams (decoder)
        per_row = idx.reshape(rows, -1, idx.shape[-1])
        example = torch.arange(rows) // max(1, rows // len(self.lang_ids))
        valid = torch.ones(per_row.shape[:2], dtype=torch.bool)
        if name.startswith("encoder") and self.enc_lengths is not None:
            valid = torch.arange(per_row.shape[1])[None] < self.enc_lengths[example][:, None]
        E = self.num_experts[name]
        keys = self.lang_ids[example][:, None, None] * E + per_row
        counts = torch.bincount(keys[valid].reshape(-1), minlength=len(self.LANGS) * E).view(-1, E)
        self.counts[name] = counts if name not in self.counts else self.counts[name] + counts

    @contextlib.contextmanager
    def batch(self, langs: list[str], feature_lengths: torch.Tensor | None):
        self.lang_ids = torch.tensor([self.LANGS.index(lang) for lang in langs])
        self.enc_lengths = None if feature_lengths is None else encoder_lengths(feature_lengths).cpu()
        yield

    def __enter__(self):
        if self.collector is None:
            self.collector = RoutingCollector(self.model)
        self.collector.listeners.append(self._record)
        return self

    def __exit__(self, *exc):
        self.collector.listeners.remove(self._record)
        if self.own:
            self.collector.remove()
            self.collector = None

    def as_dict(self) -> dict:
        """{layer: {direction: [fraction of assignments per expert]}} for the directions seen."""
        return {layer: {self.LANGS[i]: (c.float() / c.sum()).tolist() for i, c in enumerate(counts) if c.sum()}
                for layer, counts in self.counts.items()}


@torch.no_grad()
def decode(model, tokenizer, loader, cfg: DecodeConfig, desc: str = "decoding", progress: bool = True,
           recorder: RoutingRecorder | None = None, skips=None) -> dict[str, str]:
    """{example id: hypothesis text} for every example the loader yields; bad clips go to `skips`."""
    model.eval()
    device = next(model.parameters()).device
    eot = token_id(tokenizer, EOT)
    # The decoder has max_target_positions positions; the prompt takes the first ones.
    n_prompt = len(prompt_ids(tokenizer, "en", "transcribe"))
    max_new = min(cfg.max_new_tokens, model.config.max_target_positions - n_prompt)
    gen = GenerationConfig(
        num_beams=1 if cfg.greedy else cfg.beam, do_sample=False, length_penalty=cfg.length_penalty,
        max_new_tokens=max_new, eos_token_id=eot, pad_token_id=eot,
        decoder_start_token_id=model.config.decoder_start_token_id,
    )
    hyps: dict[str, str] = {}
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        for reason, ex_id, detail in batch.get("skipped", []):
            if skips is not None:
                skips.skip(reason, ex_id, detail)
        if not has_audio(batch):
            continue
        prompts = torch.tensor([prompt_ids(tokenizer, lang, "transcribe" if lang == "en" else "translate")
                                for lang in batch["tgt_langs"]], device=device)
        ctx = recorder.batch(batch["tgt_langs"], batch.get("feature_lengths")) if recorder else contextlib.nullcontext()
        with ctx:
            out = GenerationMixin.generate(
                model, **encoder_inputs(batch, device, next(model.parameters()).dtype), decoder_input_ids=prompts,
                generation_config=gen,
            )
        texts = tokenizer.batch_decode(out[:, prompts.shape[1]:], skip_special_tokens=True)
        hyps.update({i: t.strip() for i, t in zip(batch["ids"], texts)})
    return hyps
