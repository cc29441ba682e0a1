"""CoVoST2 from the HF parquet mirrors (e.g. fixie-ai/covost2: configs en_de, ...; columns
client_id, file, audio, sentence, translation, id; splits train/validation/test).

Loads from the hub by name or from a local directory laid out as `<dir>/en_XX/<split>-*.parquet`.
Audio is kept encoded (`Audio(decode=False)`) and decoded with soundfile, so datasets' own audio
backend is never needed; the clips of all directions share one store keyed by `file`.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from src.data.audio import ClipError, ClipStore, decode
from src.data.schema import Example
from src.data.source import ExampleSource
from src.utils.errors import UserError

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
        raise UserError(
            f"{name_or_path} {config}/{hf_split}: missing column(s) {missing}; found {ds.column_names}. "
            f"Expected the CoVoST2 parquet mirror schema {list(REQUIRED)}."
        )
    return ds.cast_column("audio", datasets.Audio(decode=False))


class CoVoST2HFSource(ExampleSource):
    """Same examples and skip accounting as CoVoST2Source, from parquet mirrors."""

    def __init__(self, name_or_path: str, revision: str | None = None, **options) -> None:
        super().__init__(**options)
        self.name_or_path = name_or_path
        self.revision = revision
        self._refs: dict[str, tuple[object, int]] = {}  # clip key -> (dataset, row)
        self._durations: dict[str, float | ClipError] = {}  # probed once per clip, shared by directions
        self.clips = ClipStore(self._read, self.max_duration)

    def _audio(self, key: str) -> bytes | str:
        ds, row = self._refs[key]
        audio = ds[row]["audio"]
        if audio.get("bytes"):
            return audio["bytes"]
        if audio.get("path"):
            return audio["path"]
        raise ClipError("missing_clip", f"{key} has neither audio bytes nor a path")

    def _read(self, key: str) -> np.ndarray:
        return decode(self._audio(key), name=key)

    def _duration(self, key: str) -> float | ClipError:
        if key not in self._durations:
            try:
                self._durations[key] = self._probe(key)
            except ClipError as e:
                self._durations[key] = e
        return self._durations[key]

    def _probe(self, key: str) -> float:
        if self.check_audio:
            return self.clips.load(key).size / 16_000
        src = self._audio(key)
        try:
            info = sf.info(io.BytesIO(src) if isinstance(src, bytes) else src)
        except Exception as e:
            raise ClipError("unreadable_clip", f"{key}: {e}") from e
        if info.frames <= 0:
            raise ClipError("empty_clip", f"{key} has no samples")
        return info.frames / info.samplerate

    def _read_examples(self, split: str) -> list[Example]:
        if split not in HF_SPLITS:
            raise UserError(f"unknown split '{split}' for data=covost2_hf; use one of {list(HF_SPLITS)}")
        out: list[Example] = []
        for tgt in self.directions:
            ds = load_split(self.name_or_path, tgt, split, self.revision)
            rows = self.subset_rows(len(ds), tgt) if split == "train" else range(len(ds))
            meta = ds.select_columns(["file", "sentence", "translation"])
            for i in tqdm(rows, desc=f"en_{tgt} {split}", disable=not self.progress, leave=False):
                r = meta[i]
                key = Path(r["file"]).name or f"en_{tgt}-{split}-{i}"
                self._refs.setdefault(key, (ds, i))
                label = f"{self.name_or_path} en_{tgt}/{split} {key}"
                ex = self.make_example(key, r["sentence"], tgt, r["translation"], self._duration(key), label)
                if ex is not None:
                    out.append(ex)
        return out
