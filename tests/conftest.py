"""Fixtures that build small local copies of every input format (no network in tests)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (`make test`: one worker per core) each worker, and every process a test starts, gets its
# share of the cores: two workers at torch's default of one thread per core would oversubscribe them.
if (_workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def tone(seconds: float, freq: float, sr: int = 48_000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


CLIPS = [  # (name, seconds, English sentence)
    ("cv_0.mp3", 1.0, "the cat sleeps"),
    ("cv_1.mp3", 1.5, "a dog runs in the park"),
    ("cv_2.mp3", 0.8, "two birds sing"),
    ("cv_3.mp3", 1.2, "the teacher reads a book"),
    ("cv_4.mp3", 0.6, "it rains"),
    ("cv_5.mp3", 2.0, "my friend cooks dinner tonight"),
]
SPLIT_OF = {"cv_0.mp3": "train", "cv_1.mp3": "train_covost", "cv_2.mp3": "train", "cv_3.mp3": "dev",
            "cv_4.mp3": "test", "cv_5.mp3": "other"}


@pytest.fixture
def cv_root(tmp_path: Path) -> Path:
    """Common Voice layout + CoVoST2 per-direction TSVs (with split column) for de and zh-CN."""
    root = tmp_path / "cv"
    clips = root / "en" / "clips"
    clips.mkdir(parents=True)
    for i, (name, sec, _) in enumerate(CLIPS):
        sf.write(clips / name, tone(sec, 220 + 70 * i), 48_000, format="MP3")
    write_tsv(root / "en" / "validated.tsv",
              ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent"],
              [[f"spk{i % 2}", n, s, "2", "0", "", "", ""] for i, (n, _, s) in enumerate(CLIPS)])
    for tgt in ("de", "zh-CN"):
        rows = [[n, s, f"{tgt}:{s}", SPLIT_OF[n]] for n, _, s in CLIPS]
        rows.append(["not_in_cv.mp3", "ghost", "ghost", "train"])  # dropped by the inner join
        write_tsv(root / f"covost_v2.en_{tgt}.tsv", ["path", "sentence", "translation", "split"], rows)
    return root


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A dense run through the real `src.train` on the tiny toy corpus (TINY); its cache (tiny corpus and
    pretrained tiny toy model) is shared by every test that runs the entry points: (tmp dir, run dir)."""
    from helpers import TINY, run

    tmp = tmp_path_factory.mktemp("e2e")
    run_dir = tmp / "run"
    run("src.train", ["upcycle=dense", f"paths.cache_dir={tmp / 'cache'}", f"hydra.run.dir={run_dir}", *TINY])
    return tmp, run_dir


# --------------------------------------------------------------------------------------------
# the real-model tests (tests/models/test_real_whisper*.py)


@pytest.fixture(scope="session")
def model_cache_dir() -> Path:
    """Where the offline models are converted and the eSpeak English set is built (reused across runs)."""
    return Path(os.environ.get("UPCYCLE_ST_CACHE", Path(__file__).resolve().parents[1] / ".cache"))


@pytest.fixture(scope="session")
def english(model_cache_dir):
    """(source, transcription examples) of the eSpeak English set (12 clips; its en->de table carries the
    English text as the 'translation': its translation examples serve for their prompt only)."""
    from src.data.covost2 import CoVoST2Source
    from src.data.toy.english import build_english_set, english_set_dir
    from src.evaluation.run import task_examples

    root = build_english_set(english_set_dir(model_cache_dir))
    source = CoVoST2Source(str(root), directions=["de"], progress=False)
    return source, task_examples(source.examples("test"), "transcribe")
