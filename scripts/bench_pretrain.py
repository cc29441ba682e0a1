"""The toy model's pretraining on the CPU, side by side in one run: one process vs `pretrain.processes` data-parallel
processes (seconds of training, ratio, and whether two multi-process runs give the same bytes); and AdamW's
step on the toy model's parameter shapes, fused kernel vs the per-tensor loop.

    python scripts/bench_pretrain.py [--steps 60] [--processes 2] [--cache DIR] [--dry-run]

The toy corpus is built (or reused) under --cache first; each pretraining then runs `python -m src.pretrain`
with `+rebuild=true` into its own cache dir (the corpus linked in), one thread per process. --dry-run: the tests'
tiny corpus and toy model, 2 steps, a temporary cache (`make bench DRY=1`: a check that the script runs; its
times mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# --dry-run: the tests' tiny corpus and toy model (tests/helpers.py TINY), seconds per pretraining
TINY = ["data.corpus.n_asr_train=48", "data.corpus.n_asr_dev=8", "data.corpus.n_st_train=12", "data.corpus.n_st_dev=4",
        "data.corpus.n_st_test=4", "model.toy.d_model=64", "model.toy.encoder_layers=1", "model.toy.decoder_layers=1",
        "model.toy.ffn_dim=128", "pretrain.vocab_size=600"]


def pretrain(cache: Path, work: Path, steps: int, processes: int, overrides: list[str]) -> tuple[float, dict]:
    """(training seconds, state dict) of one pretraining into ``work`` (the corpus linked from ``cache``)."""
    from safetensors.torch import load_file

    work.mkdir(parents=True)
    (work / "toy_corpus").symlink_to(cache / "toy_corpus")
    cmd = [sys.executable, "-m", "src.pretrain", f"paths.cache_dir={work}", f"pretrain.steps={steps}",
           f"pretrain.processes={processes}", "progress=false", "+rebuild=true", f"hydra.run.dir={work / 'run'}",
           *overrides]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    (model,) = (work / "whisper_toy").glob("seed*/model.safetensors")
    summary = json.loads((model.parent / "pretrain_summary.json").read_text())
    return summary["history"][0]["seconds"], load_file(str(model))


def adamw_ms(fused: bool, repeats: int = 50) -> float:
    """Milliseconds per AdamW step over the toy model's shapes (d_model 128, FFN 512, 4 layers, vocab 2000)."""
    torch.manual_seed(0)
    shapes = [(512, 128), (128, 512), (128, 128), (128, 128), (128, 128), (128, 128)] * 4 + [(2000, 128)]
    params = [torch.nn.Parameter(torch.randn(s)) for s in shapes + [(n,) for s in shapes for n in s[:1]]]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW(params, lr=1e-3, fused=fused, foreach=None if fused else False)
    for _ in range(3):
        opt.step()
    t = time.perf_counter()
    for _ in range(repeats):
        opt.step()
    return 1000 * (time.perf_counter() - t) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=None, help="default 60 (--dry-run: 2)")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--cache", default=None, help="where the toy corpus is (built if missing; default .cache, "
                                                  "--dry-run: a temporary dir)")
    ap.add_argument("--dry-run", action="store_true", help="tiny corpus and model, 2 steps: check that it runs")
    args = ap.parse_args()
    steps = args.steps or (2 if args.dry_run else 60)
    overrides = TINY if args.dry_run else []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache or (Path(tmp) / "cache" if args.dry_run else ROOT / ".cache"))
        subprocess.run([sys.executable, "-m", "src.summary", f"paths.cache_dir={cache}", "progress=false",
                        f"hydra.run.dir={Path(tmp) / 'summary'}", *overrides], cwd=ROOT, check=True,
                       capture_output=True)
        one, _ = pretrain(cache, Path(tmp) / "one", steps, 1, overrides)
        many, a = pretrain(cache, Path(tmp) / "many", steps, args.processes, overrides)
        _, b = pretrain(cache, Path(tmp) / "again", steps, args.processes, overrides)
    same = all(torch.equal(a[k], b[k]) for k in a)
    what = "toy pretraining" + (" (dry run: tiny corpus and model)" if args.dry_run else "")
    print(f"{what}, {steps} steps (training seconds): 1 process {one:.1f} s, {args.processes} processes "
          f"{many:.1f} s: {one / many:.2f}x; two {args.processes}-process runs bit-identical: {same}")
    torch.set_num_threads(1)
    loop, fused = adamw_ms(False), adamw_ms(True)
    print(f"AdamW step on the toy shapes, 1 thread: per-tensor loop {loop:.2f} ms, fused {fused:.2f} ms: "
          f"{loop / fused:.2f}x")


if __name__ == "__main__":
    main()
