"""MoE layer forward+backward throughput at Whisper FFN shapes, measured side by side in one run.

    python scripts/bench_moe.py [--shapes small large_v3] [--tokens 4096] [--device cuda] [--dtype bf16]

Rows, on the same tokens (E=8, k=2 by default):
- dense FFN (fc1 -> GELU -> fc2, d -> 4d -> d): the reference; an MoE does k FFN evaluations per
  token, so the ideal MoE time is k x dense;
- ours: MoEBlock (router + sort + expert matmuls + scatter), the project's one dispatch path, with the
  expert matmuls as torch's grouped kernel and as the per-expert loop (`moe.dispatch`); the ratios
  use the one `moe.dispatch=auto` takes on this device and dtype;
- transformers' MixtralSparseMoeBlock: gated SwiGLU experts at matched FLOPs (intermediate 2/3 x 4d,
  so three matrices cost what our two do), its own per-expert loop;
- the same Mixtral block with Whisper's experts (fc1 -> GELU -> fc2 with biases; the non-gated
  adaptation): identical expert math to ours, so only the dispatch differs.
Prints tokens/s and the ratios: ours / (k x dense) (target on GPU: <= 1.3) and Mixtral / ours.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.models import dispatch  # noqa: E402
from src.models.config import MoEConfig  # noqa: E402
from src.models.moe import MoEBlock  # noqa: E402
from src.utils.bench import device_name, interleaved_medians  # noqa: E402

SHAPES = {"small": 768, "large_v3": 1280, "tiny": 64}  # d_model; FFN 4d (tiny: a dry run of the script)
GROUPED = "ours, grouped kernel (moe.dispatch=grouped)"
LOOP = "ours, per-expert loop (moe.dispatch=loop)"
MIXTRAL_GATED = "transformers Mixtral block (gated, matched FLOPs)"
MIXTRAL_WHISPER = "transformers Mixtral block, Whisper FFN experts"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def fwd_bwd(fn, x: torch.Tensor, autocast: torch.dtype | None):
    """One forward+backward of ``fn`` on ``x``, as a callable to time."""
    def step():
        x.grad = None
        with torch.autocast(x.device.type, dtype=autocast, enabled=autocast is not None):
            out = fn(x)
        out = out[0] if isinstance(out, tuple) else out
        out.float().square().mean().backward()

    return step


def mixtral_block(d: int, ff: int, experts: int, k: int, whisper_experts: bool = False) -> nn.Module:
    """transformers' Mixtral sparse block: its own gated experts, or (non-gated adaptation) Whisper's
    fc1 -> GELU -> fc2 experts with biases in its routing loop, the same expert math as ours."""
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    cfg = MixtralConfig(hidden_size=d, intermediate_size=ff, num_local_experts=experts, num_experts_per_tok=k)
    block = MixtralSparseMoeBlock(cfg)
    if whisper_experts:
        block.experts = nn.ModuleList(nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))
                                      for _ in range(experts))
    return block


def bench_shape(d: int, args) -> tuple[list[tuple[str, float]], str]:
    """Rows (label, seconds per fwd+bwd), the variants timed in turns; and the path `auto` takes here."""
    dev, E, k = torch.device(args.device), args.experts, args.top_k
    ff = 4 * d
    autocast = DTYPES[args.dtype] if args.dtype != "fp32" else None
    x = torch.randn(1, args.tokens, d, device=dev, requires_grad=True)
    dense = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d)).to(dev)
    moes = {}
    for mode in ("grouped", "loop"):
        torch.manual_seed(1)
        moes[mode] = MoEBlock(d, ff, MoEConfig(num_experts=E, top_k=k, dispatch=mode)).to(dev)
        with torch.no_grad():
            for p in moes[mode].experts.parameters():
                p.normal_(0, 0.02)
            moes[mode].router.weight.normal_(0, 1.0)  # spread tokens over experts
    fns = {"dense FFN": dense, GROUPED: moes["grouped"], LOOP: moes["loop"],
           MIXTRAL_GATED: mixtral_block(d, int(round(ff * 2 / 3)), E, k).to(dev),
           MIXTRAL_WHISPER: mixtral_block(d, ff, E, k, whisper_experts=True).to(dev)}
    if not dispatch._GROUPED:
        del fns[GROUPED]
    times = interleaved_medians({name: fwd_bwd(fn, x, autocast) for name, fn in fns.items()}, args.repeats, dev)
    with torch.autocast(dev.type, dtype=autocast, enabled=autocast is not None):
        auto = GROUPED if dispatch.use_grouped_mm(x, moes["loop"].experts.w1) else LOOP
    return list(times.items()), auto


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["small", "large_v3"], choices=list(SHAPES))
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bf16" if torch.cuda.is_available() else "fp32", choices=list(DTYPES))
    args = ap.parse_args()
    torch.manual_seed(0)
    name = device_name(args.device)
    print(f"MoE layer fwd+bwd, E={args.experts} k={args.top_k}, {args.tokens} tokens, {args.dtype}, {name}")
    for shape in args.shapes:
        d = SHAPES[shape]
        rows, auto = bench_shape(d, args)
        times = dict(rows)
        print(f"\nwhisper-{shape} FFN shape (d={d}, ffn={4 * d}); median of {args.repeats} interleaved calls")
        print(f"| {'layer':<50} | {'ms':>9} | {'tokens/s':>11} |")
        print(f"|{'-' * 52}|{'-' * 11}|{'-' * 13}|")
        for label, t in rows:
            print(f"| {label:<50} | {1000 * t:>9.2f} | {args.tokens / t:>11.0f} |")
        ours = times[auto]
        line = (f"ours = moe.dispatch=auto = {'grouped' if auto == GROUPED else 'loop'} here   "
                f"ours / ({args.top_k} x dense) = {ours / (args.top_k * times['dense FFN']):.2f}   "
                f"Mixtral gated / ours = {times[MIXTRAL_GATED] / ours:.2f}   "
                f"Mixtral with Whisper experts / ours = {times[MIXTRAL_WHISPER] / ours:.2f}")
        if GROUPED in times:
            line += f"   loop / grouped = {times[LOOP] / times[GROUPED]:.2f}"
        print(line)


if __name__ == "__main__":
    main()
