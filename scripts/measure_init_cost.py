"""What an upcycling init costs a real pretrained Whisper, end to end, before any training.

    python scripts/measure_init_cost.py [--model tiny.en|base] [--calibration transcribe|translate]
                                        [--budgets 0.02,0.05,0.1] [--experts 4] [--top-k 2] [--set spri.energy=0.99 ...]

On an offline OpenAI Whisper (src/pretrained/offline.py: tiny.en or the multilingual base) and clear eSpeak
English: every FFN (encoder and decoder) upcycled by each strategy with its default knobs (and SPRI's
`energy: auto` at each KL budget of --budgets); prints one Markdown table: the init's disruption on the
calibration batches (mean KL(dense || upcycled) per target token, and the upcycled/dense cross-entropy),
the greedy WER of English transcription at init (padded to 30 s), and the upcycling time. Calibration:
`transcribe` = the same eSpeak clips' English transcripts; `translate` = 16 en->de examples of the toy
corpus (a multilingual model only: targets the dense model has not learned).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.config import LoaderConfig  # noqa: E402
from src.data.covost2 import CoVoST2Source  # noqa: E402
from src.data.features import N_FRAMES_30S  # noqa: E402
from src.data.loading import make_loader  # noqa: E402
from src.data.toy.english import build_english_set, english_set_dir  # noqa: E402
from src.evaluation.config import DecodeConfig  # noqa: E402
from src.evaluation.generation import decode  # noqa: E402
from src.evaluation.metrics import word_error_rate  # noqa: E402
from src.evaluation.run import task_examples  # noqa: E402
from src.models.backbone import load_whisper, set_pad_to_30s  # noqa: E402
from src.models.config import MoEConfig  # noqa: E402
from src.models.upcycling import STRATEGIES  # noqa: E402
from src.models.upcycling.apply import upcycle_model  # noqa: E402
from src.models.upcycling.calibration import teacher_forced  # noqa: E402
from src.models.upcycling.config import strategy_config  # noqa: E402
from src.pretrained.offline import ensure_offline_model  # noqa: E402

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


def calibration_batches(kind: str, model, tokenizer, english: list, source, cache: Path) -> list[dict]:
    """The batches `upcycle_model` calibrates on (and the KL / CE are measured on)."""
    if kind == "transcribe":
        examples, src = english, source
    else:
        from src.data.toy.source import ToySource

        src = ToySource(corpus={}, cache_dir=str(cache), directions=["de"], progress=False)
        examples = src.examples("train")[:16]
    loader = make_loader(examples, src, tokenizer, LoaderConfig(max_batch_frames=6 * N_FRAMES_30S),
                         n_mels=model.config.num_mel_bins, pad_to_30s=False, shuffle=False)
    return [b for b in loader if "input_features" in b]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en", help="an offline model: tiny.en | base")
    ap.add_argument("--calibration", default="transcribe", choices=("transcribe", "translate"))
    ap.add_argument("--budgets", default="", help="extra SPRI rows: energy=auto at each max_init_kl, e.g. 0.02,0.1")
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--strategies", default=",".join(sorted(n for n, s in STRATEGIES.items() if s.facts.is_moe)))
    ap.add_argument("--set", nargs="*", default=[], help="strategy.knob=value, e.g. spri.energy=0.99")
    args = ap.parse_args()
    cache = Path(os.environ.get("UPCYCLE_ST_CACHE", ROOT / ".cache"))
    model, tokenizer = load_whisper(ensure_offline_model(args.model, cache), pad_to_30s=True)
    source = CoVoST2Source(str(build_english_set(english_set_dir(cache))), directions=["de"], progress=False)
    examples = task_examples(source.examples("test"), "transcribe")
    refs = [ex.sentence for ex in examples]

    def wer(m) -> float:
        set_pad_to_30s(m, True)
        loader = make_loader(examples, source, tokenizer, LoaderConfig(max_batch_frames=6 * N_FRAMES_30S),
                             n_mels=m.config.num_mel_bins, pad_to_30s=True, shuffle=False)
        hyps = decode(m, tokenizer, loader, DecodeConfig(greedy=True), progress=False)
        return word_error_rate([hyps[ex.id] for ex in examples], refs)

    calib = calibration_batches(args.calibration, model, tokenizer, examples, source, cache)
    dense_wer = wer(model)
    set_pad_to_30s(model, False)
    dense_ce = teacher_forced(model, calib).ce
    knobs = parse_sets(args.set)
    moe_cfg = MoEConfig(num_experts=args.experts, top_k=args.top_k, where="both", every=1)
    runs = [(name, knobs.get(name, {})) for name in args.strategies.split(",")]
    runs += [("spri", {**knobs.get("spri", {}), "max_init_kl": float(b)}) for b in args.budgets.split(",") if b]
    rows = [f"| dense | - | 0 | 1.000 | {dense_wer:.1f} | - |"]
    for name, kw in runs:
        moe = copy.deepcopy(model)
        t0 = time.perf_counter()
        report = upcycle_model(moe, copy.deepcopy(moe_cfg), strategy_config({"strategy": name, **kw}), seed=0,
                               calib=calib, progress=False)
        seconds = time.perf_counter() - t0
        cost = report["init_loss"]
        settings = ", ".join(f"{k}={v}" for k, v in kw.items()) or "defaults"
        if "auto" in report:
            settings += f" ({report['auto']['knob']}=auto -> {report['auto']['value']:.3f})"
        rows.append(f"| {name} | {settings} | {cost['kl']:.3f} | {cost['ratio']:.3f} | {wer(moe):.1f} | "
                    f"{seconds:.0f} |")
    n_layers = model.config.encoder_layers + model.config.decoder_layers
    print(f"Whisper {args.model}, every FFN upcycled ({n_layers} layers), E={args.experts}, top-{args.top_k}; "
          f"calibration: {args.calibration} ({sum(len(b['input_features']) for b in calib)} examples, dense CE "
          f"{dense_ce:.3f}); greedy WER on {len(examples)} eSpeak English clips, padded to 30 s\n")
    print("| strategy | settings | KL at init (nats/token) | CE ratio | greedy WER at init (%) | upcycle s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
