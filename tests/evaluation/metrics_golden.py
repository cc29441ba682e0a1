"""Fixed hypotheses scored into results.csv/.md and compared into comparison.md/.csv: what the metric
registry must write byte for byte as the hard-coded metrics did.

It uses only the API that existed before the registry (score, write_results, build_report and the
COMET hook `comet_scores`), so the expected files under tests/golden/metrics/ were written by running
this module against the code before the registry (commit 0f788f3):

    python tests/evaluation/metrics_golden.py tests/golden/metrics src.evaluation.results

(the last argument: the module whose `comet_scores` the scoring calls, src.evaluation.metrics since
the registry). tests/evaluation/test_metric_registry.py builds them again with the current code and compares.
COMET is a deterministic stand-in (no model), so the files do not depend on a checkpoint or network.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from src.evaluation.config import CometConfig, MetricsConfig
from src.evaluation.metrics import CometUnavailable
from src.evaluation.report import build_report
from src.evaluation.results import score, write_hypotheses, write_results

CometFn = Callable[[list[str], list[str], list[str], CometConfig], list[float]]

TRANSLATIONS = {
    "de": [{"id": "a.de", "src": "the cat sleeps", "ref": "Die Katze schläft.", "hyp": "Die Katze schläft"},
           {"id": "b.de", "src": "a dog runs", "ref": "Ein Hund rennt.", "hyp": "ein Hund läuft."}],
    "zh-CN": [{"id": "a.zh-CN", "src": "the cat sleeps", "ref": "猫在睡觉。", "hyp": "猫睡觉。"},
              {"id": "b.zh-CN", "src": "a dog runs", "ref": "一只狗在跑。", "hyp": "狗在跑"}],
    "ja": [{"id": "a.ja", "src": "the cat sleeps", "ref": "猫が寝ている。", "hyp": "猫が寝る。"}],
}
# The English transcription direction; the last reference normalises to nothing (left out of WER).
TRANSCRIPTS = {"en": [{"id": "a.en", "src": "the cat sleeps", "ref": "The cat sleeps.", "hyp": "the cat sleep"},
                      {"id": "b.en", "src": "two dogs run", "ref": "Two dogs run!", "hyp": "2 dogs run"},
                      {"id": "c.en", "src": "hm", "ref": "?!", "hyp": "hm"}]}
NO_COMET = MetricsConfig(comet=CometConfig(model=None))
WITH_COMET = MetricsConfig(bleu_tokenize={"zh-CN": "zh"}, comet=CometConfig(model="stand-in"))


def stand_in_comet(srcs: list[str], hyps: list[str], refs: list[str], cfg: CometConfig) -> list[float]:
    """Segment scores from the lengths alone: deterministic, and different per segment and per system."""
    return [100.0 * min(len(h), len(r)) / max(len(h), len(r), 1) - 0.1 * len(s) for s, h, r in zip(srcs, hyps, refs)]


def offline_comet(srcs: list[str], hyps: list[str], refs: list[str], cfg: CometConfig) -> list[float]:
    raise CometUnavailable("OSError: the hub is offline")


SWEEP_REFS = {"de": [f"der hund {i} läuft schnell nach hause" for i in range(30)],
              "ja": [f"犬{i}は速く家に走る" for i in range(30)],
              "en": [f"The dog {i} runs home quickly." for i in range(30)]}


def sweep_rows(quality: float) -> dict[str, list[dict]]:
    """Hypotheses keeping the first `quality` fraction of each reference (words; characters for ja)."""
    rows: dict[str, list[dict]] = {}
    for lang, refs in SWEEP_REFS.items():
        rows[lang] = []
        for i, ref in enumerate(refs):
            if lang == "ja":
                hyp = ref[: max(1, int(len(ref) * quality))]
            else:
                words = ref.split()
                hyp = " ".join(words[: max(1, int(len(words) * quality))])
            rows[lang].append({"id": f"c{i}.{lang}", "src": f"dog {i}", "ref": ref, "hyp": hyp})
    return rows


def make_run(root: Path, name: str, strategy: str, seed: int, quality: float, cfg: MetricsConfig,
             stages: list[list[str]], cost: list[tuple[int, int, float]] | None) -> None:
    d = root / name
    split = d / "eval" / "test"
    split.mkdir(parents=True)
    (d / "config.yaml").write_text(f"seed: {seed}\nupcycle:\n  strategy: {strategy}\ntrainer:\n  stages:\n" + "".join(
        f"  - name: stage{i + 1}\n    trainable: [{', '.join(g)}]\n" for i, g in enumerate(stages)))
    rows = sweep_rows(quality)
    write_hypotheses(split, rows)
    write_results(split, score(rows, cfg))
    if cost is not None:
        (d / "train_summary.json").write_text(json.dumps({"stages": [
            {"steps": steps, "tokens": tokens, "seconds": seconds} for steps, tokens, seconds in cost]}))
        total, active = (1_000_000, 1_000_000) if strategy == "dense" else (4_000_000, 1_500_000)
        (d / "upcycling_report.json").write_text(json.dumps({"total_parameters": total, "active_parameters": active}))


def build(out: Path, use_comet: Callable[[CometFn], None]) -> list[Path]:
    """Write every case under `out`; returns the files to compare (relative to `out`).
    `use_comet(fn)` makes the scoring call fn where it would call unbabel-comet."""
    files: list[Path] = []

    def results(case: str, rows: dict[str, list[dict]], cfg: MetricsConfig) -> None:
        split = out / "results" / case
        split.mkdir(parents=True)
        write_results(split, score(rows, cfg))
        files.extend(Path("results") / case / f for f in ("results.csv", "results.md"))

    use_comet(stand_in_comet)
    results("translation_and_asr", {**TRANSLATIONS, **TRANSCRIPTS}, NO_COMET)
    results("comet", {**TRANSCRIPTS, **TRANSLATIONS}, WITH_COMET)
    results("asr_only", TRANSCRIPTS, WITH_COMET)  # COMET not applicable
    use_comet(offline_comet)
    results("comet_offline", TRANSLATIONS, WITH_COMET)

    use_comet(stand_in_comet)
    sweep = out / "runs" / "sweep"
    one, two = [["all"]], [["residual", "router"], ["all"]]
    for seed, q in ((1, 0.3), (2, 0.4)):
        make_run(sweep, f"dense_s{seed}", "dense", seed, q, WITH_COMET, one, [(100, 5000 + seed, 60.0 + seed)])
    for seed, q in ((1, 1.0), (2, 0.5), (3, 0.7)):
        make_run(sweep, f"spri_s{seed}", "spri", seed, q, WITH_COMET, two, [(30, 1000 * seed, 20.0), (70, 3000, 45.0)])
    make_run(sweep, "vanilla_s1", "vanilla", 1, 0.6, NO_COMET, one, None)  # no COMET, no cost recorded
    make_run(sweep, "vanilla_s5", "vanilla", 5, 0.2, NO_COMET, two, None)  # a seed dense did not run
    build_report([sweep], out / "report" / "sweep")
    alone = out / "runs" / "no_baseline"
    make_run(alone, "spri", "spri", 1, 0.9, NO_COMET, two, [(10, 100, 3.0)])
    make_run(alone, "drop", "drop", 1, 0.5, NO_COMET, two, None)
    build_report([alone], out / "report" / "no_baseline")
    files += [Path("report") / case / f for case in ("sweep", "no_baseline")
              for f in ("comparison.md", "comparison.csv")]
    return files


def main(argv: list[str]) -> None:
    dest, module = Path(argv[0]), importlib.import_module(argv[1])
    work = dest.parent / f".{dest.name}.work"
    shutil.rmtree(work, ignore_errors=True)
    for rel in build(work, lambda fn: setattr(module, "comet_scores", fn)):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / rel, dest / rel)
    shutil.rmtree(work)


if __name__ == "__main__":
    main(sys.argv[1:])
