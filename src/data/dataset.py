"""Examples -> model batches: features (computed once per clip), decoder prompts and labels,
length-bucketed batch sampling by total padded frames."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Sampler

from src.data.audio import ClipError, ClipStore
from src.data.encoder_states import EncoderStates
from src.data.features import HOP, N_FRAMES_30S, batch_frames, clip_features, pad_features
from src.data.schema import Example
from src.data.text import IGNORE_INDEX, encode_target
from src.utils.errors import UserError

FRAMES_PER_SECOND = 16_000 // HOP
# A batch's key for a frozen encoder's cached outputs (B, positions, width), in place of input_features: the
# model then runs its decoder alone (src/models/backbone.py encoder_inputs).
ENCODER_STATES = "encoder_hidden_states"


class SpeechTranslationDataset(Dataset):
    """Featurizes a clip on first use; with `cache_features` each clip is computed once per process
    (the 15 directions of a clip then share the features). With ``encoder_states`` (a frozen encoder's cached
    outputs) an item carries the clip's states instead of its features."""

    def __init__(
        self,
        examples: Sequence[Example],
        clips: ClipStore,
        tokenizer,
        n_mels: int = 80,
        max_target_tokens: int = 128,
        cache_features: bool = False,
        encoder_states: EncoderStates | None = None,
    ) -> None:
        self.examples = list(examples)
        self.encoder_states = encoder_states
        self.clips = clips
        self.tokenizer = tokenizer
        self.n_mels = n_mels
        self.max_target_tokens = max_target_tokens
        self.cache_features = cache_features
        self._cache: dict[str, tuple[torch.Tensor, float]] = {}
        # Each example's tokens, kept after first use: every epoch would otherwise tokenize it again (~1 ms
        # an example, most of it the fast tokenizer's vocabulary size behind the prompt; a toy demo job
        # tokenizes ~10k examples).
        self._targets: dict[int, tuple[list[int], list[int]]] = {}

    def __len__(self) -> int:
        return len(self.examples)

    def frames(self, i: int) -> int:
        """Feature frames of example i (from its duration; 30 s when unknown)."""
        d = self.examples[i].duration
        return N_FRAMES_30S if d is None else max(1, math.ceil(d * FRAMES_PER_SECOND))

    def features(self, key: str) -> tuple[torch.Tensor, float]:
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        feats = clip_features(torch.from_numpy(self.clips.load(key)), self.n_mels)
        if self.cache_features:
            self._cache[key] = feats
        return feats

    def target(self, i: int) -> tuple[list[int], list[int]]:
        """(decoder inputs, labels) of example i (data/text.py encode_target), computed once."""
        hit = self._targets.get(i)
        if hit is None:
            ex = self.examples[i]
            hit = self._targets[i] = encode_target(self.tokenizer, ex.translation, ex.tgt_lang, ex.task,
                                                   self.max_target_tokens)
        return hit

    def __getitem__(self, i: int) -> dict:
        ex = self.examples[i]
        item: dict = {"id": ex.id, "tgt_lang": ex.tgt_lang}
        if self.encoder_states is not None:
            if ex.audio not in self.encoder_states:
                return {**item, "skip": "missing_clip", "detail": f"not in the encoder cache {self.encoder_states.dir}"}
            item["states"], item["frames"] = self.encoder_states.get(ex.audio)
        else:
            try:
                item["features"], item["silence"] = self.features(ex.audio)
            except ClipError as e:
                return {**item, "skip": e.reason, "detail": e.detail}
            item["frames"] = item["features"].shape[1]
        item["decoder_input_ids"], item["labels"] = self.target(i)
        return item


@dataclass
class Collator:
    """Pads features to 30 s or to the batch's longest clip (rounded up to `pad_multiple` frames)."""

    pad_token_id: int
    pad_to_30s: bool = False
    pad_multiple: int = 32
    window_frames: int | None = None  # a fixed window: every batch padded to it (data.loader.window_frames)

    def __call__(self, items: list[dict]) -> dict:
        good = [it for it in items if "skip" not in it]
        skipped = [(it["skip"], it["id"], it["detail"]) for it in items if "skip" in it]
        batch: dict = {"skipped": skipped, "ids": [it["id"] for it in good]}
        if not good:
            return batch
        if "states" in good[0]:  # a fixed window: every clip's states have the same positions
            batch[ENCODER_STATES] = torch.stack([it["states"] for it in good])
            n_frames = 2 * batch[ENCODER_STATES].shape[1]
        else:
            n_frames = self.window_frames or batch_frames(max(it["frames"] for it in good), self.pad_to_30s,
                                                          self.pad_multiple)
            batch["input_features"] = pad_features([(it["features"], it["silence"]) for it in good], n_frames)
        length = max(len(it["decoder_input_ids"]) for it in good)
        dec = torch.full((len(good), length), self.pad_token_id, dtype=torch.long)
        lab = torch.full((len(good), length), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(good), length), dtype=torch.long)
        for i, it in enumerate(good):
            n = len(it["decoder_input_ids"])
            dec[i, :n] = torch.tensor(it["decoder_input_ids"])
            lab[i, :n] = torch.tensor(it["labels"])
            mask[i, :n] = 1
        batch.update(decoder_input_ids=dec, decoder_attention_mask=mask, labels=lab,
                     tgt_langs=[it["tgt_lang"] for it in good],
                     feature_lengths=torch.tensor([min(it["frames"], n_frames) for it in good]))
        return batch


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar length under a padded-frame budget (batch size x longest clip).

    Shuffled: indices are shuffled, sorted by length within windows of `window` batches, cut into
    batches, and the batch order is shuffled (deterministic by seed and epoch). Not shuffled: sorted
    by length, for evaluation. Distributed (`num_replicas` > 1): every rank builds the same batches
    and takes every num_replicas-th one from `rank` on, all ranks the same number (the remainder is
    dropped), so bucketing survives sharding and no rank waits on a missing batch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_frames: int,
        max_batch_size: int = 64,
        shuffle: bool = True,
        seed: int = 0,
        window: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"sampler rank {rank} is outside [0, {num_replicas})")
        self.num_replicas, self.rank = num_replicas, rank
        if max_frames < max(lengths, default=0):
            raise UserError(
                f"data.loader.max_batch_frames={max_frames} is smaller than the longest example ({max(lengths)} "
                "frames); raise it or lower data.max_duration"
            )
        self.lengths = list(lengths)
        self.max_frames = max_frames
        self.max_batch_size = max_batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.window = window
        self.epoch = 0
        self.start = 0
        self._batches = self._make()

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Reshuffle for `epoch`; `start` skips that many batches (exact resume mid-epoch)."""
        if epoch != self.epoch:
            self.epoch = epoch
            self._batches = self._make()
        self.start = start

    def _cut(self, order: list[int]) -> list[list[int]]:
        batches, cur, longest = [], [], 0
        for i in order:
            longest_if = max(longest, self.lengths[i])
            if cur and (longest_if * (len(cur) + 1) > self.max_frames or len(cur) >= self.max_batch_size):
                batches.append(cur)
                cur, longest_if = [], self.lengths[i]
            cur.append(i)
            longest = longest_if
        if cur:
            batches.append(cur)
        return batches

    def _make(self) -> list[list[int]]:
        idx = list(range(len(self.lengths)))
        if not self.shuffle:
            return self._shard(self._cut(sorted(idx, key=lambda i: self.lengths[i])))
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        rng.shuffle(idx)
        span = self.window * self.max_batch_size
        batches = []
        for s in range(0, len(idx), span):
            batches.extend(self._cut(sorted(idx[s : s + span], key=lambda i: self.lengths[i])))
        rng.shuffle(batches)
        return self._shard(batches)

    def _shard(self, batches: list[list[int]]) -> list[list[int]]:
        if self.num_replicas == 1:
            return batches
        per_rank = len(batches) // self.num_replicas
        if per_rank == 0:
            raise UserError(f"{len(batches)} batches cannot be shared by {self.num_replicas} processes; "
                             "use more data or fewer processes")
        return batches[self.rank :: self.num_replicas][:per_rank]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches[self.start :])

    def __len__(self) -> int:
        return len(self._batches)
