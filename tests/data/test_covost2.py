"""CoVoST2 TSV loading in both published forms, skip accounting and clear structural errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CLIPS, SPLIT_OF, write_tsv
from helpers import ROOT

from src.data.covost2 import CoVoST2Source, read_tsv
from src.data.schema import BadExampleError


def source(root: Path, **kw) -> CoVoST2Source:
    kw.setdefault("directions", ["de", "zh-CN"])
    return CoVoST2Source(str(root), progress=False, **kw)


def test_per_direction_tsv_splits_follow_official_tool(cv_root):
    src = source(cv_root)
    train = src.examples("train")
    # train = "train" + "train_covost"; "other" is in no split (counted); the ghost row is dropped by the join.
    expected = sorted(n for n, s in SPLIT_OF.items() if s in ("train", "train_covost"))
    for tgt in ("de", "zh-CN"):
        got = sorted(ex.audio for ex in train if ex.tgt_lang == tgt)
        assert got == expected
    dev = src.examples("dev")
    assert [(ex.audio, ex.tgt_lang) for ex in dev] == [("cv_3.mp3", "de"), ("cv_3.mp3", "zh-CN")]
    ex = dev[0]
    assert ex.sentence == "the teacher reads a book" and ex.translation == "de:the teacher reads a book"
    assert ex.id == "cv_3.de" and ex.task == "translate"
    assert ex.duration == pytest.approx(1.2, abs=0.06)
    # the ghost train row and the "other" row, once per direction, counted
    assert src.skips.as_dict() == {"not_validated": 2, "unknown_split": 2}


def test_a_split_is_read_and_its_skips_counted_once_per_source(cv_root):
    """Training, the dev loss and evaluation all ask for a split: its bad rows are counted once, not per ask."""
    src = source(cv_root)
    first = src.examples("train")
    assert src.examples("train") == first and src.examples("train") is not src.examples("train")  # copies
    src.examples("dev")
    src.examples("dev")
    assert src.skips.as_dict() == {"not_validated": 2, "unknown_split": 2}


def test_split_files_form_gives_same_examples(cv_root, tmp_path):
    """The official tool's output files (covost_v2.en_XX.{split}.tsv) read like the per-direction form."""
    alt = tmp_path / "splitform"
    alt.mkdir()
    (alt / "en").symlink_to(cv_root / "en")
    sentence = {n: s for n, _, s in CLIPS}
    for tgt in ("de", "zh-CN"):
        for split in ("train", "dev", "test"):
            labels = ("train", "train_covost") if split == "train" else (split,)
            rows = [[n, sentence[n], f"{tgt}:{sentence[n]}", "spk"] for n, s in SPLIT_OF.items() if s in labels]
            write_tsv(alt / f"covost_v2.en_{tgt}.{split}.tsv", ["path", "sentence", "translation", "client_id"], rows)
    a, b = source(cv_root), source(alt)
    for split in ("train", "dev", "test"):
        key = lambda e: (e.id, e.audio, e.sentence, e.translation)  # noqa: E731
        assert sorted(map(key, a.examples(split))) == sorted(map(key, b.examples(split)))


def test_escaped_and_unquoted_fields_parse_like_official_tool(cv_root):
    path = cv_root / "covost_v2.en_de.tsv"
    text = path.read_text().replace("de:the cat sleeps", 'de:"the \\\tcat" sleeps')
    path.write_text(text)
    df = read_tsv(path)
    assert 'de:"the \tcat" sleeps' in set(df["translation"])  # quotes kept, escaped tab unescaped


def test_directions_share_one_clip_and_store(cv_root):
    src = source(cv_root)
    train = src.examples("train")
    by_clip = {}
    for ex in train:
        by_clip.setdefault(ex.audio, set()).add(ex.tgt_lang)
    assert all(langs == {"de", "zh-CN"} for langs in by_clip.values())
    audio = src.clips.load("cv_0.mp3")
    assert audio.ndim == 1 and abs(audio.size - 16_000) < 800  # 1.0 s at 16 kHz


def test_skips_are_counted_by_reason(cv_root):
    (cv_root / "en" / "clips" / "cv_2.mp3").unlink()  # missing clip (train)
    (cv_root / "en" / "clips" / "cv_0.mp3").write_bytes(b"not audio at all")  # unreadable (train)
    path = cv_root / "covost_v2.en_de.tsv"
    path.write_text(path.read_text().replace("de:a dog runs in the park", ""))  # empty translation (de)
    src = source(cv_root, max_duration=1.4)
    # cv_0 unreadable, cv_2 missing; cv_1 (1.5 s) too long; de's cv_1 empty translation is reported as
    # too_long first only if checked first: reasons are counted once per example. Nothing is left for en-de
    # train, which stops the run (naming the direction and the counts) instead of training on nothing.
    with pytest.raises(ValueError, match=r"en_de train: no usable examples .*missing_clip"):
        src.examples("train")
    counts = src.skips.as_dict()
    assert counts["missing_clip"] == 1 and counts["unreadable_clip"] == 1
    assert counts["empty_translation"] + counts.get("too_long", 0) == 1
    src2 = source(cv_root, max_duration=1.4, on_bad_example="error")
    with pytest.raises(BadExampleError, match="on_bad_example=skip"):
        src2.examples("train")


def test_max_train_per_direction_is_deterministic(cv_root):
    a = source(cv_root, max_train_per_direction=2, seed=3).examples("train")
    b = source(cv_root, max_train_per_direction=2, seed=3).examples("train")
    assert [e.id for e in a] == [e.id for e in b]
    assert len([e for e in a if e.tgt_lang == "de"]) == 2
    seeds = {tuple(e.id for e in source(cv_root, max_train_per_direction=1, seed=s).examples("train"))
             for s in range(6)}
    assert len(seeds) > 1


def test_structural_errors_name_the_file_and_fix(cv_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="data.root=.*does not exist.*Common Voice"):
        source(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown CoVoST2 direction 'xx'"):
        source(cv_root, directions=["de", "xx"])
    with pytest.raises(FileNotFoundError, match="covost_v2.en_ja.tsv.*data.directions"):
        source(cv_root, directions=["ja"]).examples("train")
    path = cv_root / "covost_v2.en_de.tsv"
    path.write_text(path.read_text().replace("translation", "target", 1))
    with pytest.raises(ValueError, match=r"covost_v2.en_de.tsv: missing required column\(s\) \['translation'\]"):
        source(cv_root).examples("train")


def test_prepare_script_writes_manifest_and_a_valid_16k_copy(cv_root, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("prep", ROOT / "scripts" / "prepare_covost2.py")
    prep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prep)
    out = tmp_path / "prepared"
    assert prep.main(["--root", str(cv_root), "--directions", "de", "zh-CN", "--out", str(out),
                      "--cache-dir", str(tmp_path / "cache")]) == 0
    # it reads each split's rows again to copy them: a bad row still counts once
    assert capsys.readouterr().out.splitlines()[-1] == "skipped: {'not_validated': 2, 'unknown_split': 2}"
    manifest = read_tsv(out / "covost2_manifest.train.tsv")
    assert list(manifest.columns) == ["path", "sentence", "duration", "translation_de", "translation_zh-CN"]
    assert sorted(manifest["path"]) == ["cv_0.flac", "cv_1.flac", "cv_2.flac"]
    assert list((tmp_path / "cache").glob("durations-*.tsv"))
    a = sorted((e.id, e.translation) for e in source(cv_root).examples("train"))
    prepared = source(out)
    b = sorted((e.id, e.translation) for e in prepared.examples("train"))
    assert a == b
    assert prepared.clips.load("cv_0.flac").size == pytest.approx(16_000, abs=800)


def test_paths_outside_the_clips_dir_duplicates_and_empty_directions_are_counted_or_stop(cv_root, tmp_path):
    """A TSV path escaping en/clips is skipped (never loaded), a path listed twice in validated.tsv counts
    once, and a direction with no usable example for a requested split stops with one line."""
    (cv_root / "outside.mp3").write_bytes((cv_root / "en" / "clips" / "cv_0.mp3").read_bytes())
    validated = cv_root / "en" / "validated.tsv"
    lines = validated.read_text().splitlines()
    validated.write_text("\n".join([*lines, lines[1], lines[1].replace("cv_0.mp3", "../../outside.mp3"),
                                    lines[1].replace("cv_0.mp3", str(cv_root / "outside.mp3"))]) + "\n")
    for tgt in ("de", "zh-CN"):
        tsv = cv_root / f"covost_v2.en_{tgt}.tsv"
        tsv.write_text(tsv.read_text() + f"../../outside.mp3\tx\ty\ttrain\n{cv_root / 'outside.mp3'}\tx\ty\ttrain\n")
    src = source(cv_root)
    train = src.examples("train")
    assert sorted({ex.audio for ex in train}) == ["cv_0.mp3", "cv_1.mp3", "cv_2.mp3"]
    assert len(train) == 6  # the duplicated cv_0.mp3 does not double its rows
    skipped = src.skips.as_dict()
    assert skipped["outside_clips_dir"] == 4 and skipped["duplicate_path"] == 1
    nul = tmp_path / "nul"
    (nul / "en" / "clips").mkdir(parents=True)
    (nul / "en" / "validated.tsv").write_text((cv_root / "en" / "validated.tsv").read_text())
    (nul / "covost_v2.en_de.tsv").write_text("path\tsentence\ttranslation\tsplit\n")
    with pytest.raises(ValueError, match=r"en_de train: no usable examples") as err:
        CoVoST2Source(str(nul), directions=["de"], progress=False).examples("train")
    assert "\n" not in str(err.value)


def break_line(path: Path, line: int, old: bytes, new: bytes) -> int:
    """Replace `old` on 1-based `line` of `path` with `new` (not UTF-8); the file's first non-ASCII byte's offset."""
    lines = path.read_bytes().split(b"\n")
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new)
    data = b"\n".join(lines)
    path.write_bytes(data)
    return next(i for i, b in enumerate(data) if b >= 0x80)


def test_a_byte_that_is_not_utf8_costs_only_its_row(cv_root):
    """Counted once, by file and line (train, dev and test read the same TSV); the file's other rows are used."""
    offset = break_line(cv_root / "covost_v2.en_de.tsv", 4, b"birds", b"b\xe9rds")  # cv_2, a train row
    src = source(cv_root)
    got = {s: sorted((ex.tgt_lang, ex.audio) for ex in src.examples(s)) for s in ("train", "dev", "test")}
    assert got["train"] == [("de", "cv_0.mp3"), ("de", "cv_1.mp3"),
                            ("zh-CN", "cv_0.mp3"), ("zh-CN", "cv_1.mp3"), ("zh-CN", "cv_2.mp3")]
    assert got["dev"] == [("de", "cv_3.mp3"), ("zh-CN", "cv_3.mp3")]
    assert got["test"] == [("de", "cv_4.mp3"), ("zh-CN", "cv_4.mp3")]
    assert src.skips.as_dict() == {"not_validated": 2, "bad_encoding": 1, "unknown_split": 2}
    assert src.skips.examples["bad_encoding"] == [
        f"covost_v2.en_de.tsv line 4: bad_encoding (byte 0xe9 at offset {offset} is not UTF-8: "
        "invalid continuation byte)"
    ]
    with pytest.raises(BadExampleError, match=r"covost_v2.en_de.tsv line 4: bad_encoding \(byte 0xe9 at offset"):
        source(cv_root, on_bad_example="error").examples("dev")


def test_a_byte_that_is_not_utf8_in_validated_tsv_or_a_split_file_costs_only_its_row(cv_root):
    break_line(cv_root / "en" / "validated.tsv", 4, b"birds", b"b\xffrds")  # cv_2: no longer validated
    src = source(cv_root)
    assert sorted({ex.audio for ex in src.examples("train")}) == ["cv_0.mp3", "cv_1.mp3"]
    assert src.skips.as_dict() == {"not_validated": 4, "bad_encoding": 1, "unknown_split": 2}
    assert src.skips.examples["bad_encoding"][0].startswith("validated.tsv line 4: bad_encoding (byte 0xff at")
    write_tsv(cv_root / "covost_v2.en_de.dev.tsv", ["path", "sentence", "translation"],
              [["cv_3.mp3", "the teacher reads a book", "de:x"], ["cv_5.mp3", "my friend cooks", "de:y"]])
    break_line(cv_root / "covost_v2.en_de.dev.tsv", 2, b"teacher", b"t\xe9acher")
    src = source(cv_root, directions=["de"])
    assert [ex.audio for ex in src.examples("dev")] == ["cv_5.mp3"]
    src.tables.direction("de", "dev")  # asked again (scripts/prepare_covost2.py does): counted once
    assert src.skips.as_dict() == {"bad_encoding": 1}
    assert src.skips.examples["bad_encoding"][0].startswith("covost_v2.en_de.dev.tsv line 2: bad_encoding")


def test_every_dropped_row_is_counted_once_under_its_reason(cv_root):
    """5 bad rows, 5 counted, whichever splits are read and however often: a row in no split counts once."""
    path = cv_root / "covost_v2.en_de.tsv"
    path.write_text(path.read_text().replace("de:a dog runs in the park", "")  # cv_1: empty translation
                    + "cv_4.mp3\tit rains\tde:it rains\n")  # line 9: a short row, no split label
    break_line(path, 4, b"birds", b"b\xe9rds")  # cv_2: not UTF-8; cv_5's "other" (line 7), the ghost (line 8)
    src = source(cv_root, directions=["de"])
    for _ in range(2):
        got = {s: [ex.audio for ex in src.examples(s)] for s in ("train", "dev", "test")}
        for split in ("train", "dev", "test"):
            src.tables.direction("de", split)
    assert got == {"train": ["cv_0.mp3"], "dev": ["cv_3.mp3"], "test": ["cv_4.mp3"]}
    assert src.skips.as_dict() == {"empty_translation": 1, "not_validated": 1, "bad_encoding": 1,
                                   "missing_split": 1, "unknown_split": 1}
    assert src.skips.total == 5
    assert src.skips.examples["missing_split"] == [
        "covost_v2.en_de.tsv line 9: missing_split (cv_4.mp3: no split label)"
    ]
    assert src.skips.examples["unknown_split"] == [
        "covost_v2.en_de.tsv line 7: unknown_split (cv_5.mp3: split 'other' is none of train, train_covost, dev, test)"
    ]


def test_read_tsv_names_rows_by_line_and_stops_at_a_bad_byte_when_nobody_counts_it(tmp_path):
    """Lines as an editor shows them: blank lines, \\r\\n endings and an escaped line break (one row, two lines)."""
    path = tmp_path / "t.tsv"
    path.write_bytes(b"path\tsplit\r\na\ttrain\r\n\r\n  \nb\\\nc\tdev\nd\ttest")
    df = read_tsv(path)
    assert df["path"].tolist() == ["a", "b\nc", "d"] and df["split"].tolist() == ["train", "dev", "test"]
    assert df.index.name == "line" and df.index.tolist() == [2, 5, 7]
    path.write_bytes(b"path\tsplit\na\ttrain\nb\tdev\nc\xe9\ttest\nd\ttest\n")
    with pytest.raises(ValueError, match=r"t.tsv: line 4: byte 0xe9 at offset 26 is not UTF-8"):
        read_tsv(path)
    bad = []
    df = read_tsv(path, lambda line, why: bad.append(line))
    assert bad == [4] and df["path"].tolist() == ["a", "b", "d"] and df.index.tolist() == [2, 3, 5]
    path.write_bytes(b"pa\xe9th\tsplit\na\ttrain\n")
    with pytest.raises(ValueError, match=r"line 1 \(the header\)"):
        read_tsv(path, lambda line, why: bad.append(line))
