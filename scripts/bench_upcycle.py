"""SPRI upcycling of a Whisper-large-v3-shaped model (random weights): wall time and peak memory.

    python scripts/bench_upcycle.py [--layers 32] [--experts 8] [--device cuda]

large-v3 has 32 encoder + 32 decoder layers (d=1280, FFN 5120). `--layers N` builds N of each, for
machines without the memory for all of them (E=8 SPRI experts of every FFN are about 6.7 B
parameters, 27 GB in fp32); the table says how many were measured, and the time per layer. The
timed part is the whole `upcycle_model` call: SVDs (float64), partitioning, expert stacking and the
upcycling report.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.models.config import MoEConfig  # noqa: E402
from src.models.upcycling.apply import upcycle_model  # noqa: E402
from src.models.upcycling.config import strategy_config  # noqa: E402
from src.utils.bench import device_name  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=32, help="encoder and decoder layers each (large-v3: 32)")
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--energy", type=float, default=0.9)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--d-model", type=int, default=1280, help="large-v3: 1280 (FFN 4x); smaller for a dry run")
    args = ap.parse_args()
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    dev = torch.device(args.device)
    d = args.d_model
    heads = 20 if d % 20 == 0 else 4
    cfg = WhisperConfig(d_model=d, encoder_layers=args.layers, decoder_layers=args.layers,
                        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=4 * d,
                        decoder_ffn_dim=4 * d, num_mel_bins=128,
                        vocab_size=51866)
    model = WhisperForConditionalGeneration(cfg).to(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ucfg = strategy_config({"strategy": "spri", "energy": args.energy})
    t = time.perf_counter()
    report = upcycle_model(model, MoEConfig(num_experts=args.experts, top_k=2), ucfg, seed=0, calib=None,
                           progress=False)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    if dev.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - before) / 2**30
        mem = "peak GPU memory above the dense model, GiB"
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 2**20
        mem = "peak RSS growth, GiB"
    n = 2 * args.layers
    name = device_name(dev)
    shape = "whisper-large-v3 layer shapes" if d == 1280 else f"d_model {d}, FFN {4 * d}"
    print(f"SPRI upcycling (energy {args.energy}, E={args.experts}), {shape}, {name}")
    print(f"| {'MoE layers':>10} | {'total s':>8} | {'s/layer':>8} | {mem:>42} | {'params after':>13} |")
    print(f"|{'-' * 12}|{'-' * 10}|{'-' * 10}|{'-' * 44}|{'-' * 15}|")
    print(f"| {n:>10} | {seconds:>8.1f} | {seconds / n:>8.2f} | {peak:>42.2f} | {report['total_parameters']:>13,} |")
    if args.layers != 32:
        print(f"(measured {n} of large-v3's 64 FFN layers; the full model has 64 such layers)")


if __name__ == "__main__":
    main()
