"""CoVoST2 from the HF parquet mirrors (e.g. fixie-ai/covost2: configs en_de, ...; columns
client_id, file, audio, sentence, translation, id; splits train/validation/test).

Loads from the hub by name or from a local directory laid out as `<dir>/en_XX/<split>-*.parquet`.
Audio is kept encoded (`Audio(decode=False)`) and decoded with soundfile, so datasets' own audio
backend is never needed; the clips of all directions share one store keyed by `file`.
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from src.data.audio import ClipError, ClipStore, decode
from src.data.languages import COVOST2_EN_XX, check_directions
from src.data.schema import Example, SkipLog

log = logging.getLogger(__name__)

HF_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
REQUIRED = ("file", "audio", "sentence", "translation")


def load_split(name_or_path: str, tgt: str, split: str, revision: str | None = None):
    """One direction's split as a datasets.Dataset (local parquet dir or hub repo)."""
    import datasets

    hf_split = HF_SPLITS[split]
    config = f"en_{tgt}"
    local = Path(name_or_path).expanduser()
    try:
        if local.is_dir():
            pattern = local / config / f"{hf_split}-*.parquet"
            if not list(pattern.parent.glob(pattern.name)):
                raise FileNotFoundError(
                    f"{pattern} matches no file: a local mirror needs <dir>/{config}/{hf_split}-*.parquet. "
                    f"Or drop '{tgt}' from data.directions."
                )
            ds = datasets.load_dataset("parquet", data_files={hf_split: str(pattern)}, split=hf_split)
        else:
            ds = datasets.load_dataset(name_or_path, config, split=hf_split, revision=revision)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise RuntimeError(
            f"cannot load {name_or_path} config {config} split {hf_split}: {e}. Set data.name_or_path to a "
            "local mirror directory, or check network access and the dataset name."
        ) from e
    missing = [c for c in REQUIRED if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"{name_or_path} {config}/{hf_split}: missing column(s) {missing}; found {ds.column_names}. "
            f"Expected the CoVoST2 parquet mirror schema {list(REQUIRED)}."
        )
    return ds.cast_column("audio", datasets.Audio(decode=False))


class CoVoST2HFSource:
    """Same examples and skip accounting as CoVoST2Source, from parquet mirrors."""

    def __init__(
        self,
        name_or_path: str,
        directions: Sequence[str] | None = None,
        revision: str | None = None,
        max_train_per_direction: int | None = None,
        min_duration: float = 0.0,
        max_duration: float | None = 30.0,
        seed: int = 0,
        on_bad_example: str = "skip",
        check_audio: bool = False,
        progress: bool = True,
    ) -> None:
        self.name_or_path = name_or_path
        self.revision = revision
        self.directions = check_directions(list(directions) if directions else list(COVOST2_EN_XX))
        self.max_train_per_direction = max_train_per_direction
        self.min_duration = min_duration
        self.max_duration = max_duration
        self.seed = seed
        self.check_audio = check_audio
        self.progress = progress
        self.skips = SkipLog(on_bad_example)
        self._refs: dict[str, tuple[object, int]] = {}  # clip key -> (dataset, row)
        self._durations: dict[str, float | ClipError] = {}  # probed once per clip, shared by directions
        self.clips = ClipStore(self._read, max_duration)

    def _read(self, key: str) -> np.ndarray:
        ds, row = self._refs[key]
        audio = ds[row]["audio"]
        if audio.get("bytes"):
            return decode(audio["bytes"], name=key)
        if audio.get("path"):
            return decode(audio["path"], name=key)
        raise ClipError("missing_clip", f"{key} has neither audio bytes nor a path")

    def _duration(self, key: str) -> float:
        if key not in self._durations:
            try:
                self._durations[key] = self._probe(key)
            except ClipError as e:
                self._durations[key] = e
        result = self._durations[key]
        if isinstance(result, ClipError):
            raise result
        return result

    def _probe(self, key: str) -> float:
        if self.check_audio:
            return self.clips.load(key).size / 16_000
        ds, row = self._refs[key]
        audio = ds[row]["audio"]
        try:
            src = io.BytesIO(audio["bytes"]) if audio.get("bytes") else audio.get("path")
            if src is None:
                raise ClipError("missing_clip", f"{key} has neither audio bytes nor a path")
            info = sf.info(src)
        except ClipError:
            raise
        except Exception as e:
            raise ClipError("unreadable_clip", f"{key}: {e}") from e
        if info.frames <= 0:
            raise ClipError("empty_clip", f"{key} has no samples")
        return info.frames / info.samplerate

    def examples(self, split: str) -> list[Example]:
        if split not in HF_SPLITS:
            raise ValueError(f"unknown split '{split}' for data=covost2_hf; use one of {list(HF_SPLITS)}")
        out: list[Example] = []
        for tgt in self.directions:
            ds = load_split(self.name_or_path, tgt, split, self.revision)
            rows = range(len(ds))
            if split == "train" and self.max_train_per_direction is not None and len(ds) > self.max_train_per_direction:
                rows = sorted(random.Random(f"{self.seed}:{tgt}").sample(rows, int(self.max_train_per_direction)))
            meta = ds.select_columns(["file", "sentence", "translation"])
            for i in tqdm(rows, desc=f"en_{tgt} {split}", disable=not self.progress, leave=False):
                r = meta[i]
                key = Path(r["file"]).name or f"en_{tgt}-{split}-{i}"
                label = f"{self.name_or_path} en_{tgt}/{split} {key}"
                if key not in self._refs:
                    self._refs[key] = (ds, i)
                try:
                    dur = self._duration(key)
                except ClipError as e:
                    self.skips.skip(e.reason, label, e.detail)
                    continue
                translation, sentence = (r["translation"] or "").strip(), (r["sentence"] or "").strip()
                if not translation:
                    self.skips.skip("empty_translation", label)
                elif not sentence:
                    self.skips.skip("empty_sentence", label)
                elif self.max_duration is not None and dur > self.max_duration:
                    self.skips.skip("too_long", label, f"{dur:.1f}s > data.max_duration={self.max_duration}")
                elif dur < self.min_duration:
                    self.skips.skip("too_short", label, f"{dur:.2f}s < data.min_duration={self.min_duration}")
                else:
                    stem = key.rsplit(".", 1)[0]
                    out.append(Example(f"{stem}.{tgt}", key, sentence, tgt, translation, dur))
        return out
