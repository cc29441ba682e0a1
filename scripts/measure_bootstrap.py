"""How much resampling by clip matters on real runs: per row, the variance of the bootstrap draws of its average
(first seed) and of its Δ vs the baseline (seed-paired), resampled by whole test clips (the same clips in every
direction: the report's default) and per direction (each direction on its own: the report before issue 31), on
the same runs and draw count, side by side, and their ratio.

    python scripts/measure_bootstrap.py DIR... [--baseline dense] [--split test] [--n-draws 1000]

A ratio above 1 means the directions share clip difficulty, which the per-direction bootstrap ignores (its
intervals are then too narrow by the square root of the ratio).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.evaluation.comparison import Samples, group_rows  # noqa: E402
from src.evaluation.config import ReportConfig  # noqa: E402
from src.evaluation.discovery import find_runs  # noqa: E402
from src.evaluation.metrics import headline_metric  # noqa: E402


def variances(samples: Samples, rows, base) -> dict[str, tuple[float, float | None]]:
    """{row: (variance of its average's draws, variance of its paired Δ's draws or None)}, first shared seed."""
    out = {}
    for row in rows:
        own = samples.of(row)
        if not own:
            continue
        seed = min(own)
        base_own = samples.of(base) if base is not None and row is not base else {}
        delta = float(np.var(own[seed][1] - base_own[seed][1], ddof=1)) if seed in base_own else None
        out[f"{row.method} ({row.schedule_key or 'n/a'})"] = (float(np.var(own[seed][1], ddof=1)), delta)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--baseline", default="dense")
    ap.add_argument("--split", default="test")
    ap.add_argument("--n-draws", type=int, default=1000)
    args = ap.parse_args(argv)
    runs, _ = find_runs(args.dirs, args.split)
    rows = group_rows(runs, args.baseline)
    base = next((r for r in rows if r.baseline), None)
    kept = [r for row in rows for r in row.runs.values()]
    metric = headline_metric()
    by = {mode: variances(Samples(kept, args.split, metric, ReportConfig(resample=mode, n_draws=args.n_draws)),
                          rows, base) for mode in ("clip", "direction")}
    print(f"{metric.label} bootstrap variance, {args.n_draws} draws: by clip vs per direction (ratio)\n")
    print("| row | average: clip | direction | ratio | Δ vs baseline: clip | direction | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for name, (avg_c, delta_c) in by["clip"].items():
        avg_d, delta_d = by["direction"][name]
        ratios.append(avg_c / avg_d)
        delta = (f"{delta_c:.4f} | {delta_d:.4f} | {delta_c / delta_d:.2f}" if delta_c is not None and delta_d
                 else " |  | ")
        print(f"| {name} | {avg_c:.4f} | {avg_d:.4f} | {avg_c / avg_d:.2f} | {delta} |")
    print(f"\naverage's ratio: median {np.median(ratios):.2f} over {len(ratios)} rows "
          f"(interval width x{np.sqrt(np.median(ratios)):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
