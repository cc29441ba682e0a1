"""One-time preparation of real CoVoST2 En->X (optional; the loader reads the raw files too).

    python scripts/prepare_covost2.py --root /data/cv4 [--tsv-dir DIR] [--out /data/cv4_16k]

Probes every clip once (durations cached where the loader looks for them, so later runs start
fast), writes one manifest per split joining the 15 directions on `path`
(`<root or out>/covost2_manifest.<split>.tsv`: path, sentence, duration, translation_<xx>...), and
with --out writes a prepared copy: 16 kHz FLAC clips plus TSVs rewritten to point at them, itself a
valid `data.root`.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import soundfile as sf
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.audio import SAMPLE_RATE, ClipError  # noqa: E402
from src.data.covost2 import CoVoST2Source, read_tsv  # noqa: E402
from src.data.languages import COVOST2_EN_XX  # noqa: E402
from src.data.schema import SPLITS  # noqa: E402


def write_tsv(df, path: Path) -> None:
    df.to_csv(path, sep="\t", header=True, index=False, encoding="utf-8", escapechar="\\", quoting=csv.QUOTE_NONE)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="Common Voice v4 root (en/clips, en/validated.tsv)")
    ap.add_argument("--tsv-dir", default=None, help="where covost_v2.en_XX*.tsv are (default: --root)")
    ap.add_argument("--directions", nargs="*", default=list(COVOST2_EN_XX))
    ap.add_argument("--cache-dir", default=".cache", help="where the loader caches clip durations")
    ap.add_argument("--out", default=None, help="write 16 kHz FLAC copies and rewritten TSVs here")
    args = ap.parse_args(argv)

    try:
        src = CoVoST2Source(args.root, directions=args.directions, tsv_dir=args.tsv_dir, cache_dir=args.cache_dir)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else None
    dest = out or Path(args.root)
    rename = (lambda p: p.rsplit(".", 1)[0] + ".flac") if out else (lambda p: p)
    keep: set[str] = set()
    for split in SPLITS:
        examples = src.examples(split)
        rows: dict[str, dict] = {}
        for ex in examples:
            row = rows.setdefault(ex.audio, {"path": rename(ex.audio), "sentence": ex.sentence,
                                             "duration": f"{ex.duration:.3f}" if ex.duration else ""})
            row[f"translation_{ex.tgt_lang}"] = ex.translation
        keep |= set(rows)
        cols = ["path", "sentence", "duration"] + [f"translation_{d}" for d in src.directions]
        dest.mkdir(parents=True, exist_ok=True)
        with open(dest / f"covost2_manifest.{split}.tsv", "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, cols, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", restval="")
            w.writeheader()
            w.writerows(rows.values())
        print(f"{split}: {len(rows)} clips, {len(examples)} examples")
    if out:
        clips = out / "en" / "clips"
        clips.mkdir(parents=True, exist_ok=True)
        for key in tqdm(sorted(keep), desc="16 kHz FLAC copies"):
            target = clips / rename(key)
            if target.exists():
                continue
            try:
                sf.write(target, src.clips.load(key), SAMPLE_RATE, format="FLAC")
            except ClipError as e:
                src.skips.skip(e.reason, key, e.detail)
        cv = read_tsv(Path(args.root) / "en" / "validated.tsv")
        cv = cv[cv["path"].isin(keep)].assign(path=lambda d: d["path"].map(rename))
        write_tsv(cv, out / "en" / "validated.tsv")
        for tgt in src.directions:
            for split in SPLITS:
                df = src.tables.direction(tgt, split)
                df = df[df["path"].isin(keep)].assign(path=lambda d: d["path"].map(rename))
                write_tsv(df, out / f"covost_v2.en_{tgt}.{split}.tsv")
        print(f"prepared copy: data.root={out}")
    print(f"skipped: {src.skips.as_dict() or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
