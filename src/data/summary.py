"""Usable examples per split and direction, and skip counts by reason, of a data source (the entry point is
`python -m src.summary`)."""

from __future__ import annotations

from collections import Counter

from src.data.schema import SPLITS


def summarize(source, splits=SPLITS) -> dict:
    out: dict = {"splits": {}}
    for split in splits:
        counts = Counter(ex.tgt_lang for ex in source.examples(split))
        out["splits"][split] = {d: counts.get(d, 0) for d in source.directions}
    out["skipped"] = source.skips.as_dict()
    return out


def format_table(summary: dict) -> str:
    splits = list(summary["splits"])
    dirs = list(next(iter(summary["splits"].values()), {}))
    lines = ["direction " + " ".join(f"{s:>8}" for s in splits)]
    for d in dirs:
        lines.append(f"en_{d:<6} " + " ".join(f"{summary['splits'][s][d]:>8}" for s in splits))
    lines.append("total     " + " ".join(f"{sum(summary['splits'][s].values()):>8}" for s in splits))
    skipped = summary["skipped"]
    lines.append("skipped: " + (", ".join(f"{k}={v}" for k, v in skipped.items()) if skipped else "none"))
    return "\n".join(lines)
