"""The frozen encoder's outputs for every clip a run reads, computed once and cached (model.cached_encoder).

The key is what the states depend on: the encoder's weights (a hash of their bytes), the window (30 s padding:
3000 frames), the mel bins, the corpus (the data source and its options, and the clip keys read) and the storage
dtype. Every row and seed of a study shares one cache; a cache built by another model, window or corpus is never
reused, and building a new one says which part of the key differs from the newest existing one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from src.data.config import DataConfig, LoaderConfig
from src.data.encoder_states import META, EncoderStates, write_encoder_states
from src.data.loading import fixed_window, make_loader
from src.data.schema import Example
from src.utils.runlock import exclusive

log = logging.getLogger(__name__)


def encoder_fingerprint(model) -> str:
    """sha256 of the encoder's parameters and buffers, in state-dict order (what its outputs depend on)."""
    h = hashlib.sha256()
    for name, t in model.model.encoder.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_meta(model, data: DataConfig, clips: list[str], dtype: str, window: int) -> dict:
    corpus = hashlib.sha256(json.dumps([data.target, data.options, clips], sort_keys=True, default=str).encode())
    return {"encoder": encoder_fingerprint(model), "window_frames": window,
            "n_mels": int(model.config.num_mel_bins), "corpus": corpus.hexdigest()[:16], "dtype": dtype,
            "clips": len(clips), "positions": window // 2, "width": int(model.config.d_model)}


KEY_PARTS = ("encoder", "window_frames", "n_mels", "corpus", "dtype")


def _why_new(root: Path, meta: dict) -> str:
    """Which parts of the key differ from the closest cache already under ``root`` (or that there is none)."""
    others = [(p.parent.name, json.loads(p.read_text())) for p in sorted(root.glob(f"*/{META}"))]
    if not others:
        return "no cache yet"
    diffs = sorted(([k for k in KEY_PARTS if old.get(k) != meta[k]], name) for name, old in others)
    changed, name = min(diffs, key=lambda d: len(d[0]))
    return f"{', '.join(changed) or 'key'} differ(s) from {name}"


def encoder_cache(model, tokenizer, source, examples: list[Example], data: DataConfig, loader: LoaderConfig,
                  cache_dir: str | Path, dtype: str = "float16", progress: bool = True,
                  pad_to_30s: bool = True) -> EncoderStates:
    """The cached states of every clip of ``examples``: reused when its key matches, else built (once, under an
    inter-process lock: parallel jobs wait and reuse it)."""
    first: dict[str, Example] = {}
    for ex in examples:
        first.setdefault(ex.audio, ex)
    meta = cache_meta(model, data, sorted(first), dtype, int(fixed_window(loader, pad_to_30s)))
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(cache_dir) / "encoder_states"
    directory = root / key
    with exclusive(root / f"{key}.lock"):
        if (directory / META).exists():
            log.info("encoder cache: %s (%d clips, reused)", directory, len(first))
            return EncoderStates(directory)
        log.info("encoder cache: building %s for %d clips (%s)", directory, len(first), _why_new(root, meta))
        t0 = time.perf_counter()
        states = _build(model, tokenizer, source, list(first.values()), loader, directory, meta, progress,
                        pad_to_30s)
        log.info("encoder cache: built in %.1f s", time.perf_counter() - t0)
        return states


@torch.inference_mode()
def _build(model, tokenizer, source, examples: list[Example], loader_cfg: LoaderConfig, directory: Path,
           meta: dict, progress: bool, pad_to_30s: bool) -> EncoderStates:
    """Run the encoder (eval mode, the fixed window) over one example per clip and write its outputs in order; a
    clip that cannot be read is left out (the dataset then skips its examples as missing_clip, counted)."""
    loader = make_loader(examples, source, tokenizer, loader_cfg, n_mels=meta["n_mels"], pad_to_30s=pad_to_30s,
                         shuffle=False)
    clip_of = {ex.id: ex.audio for ex in examples}
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    was_training = model.training
    model.eval()

    def batches():
        for batch in tqdm(loader, desc="encoder cache", disable=not progress, leave=False):
            if "input_features" not in batch:
                continue
            out = model.model.encoder(batch["input_features"].to(device, dtype)).last_hidden_state
            yield [clip_of[i] for i in batch["ids"]], batch["feature_lengths"].tolist(), out

    try:
        shape = (len(examples), meta["positions"], meta["width"])
        return write_encoder_states(directory, shape, meta["dtype"], meta, batches())
    finally:
        model.train(was_training)


def states_builder(model, tokenizer, source, data: DataConfig, cache_dir: str | Path, dtype: str, pad_to_30s: bool,
                   progress: bool = True):
    """examples -> their clips' cached encoder states, for a run with model.cached_encoder (training and
    `src.evaluate` of its run dir build the same keys, so they share the caches)."""
    return functools.partial(encoder_cache, model, tokenizer, source, data=data, loader=data.loader,
                             cache_dir=cache_dir, dtype=dtype, progress=progress, pad_to_30s=pad_to_30s)
