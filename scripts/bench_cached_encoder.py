"""A training step of whisper-base's shapes (random weights) with the encoder frozen and its outputs cached
(model.cached_encoder) against the whole model at 30 s padding, and the decoder MoE against the dense decoder,
measured side by side in one process (variants taking turns, medians).

    python scripts/bench_cached_encoder.py [--batch 4] [--tokens 30] [--repeats 3] [--threads 1] [--dry-run]

Variants: `whole 30 s` (every parameter trained, input_features padded to 30 s); the decoder alone on cached
encoder states (trainer.frozen=[encoder]) at 30 s (1500 positions); the same with the cross-attention key/value
projections frozen too (trainer.frozen=[encoder, cross_kv]), at 30 s and on a 10 s window (500 positions,
data.loader.window_frames=1000); and that last one with the decoder upcycled to MoE (E=4, top-2, moe.every=2:
decoder layers 2, 4, 6, as the real-weights regimes).
A step is forward + backward + AdamW over the trainable parameters. Targets (issue 32): cached >= 8x faster than
whole; decoder MoE <= 1.5x the dense decoder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.utils.bench import device_name, interleaved_medians  # noqa: E402


def build(args, moe: bool):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from src.models.config import MoEConfig
    from src.models.upcycling.apply import upcycle_model
    from src.models.upcycling.config import strategy_config

    torch.manual_seed(0)
    d, layers, heads = args.d_model, args.layers, max(1, args.d_model // 64)
    cfg = WhisperConfig(d_model=d, encoder_layers=layers, decoder_layers=layers, encoder_attention_heads=heads,
                        decoder_attention_heads=heads, encoder_ffn_dim=4 * d, decoder_ffn_dim=4 * d,
                        vocab_size=args.vocab, max_source_positions=1500, pad_token_id=0, bos_token_id=0,
                        eos_token_id=0, decoder_start_token_id=1)
    model = WhisperForConditionalGeneration(cfg).train()
    if moe:
        upcycle_model(model, MoEConfig(num_experts=4, top_k=2, where="decoder", every=2),
                      strategy_config({"strategy": "vanilla"}), seed=0, calib=None, progress=False)
        with torch.no_grad():  # spread the tokens over the experts, as a trained router does
            for m in model.modules():
                if hasattr(m, "router"):
                    m.router.weight.normal_(0, 0.5)
    return model


def step_fn(model, batch: dict, frozen: list[str]):
    """One training step's closure with the ``frozen`` parameter groups (trainer.frozen) left out."""
    from src.models.backbone import encoder_inputs
    from src.training.param_groups import set_trainable
    from src.training.trainer import token_loss

    labels = batch["decoder_input_ids"].roll(-1, 1)

    def step():
        set_trainable(model, ["all"], frozen)  # the two models serve several variants: each sets its own
        opt = opts.setdefault(id(step), torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                                          lr=1e-5))
        opt.zero_grad(set_to_none=True)
        out = model(**encoder_inputs(batch, torch.device("cpu")), decoder_input_ids=batch["decoder_input_ids"])
        token_loss(out.logits, labels)[0].backward()
        opt.step()

    opts: dict = {}
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=30, help="target tokens per clip")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes: a check that it runs")
    args = ap.parse_args()
    args.d_model, args.layers, args.vocab = (64, 1, 500) if args.dry_run else (512, 6, 51865)
    torch.set_num_threads(args.threads)
    from src.data.dataset import ENCODER_STATES

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, args.vocab - 100, (args.batch, args.tokens), generator=g)
    dense, moe = build(args, moe=False), build(args, moe=True)

    def states(positions: int) -> dict:
        return {ENCODER_STATES: torch.randn(args.batch, positions, args.d_model, generator=g), "decoder_input_ids": ids}

    enc, kv = ["encoder"], ["encoder", "cross_kv"]
    fns = {"whole 30 s": step_fn(dense, {"input_features": torch.randn(args.batch, 80, 3000, generator=g),
                                         "decoder_input_ids": ids}, []),
           "decoder, cached 30 s": step_fn(dense, states(1500), enc),
           "decoder, cached 30 s, cross k/v frozen": step_fn(dense, states(1500), kv),
           "decoder, cached 10 s, cross k/v frozen": step_fn(dense, states(500), kv),
           "MoE decoder, cached 10 s, k/v frozen": step_fn(moe, states(500), kv)}
    sec = interleaved_medians(fns, args.repeats, "cpu")
    shape = "d_model 64, 1+1 layers (dry run)" if args.dry_run else "whisper-base shapes"
    print(f"training step, {shape}, batch {args.batch}, {args.tokens} target tokens, {device_name('cpu')}")
    print(f"| {'variant':<40} | {'s/step':>8} | {'ms/clip':>8} | {'whole / it':>10} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 10}|{'-' * 12}|")
    for name, s in sec.items():
        print(f"| {name:<40} | {s:>8.3f} | {1000 * s / args.batch:>8.0f} | {sec['whole 30 s'] / s:>9.1f}x |")
    moe = sec["MoE decoder, cached 10 s, k/v frozen"] / sec["decoder, cached 10 s, cross k/v frozen"]
    print(f"MoE decoder / dense decoder (cached 10 s, k/v frozen) = {moe:.2f}x (target <= 1.5); cached vs whole: "
          "target >= 8x")


if __name__ == "__main__":
    main()
