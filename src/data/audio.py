"""Audio decoding (soundfile) and resampling (torchaudio.functional); never torchaudio I/O."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16_000


class ClipError(Exception):
    """A single clip cannot be used; `reason` is one of schema.SKIP_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def to_16k_mono(audio: np.ndarray, sr: int) -> np.ndarray:
    """Mix down to mono and resample to 16 kHz (Whisper's rate)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if sr != SAMPLE_RATE:
        import torch  # here: the data sources import without torch (config validation builds none of it)
        import torchaudio.functional as AF

        audio = AF.resample(torch.from_numpy(audio), sr, SAMPLE_RATE).numpy()
    return audio


def decode(source: str | Path | bytes, name: str = "") -> np.ndarray:
    """Decode a file path or encoded bytes to 16 kHz mono float32; raise ClipError on bad input."""
    label = name or str(source)[:200]
    if isinstance(source, (str, Path)) and not Path(source).exists():
        raise ClipError("missing_clip", f"{label} does not exist")
    try:
        data, sr = sf.read(io.BytesIO(source) if isinstance(source, bytes) else str(source), dtype="float32")
    except Exception as e:  # libsndfile raises several types for corrupt input
        raise ClipError("unreadable_clip", f"{label}: {e}") from e
    if data.size == 0:
        raise ClipError("empty_clip", f"{label} has no samples")
    return to_16k_mono(data, sr)


class ClipStore:
    """Maps an audio key to 16 kHz samples; one entry per clip, shared by every direction using it."""

    def __init__(self, reader: Callable[[str], np.ndarray], max_duration: float | None = None) -> None:
        self._reader = reader
        self.max_duration = max_duration

    @classmethod
    def from_dir(cls, clips_dir: str | Path, max_duration: float | None = None) -> ClipStore:
        clips_dir = Path(clips_dir)
        return cls(lambda key: decode(clips_dir / key, name=str(clips_dir / key)), max_duration)

    def load(self, key: str) -> np.ndarray:
        audio = self._reader(key)
        if audio.size == 0:
            raise ClipError("empty_clip", f"{key} has no samples")
        if not np.isfinite(audio).all():
            raise ClipError("unreadable_clip", f"{key} contains NaN/inf samples")
        if self.max_duration is not None and audio.size / SAMPLE_RATE > self.max_duration:
            raise ClipError("too_long", f"{key} is {audio.size / SAMPLE_RATE:.1f}s > {self.max_duration}s")
        return audio


def probe_duration(path: str | Path) -> float:
    """Duration in seconds from the header (no full decode); ClipError when unreadable or missing."""
    path = Path(path)
    if not path.exists():
        raise ClipError("missing_clip", f"{path} does not exist")
    try:
        info = sf.info(str(path))
    except Exception as e:
        raise ClipError("unreadable_clip", f"{path}: {e}") from e
    if info.frames <= 0:
        raise ClipError("empty_clip", f"{path} has no samples")
    return info.frames / info.samplerate
