"""Compare runs: `python -m src.report DIR... [--split test] [--out DIR]` (run dirs or sweep dirs).

Writes comparison.md/.csv (strategy x training schedule rows, per-direction BLEU, mean ± std over
seeds, Δ vs dense, paired bootstrap vs dense per seed pair, and what each row cost: optimizer steps,
target tokens, wall time, active / total parameters), bleu_by_direction.png and per-strategy
expert-usage heatmaps, and prints the table. The compared metrics (BLEU, COMET) and the headline
(BLEU) are the metric registry's (src/evaluation/metrics.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", help="run dirs or multirun sweep dirs")
    ap.add_argument("--split", default="test")
    ap.add_argument("--baseline", default="dense")
    ap.add_argument("--out", default=None, help="output dir (default: the first DIR's report/)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from src.evaluation.report import build_report

    out = Path(args.out) if args.out else Path(args.dirs[0]) / "report"
    try:
        report = build_report(args.dirs, out, args.split, args.baseline)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report["markdown"])
    for f in report["files"]:
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
