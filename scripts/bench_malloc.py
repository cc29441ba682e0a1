"""glibc allocator tuning (`trainer.tune_cpu_malloc`) on and off, measured side by side in one run.

    python scripts/bench_malloc.py [--shapes small] [--tokens 2048] [--repeats 5] [--rounds 2]

The allocator setting is per process, so each measurement is `scripts/bench_moe.py`'s set of layers
(dense FFN, our MoE layer, transformers' Mixtral blocks) timed in a child process, the two settings
taking turns round by round (default, tuned, default, tuned, ...) so that load drifting on a shared
machine hits both alike. Prints each setting's median ms per fwd+bwd and the ratio default / tuned
(> 1: the tuning is faster), plus the Mixtral-vs-ours ratio under each setting.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.utils.bench import device_name  # noqa: E402
from src.utils.malloc import tune_glibc_malloc  # noqa: E402

SETTINGS = ("default", "tuned")


def child(args) -> None:
    """One process, one setting: the bench_moe rows as JSON {label: seconds}."""
    if args.child == "tuned" and not tune_glibc_malloc():
        sys.exit("allocator tuning is not available here (needs Linux/glibc)")
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_moe

    ns = argparse.Namespace(device="cpu", experts=args.experts, top_k=args.top_k, dtype="fp32",
                            tokens=args.tokens, repeats=args.repeats)
    rows, auto = bench_moe.bench_shape(bench_moe.SHAPES[args.shape], ns)
    print(json.dumps({"rows": dict(rows), "auto": auto}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["small"], choices=["small", "large_v3", "tiny"],
                    help="tiny: bench_moe's d_model 64, a dry run of the script")
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2, help="processes per setting, alternating")
    ap.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    ap.add_argument("--shape", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    print(f"glibc allocator tuning, MoE layer fwd+bwd, E={args.experts} k={args.top_k}, {args.tokens} tokens, fp32, "
          f"{device_name('cpu')}; {args.rounds} processes per setting x median of {args.repeats} calls")
    for shape in args.shapes:
        runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
        for _ in range(args.rounds):
            for setting in SETTINGS:
                cmd = [sys.executable, __file__, "--child", setting, "--shape", shape, "--tokens", str(args.tokens),
                       "--experts", str(args.experts), "--top-k", str(args.top_k), "--repeats", str(args.repeats)]
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                if out.returncode:
                    sys.exit(f"bench_malloc child ({setting}) failed:\n{out.stderr.strip()[-2000:]}")
                runs[setting].append(json.loads(out.stdout.strip().splitlines()[-1]))
        med = {s: {label: statistics.median(r["rows"][label] for r in rs) for label in rs[0]["rows"]}
               for s, rs in runs.items()}
        auto = runs["default"][0]["auto"]
        print(f"\nwhisper-{shape} FFN shape")
        print(f"| {'layer':<50} | {'default ms':>10} | {'tuned ms':>9} | {'default/tuned':>13} |")
        print(f"|{'-' * 52}|{'-' * 12}|{'-' * 11}|{'-' * 15}|")
        for label in med["default"]:
            d, t = med["default"][label], med["tuned"][label]
            print(f"| {label:<50} | {1000 * d:>10.1f} | {1000 * t:>9.1f} | {d / t:>13.2f} |")
        mix = "transformers Mixtral block, Whisper FFN experts"
        print("Mixtral with Whisper experts / ours: "
              + "   ".join(f"{s} {med[s][mix] / med[s][auto]:.2f}" for s in SETTINGS))


if __name__ == "__main__":
    main()
