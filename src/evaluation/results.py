"""Per-run results: hypotheses per direction as TSV, and the results table (one row per direction
plus the average over the translation directions) as CSV and Markdown. Rescoring reads only these TSVs.
The metric columns are the registry's (src.evaluation.metrics.METRICS): nothing here names a metric."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from src.data.languages import COVOST2_EN_XX
from src.evaluation.config import MetricsConfig
from src.evaluation.metrics import METRICS, NO_SCORE, Score, Segments
from src.utils.atomic import atomic_open, write_json, write_text
from src.utils.errors import UserError

log = logging.getLogger(__name__)

TSV_COLUMNS = ("id", "src", "ref", "hyp")
# English first: the transcription direction (scored by WER; COMET is a translation metric and skips it).
DIRECTIONS = ("en", *COVOST2_EN_XX)


def result_columns() -> tuple[str, ...]:
    """direction, one column per registered metric, segments, then the metrics' signature and note columns
    (a function, not a constant: a metric registered later gets its column too)."""
    metrics = list(METRICS.values())
    return ("direction", *[m.name for m in metrics], "segments",
            *[m.signature_column for m in metrics if m.signature], *[m.note_column for m in metrics if m.optional])


def _clean(text: str) -> str:
    return " ".join(str(text).split())  # one line per segment: tabs/newlines would break the TSV


def write_hypotheses(split_dir: Path, rows_by_lang: dict[str, list[dict]]) -> None:
    split_dir.mkdir(parents=True, exist_ok=True)
    for lang, rows in rows_by_lang.items():
        with atomic_open(split_dir / f"{lang}.tsv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
            w.writerow(TSV_COLUMNS)
            for r in rows:
                w.writerow([_clean(r[c]) for c in TSV_COLUMNS])


def read_hypotheses(split_dir: Path) -> dict[str, list[dict]]:
    out = {}
    known = [c for c in DIRECTIONS if (split_dir / f"{c}.tsv").exists()]
    if not known:
        raise FileNotFoundError(f"{split_dir} has no <direction>.tsv files to rescore; run the evaluation first")
    for lang in known:
        with open(split_dir / f"{lang}.tsv", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\"))
        out[lang] = rows
    return out


SEGMENT_SCORES = "segment_scores.json"  # {metric: {direction: [score per segment, hypotheses-file order]}}


def score(rows_by_lang: dict[str, list[dict]], cfg: MetricsConfig) -> list[dict]:
    """Result rows: one per direction (CoVoST2 order) and the average over directions, every registered
    metric in each (None where it does not apply or is unavailable; its note says which)."""
    return score_with_segments(rows_by_lang, cfg)[0]


def score_with_segments(rows_by_lang: dict[str, list[dict]], cfg: MetricsConfig) -> tuple[list[dict], dict]:
    """`score`'s rows, and the segment scores of the metrics that return them (COMET), for SEGMENT_SCORES."""
    split = {lang: Segments(lang, [r["src"] for r in rows], [r["hyp"] for r in rows], [r["ref"] for r in rows])
             for lang, rows in rows_by_lang.items()}
    metrics = list(METRICS.values())
    scores, notes = {}, {}
    for m in metrics:
        scores[m.name], notes[m.name] = m.scores_and_note(split, cfg)

    def row(direction: str, own: dict[str, Score], segments: int) -> dict:
        """In result_columns() order (the average row is also train_summary.json's `results`)."""
        return {"direction": direction, **{m.name: own[m.name].value for m in metrics}, "segments": segments,
                **{m.signature_column: own[m.name].signature for m in metrics if m.signature},
                **{m.note_column: notes[m.name] for m in metrics if m.optional}}

    table = [row(lang, {m.name: scores[m.name].get(lang, NO_SCORE) for m in metrics}, len(rows_by_lang[lang]))
             for lang in DIRECTIONS if lang in rows_by_lang]
    if table:  # the average's signature stays empty: it is no one corpus
        table.append(row("average", {m.name: Score(m.average(table)) for m in metrics},
                         sum(r["segments"] for r in table)))
    segments = {m.name: {lang: list(s.segments) for lang, s in scores[m.name].items() if s.segments is not None}
                for m in metrics}
    return table, {name: by_lang for name, by_lang in segments.items() if by_lang}


def write_results(split_dir: Path, table: list[dict], segments: dict | None = None) -> None:
    """results.csv/.md, and SEGMENT_SCORES when a metric returned segment scores (else any old one goes)."""
    if segments:
        write_json(split_dir / SEGMENT_SCORES, segments)
    else:
        (split_dir / SEGMENT_SCORES).unlink(missing_ok=True)
    with atomic_open(split_dir / "results.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, result_columns())
        w.writeheader()
        w.writerows(table)
    write_text(split_dir / "results.md", results_markdown(table))


def read_results(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in METRICS:  # a metric registered after the file was written reads as None
            r[k] = float(r[k]) if r.get(k) not in (None, "") else None
        r["segments"] = int(r["segments"])
    return rows


def read_segment_scores(split_dir: Path) -> dict:
    """SEGMENT_SCORES of a split dir ({} when it has none)."""
    path = split_dir / SEGMENT_SCORES
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e}); rescore the run: python -m src.evaluate "
                        f"run_dir=<run dir> rescore=true") from e


def fmt(v, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def summary(row: dict) -> str:
    """One line for the console: every metric of a results row (e.g. the average) and its segments."""
    scores = "  ".join(f"{m.label} {fmt(row.get(m.name), m.digits)}" for m in METRICS.values())
    return f"{scores}  ({row['segments']} segments)"


def results_markdown(table: list[dict]) -> str:
    """The results table; under it the optional metrics' notes, then the metrics' signatures."""
    metrics = list(METRICS.values())
    lines = ["| direction | " + " | ".join(m.label for m in metrics) + " | segments |",
             "| --- |" + " ---: |" * (len(metrics) + 1)]
    for r in table:
        name = {"average": "**average**", "en": "en (ASR)"}.get(r["direction"], f"en-{r['direction']}")
        lines.append(f"| {name} | " + " | ".join(fmt(r.get(m.name), m.digits) for m in metrics)
                     + f" | {r['segments']} |")
    out = "\n".join(lines) + "\n"
    for m in metrics:
        notes = {r[m.note_column] for r in table if m.optional and r.get(m.note_column)}
        if notes:
            out += f"\n{m.label} " + "; ".join(sorted(notes)) + "\n"
    for m in metrics:
        sigs = sorted({r[m.signature_column] for r in table if m.signature and r.get(m.signature_column)})
        if sigs:
            out += f"\n{m.label} signatures: " + "; ".join(f"`{s}`" for s in sigs) + "\n"
    return out
