"""Per-run results: hypotheses per direction as TSV, and the results table (one row per direction
plus the average over the translation directions) as CSV and Markdown. Rescoring reads only these TSVs."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from src.data.languages import COVOST2_EN_XX
from src.evaluation.metrics import CometUnavailable, MetricsConfig, bleu_chrf, comet_scores, word_error_rate
from src.utils.atomic import atomic_open, write_text

log = logging.getLogger(__name__)

TSV_COLUMNS = ("id", "src", "ref", "hyp")
RESULT_COLUMNS = ("direction", "bleu", "chrf", "comet", "wer", "segments", "bleu_signature", "comet_note")
# English first: the transcription direction (scored by WER; COMET is a translation metric and skips it).
DIRECTIONS = ("en", *COVOST2_EN_XX)


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


def score(rows_by_lang: dict[str, list[dict]], cfg: MetricsConfig) -> list[dict]:
    """Result rows: one per direction (CoVoST2 order) and the average over directions."""
    table = []
    comet_note = ""
    all_rows = [(lang, r) for lang, rows in rows_by_lang.items() if lang != "en" for r in rows]
    comet = None
    if not all_rows:
        comet_note = "not applicable: transcription only"
    elif cfg.comet.model:
        try:
            flat = comet_scores([r["src"] for _, r in all_rows], [r["hyp"] for _, r in all_rows],
                                [r["ref"] for _, r in all_rows], cfg.comet)
            comet = {}
            for (lang, _), s in zip(all_rows, flat):
                comet.setdefault(lang, []).append(s)
        except CometUnavailable as e:
            if cfg.comet.required:
                raise
            comet_note = f"unavailable: {e}"
            log.warning("COMET %s (BLEU/chrF still reported)", comet_note)
    else:
        comet_note = "unavailable: eval.comet.model is null"
    for lang in [c for c in DIRECTIONS if c in rows_by_lang]:
        rows = rows_by_lang[lang]
        hyps, refs = [r["hyp"] for r in rows], [r["ref"] for r in rows]
        s = bleu_chrf(hyps, refs, lang, cfg.bleu_tokenize)
        c = sum(comet[lang]) / len(comet[lang]) if comet and comet.get(lang) else None
        w = word_error_rate(hyps, refs) if lang == "en" else None
        table.append({"direction": lang, "bleu": s["bleu"], "chrf": s["chrf"], "comet": c, "wer": w,
                      "segments": len(rows), "bleu_signature": s["bleu_signature"], "comet_note": comet_note})
    if table:
        translation = [r for r in table if r["direction"] != "en"] or table  # the average is over translations

        def mean(key: str) -> float | None:
            values = [r[key] for r in (table if key == "wer" else translation) if r[key] is not None]
            return sum(values) / len(values) if values else None

        table.append({"direction": "average", "bleu": mean("bleu"), "chrf": mean("chrf"), "comet": mean("comet"),
                      "wer": mean("wer"), "segments": sum(r["segments"] for r in table),
                      "bleu_signature": "", "comet_note": comet_note})
    return table


def write_results(split_dir: Path, table: list[dict]) -> None:
    with atomic_open(split_dir / "results.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, RESULT_COLUMNS)
        w.writeheader()
        w.writerows(table)
    write_text(split_dir / "results.md", results_markdown(table))


def read_results(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("bleu", "chrf", "comet", "wer"):
            r[k] = float(r[k]) if r.get(k) not in (None, "") else None
        r["segments"] = int(r["segments"])
    return rows


def fmt(v, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def results_markdown(table: list[dict]) -> str:
    lines = ["| direction | BLEU | chrF | COMET | WER | segments |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in table:
        name = {"average": "**average**", "en": "en (ASR)"}.get(r["direction"], f"en-{r['direction']}")
        lines.append(f"| {name} | {fmt(r['bleu'])} | {fmt(r['chrf'])} | {fmt(r['comet'])} | {fmt(r.get('wer'))} "
                     f"| {r['segments']} |")
    notes = {r["comet_note"] for r in table if r.get("comet_note")}
    sigs = sorted({r["bleu_signature"] for r in table if r.get("bleu_signature")})
    out = "\n".join(lines) + "\n"
    if notes:
        out += "\nCOMET " + "; ".join(sorted(notes)) + "\n"
    if sigs:
        out += "\nBLEU signatures: " + "; ".join(f"`{s}`" for s in sigs) + "\n"
    return out
