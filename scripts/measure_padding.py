"""Greedy WER of pretrained Whisper with clips padded to 30 s vs padded only to the batch's longest clip.

    python scripts/measure_padding.py --librivox DIR [--models tiny.en,base] [--max-new-tokens 40,128]

`model.pad_to_30s=true` pads every clip to Whisper's 30 s (as OpenAI trained it); `false` pads a batch to its
longest clip rounded up to 32 frames and slices the encoder's positions. On which clips unpadded decoding
fails depends on what the batch puts after each clip, so every variant runs the project's own path
(src.data.loading.make_loader, the short-form encoder, src.evaluation.generation.decode, greedy):

    30s            padded to 30 s, batches as the real-model tests make them (6 clips x 3000 frames)
    30s-bs1        the same, one clip per batch (30 s padding makes the batching irrelevant)
    short          pad_to_30s=false, the same loader settings: here every clip in one batch, padded to the
                   longest (what measure_init_cost.py measures)
    short-bs1      one clip per batch, padded to its own length (x32): what length-sorted batches of similar
                   clips (CoVoST2 evaluation and training) give every clip
    short-bs1-1s   the same plus 100 frames (1 s) of the clip's own silence after it (diagnostic)
    short-bs1-10s  the same padded to at least 1000 frames, 10 s (diagnostic)

Sets: the project's 12 eSpeak NG clips (src/data/toy/english.py) and, with --librivox, every DIR/*.wav with its
transcript in DIR/<stem>.txt (e.g. test/data/librivox/ of the pocketsphinx 5.1.1 sdist: five public-domain
LibriVox clips; not part of this repository). WER is corpus WER after Whisper's English normaliser; "limit"
counts clips whose decoding never emitted end-of-text (it ran to --max-new-tokens). Then the encoder's cost per
clip padded vs unpadded: GFLOPs counted from the config, and time (one clip per call, --threads threads, the two
in turns, median of --reps calls; on a shared machine the time is the noisier of the two).

Models come from src.pretrained.offline (tiny.en, base) when that module exists, else tiny.en from
src.pretrained.offline; any name may also be a converted HF checkpoint directory.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.config import LoaderConfig  # noqa: E402
from src.data.covost2 import CoVoST2Source  # noqa: E402
from src.data.features import N_FRAMES_30S, batch_frames  # noqa: E402
from src.data.loading import make_loader  # noqa: E402
from src.data.text import EOT, token_id  # noqa: E402
from src.data.toy.english import build_english_set, english_set_dir  # noqa: E402
from src.evaluation.config import DecodeConfig  # noqa: E402
from src.evaluation.generation import decode  # noqa: E402
from src.evaluation.metrics import word_error_rate  # noqa: E402
from src.evaluation.run import task_examples  # noqa: E402
from src.models.backbone import load_whisper, set_pad_to_30s  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TESTS_LOADER = LoaderConfig(max_batch_frames=6 * N_FRAMES_30S)  # tests/models/test_real_whisper.py, measure_init_cost
ONE_PER_BATCH = LoaderConfig(max_batch_frames=6 * N_FRAMES_30S, max_batch_size=1)
VARIANTS = {  # key -> (table label, pad_to_30s, loader, silence frames added after the longest clip, minimum frames)
    "30s": ("padded 30 s", True, TESTS_LOADER, 0, 0),
    "30s-bs1": ("padded 30 s, 1 per batch", True, ONE_PER_BATCH, 0, 0),
    "short": ("unpadded, all in one batch", False, TESTS_LOADER, 0, 0),
    "short-bs1": ("unpadded, 1 per batch", False, ONE_PER_BATCH, 0, 0),
    "short-bs1-1s": ("unpadded, 1 per batch, +1 s silence", False, ONE_PER_BATCH, 100, 0),
    "short-bs1-10s": ("unpadded, 1 per batch, >= 10 s", False, ONE_PER_BATCH, 0, 1000),
}


def resolve_model(name: str, cache: Path) -> Path:
    if Path(name).is_dir():
        return Path(name)
    from src.pretrained.offline import ensure_offline_model

    return ensure_offline_model(name, cache)


def librivox_set(src: Path, into: Path) -> Path:
    """A CoVoST2-layout copy of DIR/*.wav + DIR/<stem>.txt (as build_english_set writes), for the project's loader."""
    clips = into / "en" / "clips"
    clips.mkdir(parents=True)
    rows = []
    for wav in sorted(src.glob("*.wav")):
        txt = wav.with_suffix(".txt")
        if txt.exists():
            shutil.copy(wav, clips / wav.name)
            rows.append([wav.name, " ".join(txt.read_text(encoding="utf-8").split())])
    if not rows:
        raise SystemExit(f"{src}: no *.wav with a matching .txt transcript")
    for name, header, body in (
        ("en/validated.tsv", ["client_id", "path", "sentence", "up_votes", "down_votes"],
         [["librivox", n, s, "2", "0"] for n, s in rows]),
        ("covost_v2.en_de.tsv", ["path", "sentence", "translation", "split"], [[n, s, s, "test"] for n, s in rows]),
    ):
        with open(into / name, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
            w.writerow(header)
            w.writerows(body)
    return into


def silence_of(features: torch.Tensor) -> torch.Tensor:
    """(B, 1, 1) each row's silence value, as src.data.features.clip_features derives it from the row's peak."""
    peak = features.amax(dim=(1, 2), keepdim=True) * 4.0 - 4.0
    return (torch.clamp(peak - 8.0, min=-10.0) + 4.0) / 4.0


def extended(loader, tail: int, minimum: int):
    """The loader's batches with `tail` more silence frames after the longest clip and at least `minimum` frames
    (rounded up to 32, at most 30 s)."""
    for batch in loader:
        if "input_features" in batch and (tail or minimum):
            feats = batch["input_features"]
            longest = int(batch["feature_lengths"].max())
            n = min(N_FRAMES_30S, max(feats.shape[-1], batch_frames(longest + tail, False), minimum))
            pad = silence_of(feats).expand(-1, feats.shape[1], n - feats.shape[-1])
            batch = {**batch, "input_features": torch.cat([feats, pad], dim=-1)}
        yield batch


class LimitCounter:
    """The tokenizer, seen by decode(): counts decoded rows with no end-of-text token (they hit the limit)."""

    def __init__(self, tokenizer) -> None:
        self._tok = tokenizer
        self._eot = token_id(tokenizer, EOT)
        self.hit = 0

    def __getattr__(self, name):
        return getattr(self._tok, name)

    def __len__(self) -> int:
        return len(self._tok)

    def batch_decode(self, sequences, **kw):
        self.hit += int((~(sequences == self._eot).any(dim=1)).sum())
        return self._tok.batch_decode(sequences, **kw)


def encoder_gflops(config, frames: int) -> float:
    """Multiply-adds x2 of one clip through the encoder: the two convs, then per layer the q/k/v/out projections,
    the attention scores and mixing (quadratic in length) and the FFN."""
    d, t = config.d_model, (frames + 1) // 2
    convs = 3 * config.num_mel_bins * d * frames + 3 * d * d * t
    layer = 4 * d * d * t + 2 * t * t * d + 2 * d * config.encoder_ffn_dim * t
    return 2 * (convs + config.encoder_layers * layer) / 1e9


def encoder_cost(model, examples, source, tokenizer, reps: int) -> tuple[list[float], ...]:
    """Per clip, one clip per call: (padded ms, unpadded ms, padded GFLOPs, unpadded GFLOPs); the two encoders
    (sharing the same weights) timed in turns, median of `reps` calls each."""
    batches = {}
    for pad in (True, False):
        loader = make_loader(examples, source, tokenizer, ONE_PER_BATCH, n_mels=model.config.num_mel_bins,
                             pad_to_30s=pad, shuffle=False)
        batches[pad] = {b["ids"][0]: b["input_features"] for b in loader if "input_features" in b}
    encoders = {}
    for pad in (True, False):
        set_pad_to_30s(model, pad)
        encoders[pad] = model.get_encoder().eval()
    out: tuple[list[float], ...] = ([], [], [], [])
    with torch.no_grad():
        for ex_id, short in batches[False].items():
            feats = {True: batches[True][ex_id], False: short}
            times: dict[bool, list[float]] = {True: [], False: []}
            for rep in range(reps + 1):
                for pad in (True, False):
                    t0 = time.perf_counter()
                    encoders[pad](feats[pad])
                    if rep:  # the first round warms up
                        times[pad].append(1000 * (time.perf_counter() - t0))
            out[0].append(statistics.median(times[True]))
            out[1].append(statistics.median(times[False]))
            out[2].append(encoder_gflops(model.config, N_FRAMES_30S))
            out[3].append(encoder_gflops(model.config, short.shape[-1]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny.en,base", help="offline model names or checkpoint directories")
    ap.add_argument("--librivox", type=Path, help="a directory of *.wav with <stem>.txt transcripts")
    ap.add_argument("--no-espeak", action="store_true", help="skip the project's eSpeak clips")
    ap.add_argument("--max-new-tokens", default="40", help="comma-separated, e.g. 40,128 (decode's default is 128)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of the keys above")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3, help="encoder timing: calls per clip (0: no timing)")
    ap.add_argument("--show", action="store_true", help="print the hypotheses that hit the token limit")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]  # "" = encoder cost only
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    limits = [int(x) for x in args.max_new_tokens.split(",")]
    cache = Path(os.environ.get("UPCYCLE_ST_CACHE", ROOT / ".cache"))

    tmp = Path(tempfile.mkdtemp(prefix="measure_padding."))
    try:
        sets = {}
        if not args.no_espeak:
            sets["eSpeak"] = build_english_set(english_set_dir(cache))
        if args.librivox:
            sets["LibriVox"] = librivox_set(args.librivox, tmp / "librivox")
        if not sets:
            raise SystemExit("nothing to measure: give --librivox DIR or leave the eSpeak set on")
        data = {}
        for label, root in sets.items():
            source = CoVoST2Source(str(root), directions=["de"], progress=False)
            examples = task_examples(source.examples("test"), "transcribe")
            secs = [source.clips.load(ex.audio).size / 16_000 for ex in examples]
            data[label] = (source, examples, secs)

        rows, timing = [], []
        for name in args.models.split(","):
            model, tokenizer = load_whisper(resolve_model(name, cache), pad_to_30s=True)
            n_mels = model.config.num_mel_bins
            for label, (source, examples, secs) in data.items():
                refs = [ex.sentence for ex in examples]
                for limit in limits:
                    for variant in variants:
                        title, pad_to_30s, lcfg, tail, minimum = VARIANTS[variant]
                        set_pad_to_30s(model, pad_to_30s)
                        loader = make_loader(examples, source, tokenizer, lcfg, n_mels=n_mels, pad_to_30s=pad_to_30s,
                                             shuffle=False)
                        counter = LimitCounter(tokenizer)
                        t0 = time.perf_counter()
                        hyps = decode(model, counter, extended(loader, tail, minimum),
                                      DecodeConfig(greedy=True, max_new_tokens=limit), progress=False)
                        seconds = time.perf_counter() - t0
                        wer = word_error_rate([hyps[ex.id] for ex in examples], refs)
                        rows.append(f"| {name} | {label} ({len(examples)}) | {title} | {limit} | {wer:.1f} | "
                                    f"{counter.hit}/{len(examples)} | {seconds:.0f} |")
                        print(rows[-1], flush=True)
                        if args.show and counter.hit:
                            for ex in examples:
                                if len(tokenizer(hyps[ex.id], add_special_tokens=False).input_ids) >= limit - 2:
                                    print(f"    {ex.id}: {hyps[ex.id][:160]!r}", flush=True)
                if args.reps:
                    padded, short, gf_padded, gf_short = encoder_cost(model, examples, source, tokenizer, args.reps)
                    timing.append(f"| {name} | {label} | {statistics.mean(secs):.1f} | "
                                  f"{statistics.mean(gf_padded):.1f} | {statistics.mean(gf_short):.2f} | "
                                  f"{sum(gf_padded) / sum(gf_short):.1f}x | "
                                  f"{statistics.mean(padded):.0f} | {statistics.mean(short):.0f} | "
                                  f"{sum(padded) / sum(short):.1f}x |")
                    print(timing[-1], flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nGreedy WER (%), torch {torch.__version__}, {args.threads} thread(s); limit = clips that never emitted "
          "end-of-text\n")
    print("| model | clips | padding, batching | max new tokens | WER | limit | decode s |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    if timing:
        print(f"\nEncoder cost per clip: GFLOPs (counted) and time (one clip per call, padded and unpadded in "
              f"turns, median of {args.reps}, {args.threads} thread(s))\n")
        print("| model | clips | mean clip s | GFLOPs padded 30 s | GFLOPs unpadded | ratio | ms padded 30 s | "
              "ms unpadded | ratio |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        print("\n".join(timing))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
