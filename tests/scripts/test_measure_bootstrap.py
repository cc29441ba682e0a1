"""scripts/measure_bootstrap.py: on runs whose hard clips are hard in every direction, the clip bootstrap's
variance is larger than the per-direction one's, and the script says so in its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from src.evaluation.config import CometConfig, MetricsConfig
from src.evaluation.results import score_with_segments, write_hypotheses, write_results

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "measure_bootstrap.py"


def run_dir(root: Path, name: str, strategy: str, hard_every: int) -> None:
    """40 clips in 4 directions; every `hard_every`-th clip is translated wrongly in all of them."""
    d = root / name
    (d / "eval" / "test").mkdir(parents=True)
    (d / "config.yaml").write_text(f"seed: 1\nupcycle:\n  strategy: {strategy}\n")
    rows = {}
    for lang in ("de", "ca", "et", "sl"):  # CoVoST2 directions (the hypotheses reader knows only those)
        rows[lang] = []
        for i in range(40):
            ref = " ".join(f"w{(3 * i + k) % 60}" for k in range(10))
            hyp = "x y z" if i % hard_every == 0 else ref
            rows[lang].append({"id": f"clip{i}.{lang}", "src": "s", "ref": ref, "hyp": hyp})
    write_hypotheses(d / "eval" / "test", rows)
    write_results(d / "eval" / "test", *score_with_segments(rows, MetricsConfig(comet=CometConfig(model=None))))


def test_clip_resampling_is_wider_when_clips_are_hard_everywhere(tmp_path, capsys):
    run_dir(tmp_path, "dense", "dense", 3)
    run_dir(tmp_path, "vanilla", "vanilla", 4)
    spec = importlib.util.spec_from_file_location("measure_bootstrap", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(tmp_path), "--n-draws", "300"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| dense"))
    ratio = float(row.split("|")[4])
    assert ratio > 2.0  # 4 directions, all sharing each clip's difficulty: close to 4 in theory
    assert "average's ratio: median" in out
