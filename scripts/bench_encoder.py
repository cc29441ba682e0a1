"""Encoder time on short clips: pad_to_30s=false (sliced positions) vs true (Whisper's 30 s padding).

    python scripts/bench_encoder.py [--shape tiny|base|small] [--seconds 5] [--batch 8] [--device cpu]

Random weights at the named Whisper shape; prints both times and the ratio, measured in one run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.data.features import N_FRAMES_30S, batch_frames  # noqa: E402
from src.models.backbone import set_pad_to_30s  # noqa: E402
from src.utils.bench import seconds_per_call  # noqa: E402

SHAPES = {"tiny": (384, 4, 6), "base": (512, 6, 8), "small": (768, 12, 12)}  # d_model, layers, heads


def time_encoder(model, feats: torch.Tensor, repeats: int) -> float:
    enc = model.get_encoder()
    with torch.inference_mode():
        return seconds_per_call(lambda: enc(feats), repeats, feats.device)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="tiny", choices=list(SHAPES))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    d, layers, heads = SHAPES[args.shape]
    cfg = WhisperConfig(d_model=d, encoder_layers=layers, decoder_layers=1, encoder_attention_heads=heads,
                        decoder_attention_heads=heads, encoder_ffn_dim=4 * d, decoder_ffn_dim=4 * d)
    model = WhisperForConditionalGeneration(cfg).eval().to(args.device)
    short = batch_frames(int(args.seconds * 100), pad_to_30s=False)
    rows = []
    for pad, frames in ((True, N_FRAMES_30S), (False, short)):
        set_pad_to_30s(model, pad)
        feats = torch.randn(args.batch, 80, frames, device=args.device)
        rows.append((pad, frames, time_encoder(model, feats, args.repeats)))
    print(f"encoder, whisper-{args.shape} shape, batch {args.batch} x {args.seconds:g} s clips, {args.device}")
    print(f"{'pad_to_30s':>10} {'frames':>7} {'seconds':>9}")
    for pad, frames, t in rows:
        print(f"{pad!s:>10} {frames:>7} {t:>9.4f}")
    print(f"speed-up of pad_to_30s=false: {rows[0][2] / rows[1][2]:.2f}x")


if __name__ == "__main__":
    main()
