"""The parquet-mirror loader on a local mirror the test writes (same schema as fixie-ai/covost2)."""

from __future__ import annotations

import io
from pathlib import Path

import datasets
import pytest
import soundfile as sf
from conftest import CLIPS, tone

from src.data.covost2_hf import CoVoST2HFSource

SPLIT_ROWS = {"train": [0, 1, 2], "validation": [3], "test": [4]}


def mp3_bytes(seconds: float, freq: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(seconds, freq), 48_000, format="MP3")
    return buf.getvalue()


@pytest.fixture
def hf_root(tmp_path: Path) -> Path:
    root = tmp_path / "covost2_hf"
    audio = {n: mp3_bytes(sec, 220 + 70 * i) for i, (n, sec, _) in enumerate(CLIPS)}
    for tgt in ("de", "ja"):
        (root / f"en_{tgt}").mkdir(parents=True)
        for split, idx in SPLIT_ROWS.items():
            rows = [CLIPS[i] for i in idx]
            ds = datasets.Dataset.from_dict({
                "client_id": ["spk"] * len(rows),
                "file": [f"/cache/clips/{n}" for n, _, _ in rows],
                "audio": [{"bytes": audio[n], "path": n} for n, _, _ in rows],
                "sentence": [s for _, _, s in rows],
                "translation": [("" if (tgt == "ja" and n == "cv_1.mp3") else f"{tgt}:{s}") for n, _, s in rows],
                "id": [n.split(".")[0] for n, _, _ in rows],
            }).cast_column("audio", datasets.Audio(decode=False))
            ds.to_parquet(str(root / f"en_{tgt}" / f"{split}-00000-of-00001.parquet"))
    return root


def test_local_parquet_mirror_yields_the_schema(hf_root):
    src = CoVoST2HFSource(str(hf_root), directions=["de", "ja"], progress=False)
    train = src.examples("train")
    assert sorted(e.id for e in train) == ["cv_0.de", "cv_0.ja", "cv_1.de", "cv_2.de", "cv_2.ja"]
    assert src.skips.as_dict() == {"empty_translation": 1}
    ex = next(e for e in train if e.id == "cv_1.de")
    assert ex.audio == "cv_1.mp3" and ex.sentence == "a dog runs in the park"
    assert ex.translation == "de:a dog runs in the park" and ex.duration == pytest.approx(1.5, abs=0.06)
    dev = src.examples("dev")  # "dev" maps to the mirror's "validation" split
    assert [e.id for e in dev] == ["cv_3.de", "cv_3.ja"]
    audio = src.clips.load("cv_3.mp3")
    assert abs(audio.size - 1.2 * 16_000) < 800


def test_clips_shared_across_directions(hf_root):
    src = CoVoST2HFSource(str(hf_root), directions=["de", "ja"], progress=False)
    src.examples("train")
    assert sorted(src._refs) == ["cv_0.mp3", "cv_1.mp3", "cv_2.mp3"]  # one reference per clip


def test_missing_config_and_columns_are_clear(hf_root):
    with pytest.raises(FileNotFoundError, match="en_cy/train-\\*.parquet matches no file"):
        CoVoST2HFSource(str(hf_root), directions=["cy"], progress=False).examples("train")
    ds = datasets.Dataset.from_dict({"file": ["a"], "sentence": ["x"]})
    bad = hf_root / "en_de" / "test-00000-of-00001.parquet"
    ds.to_parquet(str(bad))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['audio', 'translation'\]"):
        CoVoST2HFSource(str(hf_root), directions=["de"], progress=False).examples("test")


def test_corrupt_clip_is_counted(hf_root):
    ds = datasets.Dataset.from_parquet(str(hf_root / "en_de" / "test-00000-of-00001.parquet"))
    ds = ds.map(lambda r: {"audio": {"bytes": b"garbage", "path": r["audio"]["path"]}})
    ds.to_parquet(str(hf_root / "en_de" / "test-00000-of-00001.parquet"))
    src = CoVoST2HFSource(str(hf_root), directions=["de"], progress=False)
    assert src.examples("test") == []
    assert src.skips.as_dict() == {"unreadable_clip": 1}
