"""From the `data` config to DataLoaders: instantiate the source, then bucketed batches."""

from __future__ import annotations

import logging

import hydra
import torch
from torch.utils.data import DataLoader

from src.data.config import DataConfig, LoaderConfig
from src.data.dataset import Collator, LengthBucketSampler, SpeechTranslationDataset
from src.data.encoder_states import EncoderStates
from src.data.features import N_FRAMES_30S
from src.data.schema import Example
from src.data.text import EOT, token_id

log = logging.getLogger(__name__)


def build_source(data: DataConfig):
    """The configured data source (`data._target_` with its options; the loader settings are not its business)."""
    return hydra.utils.instantiate({"_target_": data.target, **data.options}, _convert_="all")


def fixed_window(cfg: LoaderConfig, pad_to_30s: bool) -> int | None:
    """The frames every clip is padded to: 30 s, data.loader.window_frames, or None (each batch its longest)."""
    return N_FRAMES_30S if pad_to_30s else cfg.window_frames


def make_loader(
    examples: list[Example],
    source,
    tokenizer,
    cfg: LoaderConfig,
    *,
    n_mels: int,
    pad_to_30s: bool,
    shuffle: bool,
    seed: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
    encoder_states: EncoderStates | None = None,
) -> DataLoader:
    """Bucketed batches of ``examples``: audio features, or a frozen encoder's cached states (``encoder_states``)."""
    dataset = SpeechTranslationDataset(
        examples, source.clips, tokenizer, n_mels=n_mels, max_target_tokens=cfg.max_target_tokens,
        cache_features=cfg.cache_features, encoder_states=encoder_states,
    )
    fixed = fixed_window(cfg, pad_to_30s)
    lengths = [fixed or dataset.frames(i) for i in range(len(dataset))]
    sampler = LengthBucketSampler(lengths, cfg.max_batch_frames, cfg.max_batch_size, shuffle=shuffle, seed=seed,
                                  num_replicas=num_replicas, rank=rank)
    collate = Collator(token_id(tokenizer, EOT), pad_to_30s=pad_to_30s, pad_multiple=cfg.pad_multiple,
                       window_frames=None if pad_to_30s else cfg.window_frames)
    # Its own generator: a DataLoader without one draws its workers' base seed from the global torch RNG each
    # time an epoch's iterator starts, which shifts the dropout stream; a resumed run starts its iterator at
    # another point of that stream than the uninterrupted run did, and would then draw different dropout.
    return DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0, generator=torch.Generator().manual_seed(seed),
    )
