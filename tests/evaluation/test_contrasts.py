"""Named contrasts (src/evaluation/contrasts.py): parsing, Holm's step-down, verdicts that say inconclusive when
the interval allows the effect either way, and a primary family evaluated on a report."""

from __future__ import annotations

import pytest

from src.evaluation.contrasts import Contrast, RowRef, holm, verdict
from src.evaluation.intervals import Interval
from src.utils.errors import UserError


def test_contrast_specs_parse_and_bad_ones_say_how():
    c = Contrast.parse("SPRI's init=spri/one_stage vs vanilla/one_stage")
    assert c.name == "SPRI's init" and c.a == RowRef("spri", "one_stage") and c.b == RowRef("vanilla", "one_stage")
    assert Contrast.parse("drop vs dense").name == "drop vs dense"
    with pytest.raises(UserError, match="NAME=A vs B"):
        Contrast.parse("spri minus vanilla")


def test_holm_keeps_one_strong_effect_and_drops_the_marginal_ones():
    """One strong effect and four marginal ones (each p = 0.03 < 0.05 alone): Holm rejects the strong one only;
    its step's level is 1 - 0.05/5, the next ones' 1 - 0.05/4, ..."""
    p = [0.03, 0.0001, 0.04, 0.03, 0.045]
    adjusted, rejected, levels = holm(p)
    assert rejected == [False, True, False, False, False]
    assert adjusted[1] == pytest.approx(0.0005) and all(a >= q for a, q in zip(adjusted, p))
    assert levels[1] == pytest.approx(0.99) and sorted(levels) == pytest.approx([0.95, 0.975, 0.9833333, 0.9875, 0.99])
    assert adjusted[0] == adjusted[3] == pytest.approx(0.12)  # 4 x 0.03, the running max
    # all strong: all rejected; a single test is not corrected
    assert holm([0.001, 0.002, 0.003])[1] == [True, True, True]
    assert holm([0.04]) == ([0.04], [True], [0.95])
    assert holm([]) == ([], [], [])


def test_verdicts_better_worse_equivalent_inconclusive():
    assert verdict(1.2, Interval(0.3, 2.1), True, True) == "better"
    assert verdict(1.2, Interval(0.3, 2.1), True, False) == "worse"  # WER: lower is better
    assert verdict(-2.0, Interval(-3.0, -1.0), True, True) == "worse"
    said = verdict(0.1, Interval(-4.97, 4.70), False, True)
    assert said == "inconclusive: the interval allows -4.97 to +4.70"
    assert verdict(0.1, Interval(-0.4, 0.6), False, True, margin=1.0) == "equivalent within ±1"
    # an interval inside the margin only in part is not equivalence
    assert verdict(0.5, Interval(-0.4, 1.6), False, True, margin=1.0).startswith("inconclusive")
    # Holm stopped earlier although this interval excludes 0: not claimed
    assert "Holm stopped" in verdict(1.0, Interval(0.1, 1.9), False, True)


def scored_run(root, name: str, strategy: str, seed: int, keep: float, stages: int = 1):
    """A run dir whose hypotheses keep the first `keep` share of each reference's words (8 words, 40 clips in
    2 directions); `stages`: one or two (stage 1 a third of 30 steps) in its config.yaml."""
    from src.evaluation.config import CometConfig, MetricsConfig
    from src.evaluation.results import score_with_segments, write_hypotheses, write_results

    d = root / name
    (d / "eval" / "test").mkdir(parents=True)
    trainer = ("trainer:\n  stages:\n  - {steps: 30, trainable: [all]}\n" if stages == 1 else
               "trainer:\n  stages:\n  - {steps: 10, trainable: [router]}\n  - {steps: 20, trainable: [all]}\n")
    (d / "config.yaml").write_text(f"seed: {seed}\nupcycle:\n  strategy: {strategy}\n" + trainer)
    rows = {}
    for lang in ("de", "ca"):
        rows[lang] = []
        for i in range(40):
            words = [f"w{(i * 7 + k * (seed + 2)) % 50}{lang}" for k in range(8)]
            cut = int(8 * keep) + (i % 3 == seed % 3)  # a little per-seed, per-clip variation
            rows[lang].append({"id": f"clip{i}.{lang}", "src": "s", "ref": " ".join(words),
                               "hyp": " ".join(words[:cut] + ["x"] * (8 - cut))})
    write_hypotheses(d / "eval" / "test", rows)
    write_results(d / "eval" / "test", *score_with_segments(rows, MetricsConfig(comet=CometConfig(model=None))))


def test_a_named_family_is_corrected_and_reported(tmp_path):
    from src.evaluation.config import ReportConfig
    from src.evaluation.report import build_report

    for seed in (1, 2, 3):
        scored_run(tmp_path, f"dense{seed}", "dense", seed, 0.5)
        scored_run(tmp_path, f"vanilla{seed}", "vanilla", seed, 0.5)
        scored_run(tmp_path, f"spri{seed}", "spri", seed, 0.9)
        scored_run(tmp_path, f"spri2_{seed}", "spri", seed, 0.9, stages=2)
    family = ["init=spri/one_stage vs vanilla/one_stage", "schedule=spri/two_stage33 vs spri/one_stage",
              "cluster vs dense", "ambiguous=spri vs dense"]
    report = build_report([tmp_path], tmp_path / "out", cfg=ReportConfig(contrasts=family, equivalence_margin=2.0))
    got = {c.contrast.name: c for c in report["comparison"].contrasts}
    init, schedule = got["init"], got["schedule"]
    assert init.delta > 10 and init.verdict == "better" and init.ci.low > 0
    assert init.ci.confidence == pytest.approx(0.975)  # the smaller p of 2 tested: alpha / 2
    assert schedule.delta == pytest.approx(0.0) and schedule.ci.confidence == pytest.approx(0.95)
    assert schedule.verdict.startswith("no difference on this test set")  # identical outputs
    assert "no row cluster" in got["cluster vs dense"].missing
    assert "ambiguous" in got["ambiguous"].missing
    md = report["markdown"]
    assert "Primary contrasts (BLEU; named before the numbers were read; Holm across the 2 tested" in md
    assert "| init (spri/one_stage − vanilla/one_stage) | +" in md and "(97.5%)" in md
    assert "not tested: no row cluster" in md
    assert "What the intervals allow (exploratory, vs dense):" in md


def test_the_family_from_a_file_and_bad_specs_stop_in_one_line(tmp_path, capsys):
    from src.report import main as report_main

    for seed in (1, 2):
        scored_run(tmp_path / "runs", f"dense{seed}", "dense", seed, 0.5)
        scored_run(tmp_path / "runs", f"spri{seed}", "spri", seed, 0.9)
    family = tmp_path / "family.txt"
    family.write_text("# the primary family\nspri's gain=spri vs dense\n\n")
    assert report_main([str(tmp_path / "runs"), "--contrasts", str(family), "--out", str(tmp_path / "out")]) == 0
    assert "| spri's gain (spri − dense) | +" in capsys.readouterr().out
    assert report_main([str(tmp_path / "runs"), "--contrast", "spri minus dense"]) == 2
    assert "write 'NAME=A vs B'" in capsys.readouterr().err
    assert report_main([str(tmp_path / "runs"), "--contrasts", str(tmp_path / "none.txt")]) == 2
    assert "none.txt: No such file" in capsys.readouterr().err
    assert report_main([str(tmp_path / "runs"), "--equivalence-margin", "-1"]) == 2
    assert "--equivalence-margin" in capsys.readouterr().err
