"""A small CoVoST2-layout set of clear English speech from eSpeak NG, for checks on a real pretrained
Whisper (features, decoding, the cost of an upcycling init) without any download.

Clips are written at 16 kHz as float WAV, so every reader sees exactly the same samples.
"""

from __future__ import annotations

import csv
from pathlib import Path

import soundfile as sf
import torch

from src.data.audio import SAMPLE_RATE, to_16k_mono
from src.utils.atomic import atomic_dir

SENTENCES = (
    "the weather is cold and windy today",
    "please open the window in the kitchen",
    "my brother bought a new car last week",
    "we will meet at the station at nine o'clock",
    "the children are playing football in the park",
    "she reads the newspaper every morning",
    "this restaurant serves very good fish",
    "can you tell me where the library is",
    "the train to london leaves in ten minutes",
    "he forgot his keys at the office",
    "our teacher gave us a difficult test",
    "they are building a bridge across the river",
)
VOICE = "en-us"
VERSION = 1  # bump when the sentences, voice or format change (cache key)


def _write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def build_english_set(root: str | Path, sentences: tuple[str, ...] = SENTENCES, split: str = "test") -> Path:
    """Write root/en/clips/*.wav, root/en/validated.tsv and a CoVoST2 TSV (en->de, German = the English text:
    only the transcription direction is meant to be used). Built in a temp dir and renamed into place."""
    from src.data.toy.tts import synthesize

    root = Path(root)
    if (root / "en" / "validated.tsv").exists():
        return root
    with atomic_dir(root, replace=False) as tmp:  # another process that built it first wins
        clips = tmp / "en" / "clips"
        clips.mkdir(parents=True)
        rows = []
        for i, text in enumerate(sentences):
            audio, sr = synthesize(text, voice=VOICE, seed=i)
            wav = to_16k_mono(audio, sr)
            name = f"espeak_{i:02d}.wav"
            sf.write(clips / name, torch.as_tensor(wav).numpy(), SAMPLE_RATE, subtype="FLOAT")
            rows.append([name, text])
        _write_tsv(tmp / "en" / "validated.tsv", ["client_id", "path", "sentence", "up_votes", "down_votes"],
                   [["espeak", n, s, "2", "0"] for n, s in rows])
        _write_tsv(tmp / "covost_v2.en_de.tsv", ["path", "sentence", "translation", "split"],
                   [[n, s, s, split] for n, s in rows])
    return root


def english_set_dir(cache_dir: str | Path) -> Path:
    return Path(cache_dir).expanduser() / f"english_espeak_v{VERSION}"
