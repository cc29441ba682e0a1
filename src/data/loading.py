"""From the `data` config to DataLoaders: instantiate the source, then bucketed batches."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from src.data.dataset import Collator, LengthBucketSampler, SpeechTranslationDataset
from src.data.features import N_FRAMES_30S
from src.data.schema import Example
from src.data.text import EOT, token_id
from src.utils.ranges import check_range

log = logging.getLogger(__name__)


@dataclass
class LoaderConfig:
    """`data.loader`: how examples become batches (shared by every source)."""

    max_batch_frames: int = 24000
    max_batch_size: int = 64
    num_workers: int = 0
    cache_features: bool = True
    pad_multiple: int = 32
    max_target_tokens: int = 128

    def check(self) -> None:
        for key, low in (("max_batch_frames", 1), ("max_batch_size", 1), ("num_workers", 0), ("pad_multiple", 1),
                         ("max_target_tokens", 1)):
            check_range(f"data.loader.{key}", getattr(self, key), low, integer=True)


def build_source(data_cfg: DictConfig):
    """The configured data source (`data._target_`), without the loader settings."""
    node = OmegaConf.to_container(data_cfg, resolve=True)
    node.pop("loader", None)
    return hydra.utils.instantiate(node, _convert_="all")


def loader_config(data_cfg: DictConfig) -> LoaderConfig:
    return LoaderConfig(**OmegaConf.to_container(data_cfg.get("loader", {}), resolve=True))


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
) -> DataLoader:
    dataset = SpeechTranslationDataset(
        examples, source.clips, tokenizer, n_mels=n_mels, max_target_tokens=cfg.max_target_tokens,
        cache_features=cfg.cache_features,
    )
    lengths = [N_FRAMES_30S if pad_to_30s else dataset.frames(i) for i in range(len(dataset))]
    sampler = LengthBucketSampler(lengths, cfg.max_batch_frames, cfg.max_batch_size, shuffle=shuffle, seed=seed,
                                  num_replicas=num_replicas, rank=rank)
    collate = Collator(token_id(tokenizer, EOT), pad_to_30s=pad_to_30s, pad_multiple=cfg.pad_multiple)
    # Its own generator: a DataLoader without one draws its workers' base seed from the global torch RNG each
    # time an epoch's iterator starts, which shifts the dropout stream; a resumed run starts its iterator at
    # another point of that stream than the uninterrupted run did, and would then draw different dropout.
    return DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0, generator=torch.Generator().manual_seed(seed),
    )
