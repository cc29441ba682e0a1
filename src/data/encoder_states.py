"""A frozen encoder's outputs, computed once per clip and read back instead of audio features.

Format (one directory): `states.npy`, a (clips, positions, width) array (float16 or float32) read memory-mapped,
`index.json` {clip key: [row, feature frames]}, `meta.json` (what the states depend on: the encoder's weights,
the window, the corpus; src/pipelines/encoder_cache.py writes and keys it). Written into a temp dir and renamed,
so a directory that exists is whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from src.utils.atomic import OutputError, atomic_dir
from src.utils.errors import UserError

STATES, INDEX, META = "states.npy", "index.json", "meta.json"


class EncoderStates:
    """Row lookup by clip key into a memory-mapped array: a training step reads (positions, width) per clip."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        try:
            self.meta = json.loads((self.dir / META).read_text())
            self.index: dict[str, list[int]] = json.loads((self.dir / INDEX).read_text())
            self.states = np.load(self.dir / STATES, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise UserError(f"{self.dir}: unreadable encoder cache ({e}); delete the directory to rebuild it") from e
        if self.states.shape[0] < len(self.index):
            raise UserError(f"{self.dir}: {self.states.shape[0]} rows for {len(self.index)} clips; delete the "
                            "directory to rebuild it")

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def get(self, key: str) -> tuple[torch.Tensor, int]:
        """(states (positions, width) as float32, the clip's feature frames) of one clip."""
        row, frames = self.index[key]
        return torch.from_numpy(np.asarray(self.states[row], dtype=np.float32)), frames


def write_encoder_states(directory: str | Path, shape: tuple[int, int, int], dtype: str, meta: dict,
                         batches: Iterable[tuple[list[str], list[int], torch.Tensor]]) -> EncoderStates:
    """Fill a new cache from (clip keys, feature frames, states (B, positions, width)) batches, in row order;
    the directory appears only when every row is written. A write error is one line naming the directory."""
    directory = Path(directory)
    try:
        return _write(directory, shape, dtype, meta, batches)
    except OSError as e:
        raise OutputError(f"cannot write the encoder cache {directory}: {e.strerror or e}; free some space or "
                          "make paths.cache_dir writable") from e


def _write(directory: Path, shape: tuple[int, int, int], dtype: str, meta: dict,
           batches: Iterable[tuple[list[str], list[int], torch.Tensor]]) -> EncoderStates:
    with atomic_dir(directory) as tmp:  # the caller holds the cache key's lock: one builder at a time
        out = np.lib.format.open_memmap(tmp / STATES, mode="w+", dtype=np.dtype(dtype), shape=shape)
        index: dict[str, list[int]] = {}
        for keys, frames, states in batches:
            rows = slice(len(index), len(index) + len(keys))
            out[rows] = states.float().cpu().numpy().astype(dtype)
            index.update({k: [i, int(f)] for i, (k, f) in enumerate(zip(keys, frames), start=rows.start)})
        if len(index) > shape[0]:  # fewer is fine: an unreadable clip has no row (its examples are skipped, counted)
            raise RuntimeError(f"encoder cache: {len(index)} rows written into {shape[0]}")
        out.flush()
        del out
        (tmp / INDEX).write_text(json.dumps(index))
        (tmp / META).write_text(json.dumps(meta, indent=2))
    return EncoderStates(directory)
