"""`python -m src.data.summary data=... [overrides]`: usable examples per split and direction and
skip counts by reason. The last line printed is that summary as one JSON object."""

from __future__ import annotations

import json
from collections import Counter

import hydra

from src.data.loading import build_source
from src.data.schema import SPLITS
from src.utils.cli import entry


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


@hydra.main(version_base="1.3", config_path="../../conf", config_name="config")
@entry
def main(run) -> None:  # src.config.RunSettings
    source = build_source(run.cfg.data)
    summary = summarize(source)
    print(format_table(summary))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
