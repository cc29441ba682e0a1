"""Compare runs: `python -m src.report DIR... [--split test] [--baseline dense] [--out DIR]
[--contrast "NAME=A vs B" ...] [--equivalence-margin M] [--resample clip|direction]` (run dirs or sweep dirs).

Writes comparison.md/.csv (method x training schedule rows, per-direction BLEU, the average's mean ± sd (n)
over seeds with its 95% interval, Δ vs the baseline with its interval (exploratory), the directions whose own
Δ is significant after Holm, and what each row cost), summary.md (without the per-direction columns),
per_direction.md, bleu_by_direction.png, bleu_delta.png and per-row expert-usage heatmaps, and prints the table.
`--contrast` (or `--contrasts FILE`) names the primary family before the numbers are read (rows as METHOD/SCHEDULE, e.g.
`spri/one_stage vs vanilla/one_stage`); Holm corrects within it and each verdict says better, worse,
equivalent (with --equivalence-margin) or inconclusive. The compared metrics (BLEU, COMET) and the headline
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
    ap.add_argument("--baseline", default="dense", help="the method every row's Δ is taken against")
    ap.add_argument("--out", default=None, help="output dir (default: the first DIR's report/)")
    ap.add_argument("--contrast", action="append", default=[], metavar="'NAME=A vs B'",
                    help="a contrast of the primary family (repeat it); A, B: METHOD[/SCHEDULE]")
    ap.add_argument("--contrasts", metavar="FILE", help="the primary family as a file: one 'NAME=A vs B' per line "
                    "(blank lines and lines starting with # are skipped)")
    ap.add_argument("--equivalence-margin", type=float, default=None, metavar="M",
                    help="say 'equivalent within ±M' when a whole interval lies inside ±M")
    ap.add_argument("--resample", default="clip", help="the bootstrap's unit: clip (default) or direction")
    ap.add_argument("--n-draws", type=int, default=1000)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from src.evaluation.config import ReportConfig
    from src.evaluation.report import build_report
    from src.utils.errors import UserError

    out = Path(args.out) if args.out else Path(args.dirs[0]) / "report"
    try:
        named = Path(args.contrasts).read_text(encoding="utf-8").splitlines() if args.contrasts else []
    except OSError as e:
        print(f"error: --contrasts {args.contrasts}: {e.strerror}", file=sys.stderr)
        return 2
    family = [*args.contrast, *(line.strip() for line in named if line.strip() and not line.startswith("#"))]
    cfg = ReportConfig(resample=args.resample, n_draws=args.n_draws, contrasts=family,
                       equivalence_margin=args.equivalence_margin)
    try:
        report = build_report(args.dirs, out, args.split, args.baseline, cfg)
    except (FileNotFoundError, UserError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report["markdown"])
    for f in report["files"]:
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
