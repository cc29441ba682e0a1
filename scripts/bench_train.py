"""Full training step at Whisper-small shapes (random weights): dense vs upcycled MoE (E=8, k=2, every
FFN of encoder and decoder), step time and peak memory, measured side by side in one run.

    python scripts/bench_train.py [--batch 8] [--seconds 5] [--steps 3] [--device cuda]

Each variant runs in its own subprocess, so peak memory is that variant's alone (GPU: max allocated;
CPU: peak resident set size, growth over the process before the model was built). A step is
forward + backward + AdamW (fused on GPU), bf16 autocast on GPU, with the router losses for MoE.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.utils.bench import device_name, seconds_per_call  # noqa: E402


def run_variant(variant: str, args) -> dict:
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from src.models.backbone import set_pad_to_30s
    from src.models.config import MoEConfig
    from src.models.router_losses import MoELoss
    from src.models.upcycling.apply import upcycle_model
    from src.models.upcycling.config import strategy_config
    from src.models.whisper_moe import RoutingCollector
    from src.training.trainer import token_loss

    dev = torch.device(args.device)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.manual_seed(0)
    d = args.d_model
    heads = max(1, d // 64)  # whisper-small: 12 heads of 64
    cfg = WhisperConfig(d_model=d, encoder_layers=args.layers, decoder_layers=args.layers,
                        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=4 * d,
                        decoder_ffn_dim=4 * d, vocab_size=51865)
    model = WhisperForConditionalGeneration(cfg)
    set_pad_to_30s(model, False)
    aux = None
    if variant == "moe":
        moe_cfg = MoEConfig(num_experts=8, top_k=2, dispatch=args.dispatch)
        upcycle_model(model, moe_cfg, strategy_config({"strategy": "vanilla"}), seed=0, calib=None, progress=False)
        with torch.no_grad():  # spread the tokens over the experts, as a trained router does
            for m in model.modules():
                if hasattr(m, "router"):
                    m.router.weight.normal_(0, 0.5)
        aux = MoELoss.from_config(moe_cfg)
        collector = RoutingCollector(model)
    model.to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=dev.type == "cuda")
    frames = int(args.seconds * 100)
    g = torch.Generator().manual_seed(0)
    batch = {"input_features": torch.randn(args.batch, 80, frames, generator=g),
             "decoder_input_ids": torch.randint(0, 51000, (args.batch, args.target_tokens), generator=g),
             "decoder_attention_mask": torch.ones(args.batch, args.target_tokens, dtype=torch.long),
             "feature_lengths": torch.full((args.batch,), frames)}
    labels = batch["decoder_input_ids"].roll(-1, 1).to(dev)
    autocast = dev.type == "cuda"

    def step():
        opt.zero_grad(set_to_none=True)
        ctx = collector.collect() if aux is not None else contextlib.nullcontext()
        with ctx as routing, torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            out = model(input_features=batch["input_features"].to(dev),
                        decoder_input_ids=batch["decoder_input_ids"].to(dev))
            loss, _ = token_loss(out.logits, labels)
            if aux is not None:
                loss = loss + sum(aux.loss(model, batch, out, routing).values())
        loss.backward()
        opt.step()

    step()  # warm-up, outside the peak-memory window
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    seconds = seconds_per_call(step, args.steps, dev)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    params = sum(p.numel() for p in model.parameters())
    return {"variant": variant, "step_s": seconds, "peak_mib": peak, "params": params}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--target-tokens", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--layers", type=int, default=12, help="encoder and decoder layers each (whisper-small: 12)")
    ap.add_argument("--d-model", type=int, default=768, help="whisper-small: 768 (12 heads); smaller for a dry run")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dispatch", default="auto", choices=["auto", "grouped", "loop"], help="moe.dispatch")
    ap.add_argument("--variant", choices=["dense", "moe"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args)))
        return
    rows = {}
    for variant in ("dense", "moe"):
        cmd = [sys.executable, __file__, "--variant", variant, "--batch", str(args.batch), "--seconds",
               str(args.seconds), "--target-tokens", str(args.target_tokens), "--steps", str(args.steps),
               "--device", args.device, "--dispatch", args.dispatch, "--layers", str(args.layers),
               "--d-model", str(args.d_model)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        rows[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    name = device_name(args.device)
    mem = "peak allocated MiB" if args.device.startswith("cuda") else "peak RSS growth MiB"
    shape = ("whisper-small shapes" if args.layers == 12 and args.d_model == 768
             else f"d_model {args.d_model}, {args.layers}+{args.layers} layers")
    print(f"training step, {shape}, batch {args.batch} x {args.seconds:g} s, {args.target_tokens} "
          f"target tokens, {name}")
    print(f"| {'model':<28} | {'parameters':>11} | {'s/step':>8} | {mem:>20} |")
    print(f"|{'-' * 30}|{'-' * 13}|{'-' * 10}|{'-' * 22}|")
    labels = {"dense": "dense", "moe": "upcycled E=8 k=2 (all FFNs)"}
    for v, r in rows.items():
        print(f"| {labels[v]:<28} | {r['params']:>11,} | {r['step_s']:>8.3f} | {r['peak_mib']:>20.0f} |")
    d, m = rows["dense"], rows["moe"]
    print(f"step time MoE / dense = {m['step_s'] / d['step_s']:.2f}   peak memory MoE / dense = "
          f"{m['peak_mib'] / max(d['peak_mib'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
