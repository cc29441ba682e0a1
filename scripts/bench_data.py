"""Feature extraction, clips per second: ours (torch STFT + mel, per clip, as the data loader runs it)
vs transformers' WhisperFeatureExtractor (numpy, padded to 30 s as Whisper's pipeline does, and
without padding), on the same clips, measured side by side in one run.

    python scripts/bench_data.py [--clips 64] [--seconds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.data.features import clip_features  # noqa: E402


def clips_per_s(fn, clips: list[np.ndarray], repeats: int) -> float:
    fn(clips[:2])  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn(clips)
    return repeats * len(clips) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from transformers import WhisperFeatureExtractor

    rng = np.random.default_rng(0)
    n = int(args.seconds * 16000)
    clips = [(0.1 * rng.standard_normal(n + int(rng.integers(0, 1600)))).astype(np.float32) for _ in range(args.clips)]
    wfe = WhisperFeatureExtractor(feature_size=80)

    def ours(batch):
        return [clip_features(torch.from_numpy(c)) for c in batch]

    def hf_30s(batch):
        return wfe(batch, sampling_rate=16000, return_tensors="np")

    def hf_unpadded(batch):
        return [wfe(c, sampling_rate=16000, padding=False, return_tensors="np") for c in batch]

    rows = [("ours (torch, per clip, unpadded)", clips_per_s(ours, clips, args.repeats)),
            ("WhisperFeatureExtractor (batch, padded to 30 s)", clips_per_s(hf_30s, clips, args.repeats)),
            ("WhisperFeatureExtractor (per clip, unpadded)", clips_per_s(hf_unpadded, clips, args.repeats))]
    print(f"log-mel features, {args.clips} clips of ~{args.seconds:g} s, cpu ({torch.get_num_threads()} threads)")
    print(f"| {'extractor':<48} | {'clips/s':>9} |")
    print(f"|{'-' * 50}|{'-' * 11}|")
    for label, r in rows:
        print(f"| {label:<48} | {r:>9.1f} |")
    print(f"ours / WFE padded = {rows[0][1] / rows[1][1]:.2f}   ours / WFE unpadded = {rows[0][1] / rows[2][1]:.2f}")


if __name__ == "__main__":
    main()
