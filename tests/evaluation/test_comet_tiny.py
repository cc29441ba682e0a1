"""The tiny offline COMET checkpoint (comet_tiny.py, next to this file) loads and predicts with the real
unbabel-comet code."""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from comet_tiny import build_tiny_comet  # noqa: E402

SAMPLES = [
    {"src": "the cat sleeps", "mt": "die katze schläft", "ref": "die Katze schläft"},
    {"src": "a dog runs in the park", "mt": "ein hund", "ref": "ein Hund rennt im Park"},
    {"src": "it rains", "mt": "es regnet", "ref": "es regnet"},
]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _predict(ckpt: Path) -> tuple[list[float], float]:
    import comet

    model = comet.load_from_checkpoint(str(ckpt))
    out = model.predict(SAMPLES, batch_size=8, gpus=0, progress_bar=False)
    return list(out.scores), out.system_score


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")  # pytorch_lightning 2.6 vs torch 2.11 pytree
@pytest.mark.filterwarnings("ignore:GPU available but not used")  # gpus=0 on a CUDA machine
def test_tiny_comet_loads_and_predicts(tmp_path: Path, no_network: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import comet.models

    def no_download(*args, **kwargs):
        raise AssertionError("comet.download_model must not be used")

    monkeypatch.setattr(comet.models, "download_model", no_download)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)

    ckpt = build_tiny_comet(tmp_path / "tiny_comet")
    assert ckpt == tmp_path / "tiny_comet" / "checkpoints" / "model.ckpt"
    assert ckpt.is_file() and (tmp_path / "tiny_comet" / "hparams.yaml").is_file()

    scores, system = _predict(ckpt)
    assert len(scores) == len(SAMPLES)
    assert all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert isinstance(system, float) and math.isfinite(system)
    assert system == pytest.approx(sum(scores) / len(scores), abs=1e-12)

    # a second load of the same checkpoint, and a rebuild with the same seed, give the same scores
    scores2, system2 = _predict(ckpt)
    assert scores2 == scores and system2 == system
    scores3, _ = _predict(build_tiny_comet(tmp_path / "rebuilt"))
    assert scores3 == pytest.approx(scores, abs=1e-6)
