"""The comparison report across runs: discovery (src/evaluation/discovery.py) -> statistics on typed rows
(comparison.py, intervals.py, contrasts.py) -> Markdown and CSV (markdown.py) and plots (plots.py). Which
metrics it compares, and which one leads (per-direction columns, bars, contrasts; BLEU), is the metric
registry's say (src.evaluation.metrics)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from src.evaluation.comparison import Comparison, compare
from src.evaluation.config import ReportConfig
from src.evaluation.discovery import find_runs
from src.evaluation.markdown import comparison_markdown, csv_rows, per_direction_markdown
from src.evaluation.metrics import headline_metric
from src.evaluation.plots import plot_bars, plot_deltas, plot_expert_usage
from src.utils.atomic import atomic_open, write_text


def _plots(cmp: Comparison, out_dir: Path) -> list[Path]:
    """<headline>_by_direction.png, <headline>_delta.png (each Δ with its interval) and
    expert_usage_<row>.png (from the row's lowest seed's routing.json)."""
    lead = headline_metric()
    plots = [out_dir / f"{lead.name}_by_direction.png"]
    plot_bars(cmp, plots[0], lead)
    if plot_deltas(cmp, out_dir / f"{lead.name}_delta.png", lead):
        plots.append(out_dir / f"{lead.name}_delta.png")
    for row in cmp.rows:
        routing_file = row.runs[row.seeds[0]].path / "eval" / cmp.split / "routing.json"
        if routing_file.exists():
            name = cmp.name(row)
            plots.append(out_dir / f"expert_usage_{re.sub(r'[^A-Za-z0-9+]+', '_', name).strip('_')}.png")
            plot_expert_usage(json.loads(routing_file.read_text()), plots[-1], f"{name}: expert usage ({cmp.split})")
    return plots


def build_report(paths: list[str | Path], out_dir: Path, split: str = "test", baseline: str = "dense",
                 cfg: ReportConfig | None = None) -> dict:
    """Write comparison.{md,csv}, summary.md (the same without per-direction columns, for READMEs),
    per_direction.md (each Δ per direction) and the plots into out_dir; returns the Markdown, the comparison
    and the files written."""
    cfg = cfg or ReportConfig()
    cfg.check()
    runs, skipped = find_runs(paths, split)
    cmp = compare(runs, split, baseline, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = comparison_markdown(cmp, skipped)
    write_text(out_dir / "comparison.md", md)
    write_text(out_dir / "summary.md", comparison_markdown(cmp, skipped, per_direction=False))
    files = [out_dir / "comparison.md", out_dir / "summary.md", out_dir / "comparison.csv"]
    if per := per_direction_markdown(cmp):
        write_text(out_dir / "per_direction.md", per)
        files.append(out_dir / "per_direction.md")
    rows = csv_rows(cmp)
    with atomic_open(out_dir / "comparison.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)
    return {"markdown": md, "comparison": cmp, "rows": rows, "files": files + _plots(cmp, out_dir)}
