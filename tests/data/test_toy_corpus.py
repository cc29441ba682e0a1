"""The embedded toy corpus: layout, determinism, reuse, and that its 15 languages really differ."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import random
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from src.data.languages import COVOST2_EN_XX
from src.data.toy import build_toy_corpus, corpus_params, read_marker, toy_corpus_dir
from src.data.toy.grammar import (
    TYPOLOGY,
    NounPhrase,
    Place,
    Sentence,
    language,
    sample_sentence,
    translate,
)

TINY = dict(n_asr_train=4, n_asr_dev=2, n_st_train=4, n_st_dev=2, n_st_test=2)
N_ST = TINY["n_st_train"] + TINY["n_st_dev"] + TINY["n_st_test"]
N_ASR = TINY["n_asr_train"] + TINY["n_asr_dev"]


def read_tsv(path: Path) -> pd.DataFrame:
    """Exactly how the official CoVoST splitting tool reads its TSVs."""
    return pd.read_csv(path, sep="\t", header=0, encoding="utf-8", escapechar="\\", quoting=csv.QUOTE_NONE,
                       na_filter=False)


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    # serial here, threaded below: the output must not depend on the number of workers
    root = tmp_path_factory.mktemp("toy") / "corpus"
    return build_toy_corpus(root, seed=0, progress=False, workers=1, **TINY)


# --------------------------------------------------------------------------------------------
# layout


def test_layout_and_tsv_format(corpus: Path):
    assert (corpus / "en" / "clips").is_dir()
    validated = read_tsv(corpus / "en" / "validated.tsv")
    assert list(validated.columns) == [
        "client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent"
    ]
    assert len(validated) == N_ST + N_ASR and validated["path"].is_unique
    assert validated["sentence"].is_unique  # every English sentence appears once in the corpus
    assert all(p.startswith("common_voice_en_toy_") and p.endswith(".mp3") for p in validated["path"])
    assert all(len(c) == 64 for c in validated["client_id"])

    st_paths = None
    for code in COVOST2_EN_XX:
        df = read_tsv(corpus / f"covost_v2.en_{code}.tsv")
        assert list(df.columns) == ["path", "sentence", "translation", "split"]
        assert len(df) == N_ST
        assert (df["translation"].str.len() > 0).all()
        # all directions share the same English clips, in the same order
        st_paths = list(df["path"]) if st_paths is None else st_paths
        assert list(df["path"]) == st_paths
        counts = df["split"].value_counts().to_dict()
        assert set(counts) == {"train", "train_covost", "dev", "test"}
        assert counts["train"] + counts["train_covost"] == TINY["n_st_train"]
        assert counts["dev"] == TINY["n_st_dev"] and counts["test"] == TINY["n_st_test"]
        # the English column agrees with Common Voice's validated.tsv
        merged = df.merge(validated[["path", "sentence"]], on="path", suffixes=("", "_cv"))
        assert len(merged) == N_ST and (merged["sentence"] == merged["sentence_cv"]).all()

    asr = {s: read_tsv(corpus / f"toy_asr.{s}.tsv") for s in ("train", "dev")}
    for s, df in asr.items():
        assert list(df.columns) == ["path", "sentence", "tgt_lang", "translation"]
        k = corpus_params()["pretrain_translations"]
        assert k >= 1 and len(df) == k * TINY[f"n_asr_{s}"]
        # k non-empty translations per pretraining clip (one row each), directions in turn
        assert list(df["tgt_lang"]) == [COVOST2_EN_XX[i % 15] for i in range(len(df))]
        assert (df.groupby("path")["tgt_lang"].nunique() == k).all()
        assert all(t.strip() for t in df["translation"])
    asr_paths = set(asr["train"]["path"]) | set(asr["dev"]["path"])
    assert not asr_paths & set(st_paths), "ASR clips must be disjoint from the ST clips"
    assert asr_paths | set(st_paths) == set(validated["path"])

    card = (corpus / "DATA_CARD.md").read_text(encoding="utf-8")
    assert "synthetic" in card.lower() and "eSpeak NG" in card
    assert read_marker(corpus) == corpus_params(seed=0, **TINY)
    assert not list(corpus.parent.glob(".*partial*")), "temporary build directories left behind"


def test_clips_decode_at_48k_and_are_speech(corpus: Path):
    validated = read_tsv(corpus / "en" / "validated.tsv")
    for name in validated["path"]:
        audio, sr = sf.read(corpus / "en" / "clips" / name, dtype="float32")
        assert sr == 48000 and audio.ndim == 1
        assert 0.8 < len(audio) / sr < 15.0
        assert np.sqrt(np.mean(audio**2)) > 0.01, f"{name} is (nearly) silent"
        assert np.abs(audio).max() <= 1.0


# --------------------------------------------------------------------------------------------
# determinism


def test_same_seed_same_bytes_other_seed_other_sentences(corpus: Path, tmp_path: Path):
    again = build_toy_corpus(tmp_path / "again", seed=0, progress=False, workers=2, **TINY)
    a, b = tree_digest(corpus), tree_digest(again)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []  # TSVs, DATA_CARD, marker and every mp3

    other = build_toy_corpus(tmp_path / "other", seed=1, progress=False, **TINY)
    s0 = set(read_tsv(corpus / "en" / "validated.tsv")["sentence"])
    s1 = set(read_tsv(other / "en" / "validated.tsv")["sentence"])
    assert len(s0 & s1) < len(s0) // 2


def test_sentence_sampling_is_seeded():
    draw = lambda seed: [sample_sentence(random.Random(seed)).english() for _ in range(1)]  # noqa: E731
    assert draw(3) == draw(3)
    rng = random.Random(0)
    texts = [sample_sentence(rng).english() for _ in range(200)]
    assert len(set(texts)) > 190
    assert all(4 <= len(t.split()) <= 16 and t[0].isupper() and t.endswith(".") for t in texts)


def test_tts_is_a_pure_function():
    from src.data.toy.tts import synthesize

    a, sr = synthesize("the red fox", "en-us+f3", 170, 40, seed=5)
    synthesize("something else first", "en-gb-scotland+m5", 200, 70, seed=9)  # must not leak state
    b, _ = synthesize("the red fox", "en-us+f3", 170, 40, seed=5)
    c, _ = synthesize("the red fox", "en-us+m3", 170, 40, seed=5)
    assert sr == 22050 and a.dtype == np.float32 and len(a) > sr // 4
    assert np.array_equal(a, b)
    assert not (len(a) == len(c) and np.array_equal(a, c))
    with pytest.raises(ValueError, match="no voice"):
        synthesize("x", "no-such-voice")


# --------------------------------------------------------------------------------------------
# the languages


SENT = Sentence(NounPhrase("teacher", 1, "small", True), "read", "present",
                NounPhrase("book", 3, "red", False), Place("near", "river"), "in the morning")


def _scripts(text: str) -> set[str]:
    """Unicode script families of the letters in ``text``."""
    out = set()
    for ch in text:
        if not unicodedata.category(ch).startswith("L"):
            continue
        cp = ord(ch)
        if 0x0600 <= cp <= 0x06FF:
            out.add("arabic")
        elif 0x0400 <= cp <= 0x04FF:
            out.add("cyrillic")
        elif 0x0B80 <= cp <= 0x0BFF:
            out.add("tamil")
        elif 0x4E00 <= cp <= 0x9FFF:
            out.add("han")
        elif 0x3040 <= cp <= 0x30FF:
            out.add("kana")
        elif cp <= 0x024F or 0x1E00 <= cp <= 0x1EFF:
            out.add("latin")
        else:
            out.add(f"other:{ch}")
    return out


EXPECTED_SCRIPTS = {
    **{c: {"latin"} for c in ("de", "ca", "et", "tr", "sv-SE", "lv", "sl", "id", "cy")},
    "ar": {"arabic"}, "fa": {"arabic"}, "mn": {"cyrillic"}, "ta": {"tamil"}, "zh-CN": {"han"},
    "ja": {"han", "kana"},
}


def test_all_fifteen_translations_differ_and_use_their_script():
    assert SENT.english() == "The small teacher reads three red books near the river in the morning."
    out = {c: translate(SENT, c) for c in COVOST2_EN_XX}
    for a, b in itertools.combinations(COVOST2_EN_XX, 2):
        assert out[a] != out[b], (a, b)
    for code, text in out.items():
        assert _scripts(text) == EXPECTED_SCRIPTS[code], (code, text)
        assert (" " in text) == (code not in ("zh-CN", "ja")), (code, text)
    # some diacritics where the real language has them
    assert any(ch in out["tr"] + translate(sample_sentence(random.Random(1)), "tr") for ch in "çşğıöü")


def test_corpus_translations_use_their_script(corpus: Path):
    for code in COVOST2_EN_XX:
        for text in read_tsv(corpus / f"covost_v2.en_{code}.tsv")["translation"]:
            assert _scripts(text) == EXPECTED_SCRIPTS[code], (code, text)
            if code in ("zh-CN", "ja"):
                assert " " not in text


def test_translation_is_a_pure_function_of_the_structure():
    rng = random.Random(7)
    sents = [sample_sentence(rng) for _ in range(50)]
    first = [[translate(s, c) for c in COVOST2_EN_XX] for s in sents]
    language.cache_clear()  # rebuild every lexicon from scratch
    rebuilt = [[translate(Sentence(**s.__dict__), c) for c in COVOST2_EN_XX] for s in sents]
    assert first == rebuilt
    # different structures (here: only the tense) give different translations
    past = Sentence(SENT.subject, SENT.verb, "past", SENT.obj, SENT.place, SENT.time)
    assert all(translate(past, c) != translate(SENT, c) for c in COVOST2_EN_XX)


def _positions(code: str, sent: Sentence) -> dict[str, int]:
    lang, text = language(code), translate(sent, code)
    stems = {"S": lang.word("noun", sent.subject.noun), "V": lang.word("verb", sent.verb),
             "O": lang.word("noun", sent.obj.noun)}
    low = text.lower()
    for role, stem in stems.items():
        assert low.count(stem.lower()) == 1, (code, role, stem, text)
    return {role: low.index(stem.lower()) for role, stem in stems.items()}


@pytest.mark.parametrize("subject,verb,obj", [("farmer", "see", "apple"), ("cat", "carry", "lamp")])
def test_word_order_differs(subject: str, verb: str, obj: str):
    sent = Sentence(NounPhrase(subject), verb, "past", NounPhrase(obj, 1, None, True))
    orders = {c: TYPOLOGY[c].order for c in COVOST2_EN_XX}
    assert {"SOV", "SVO", "VSO"} <= set(orders.values())
    for code, order in orders.items():
        pos = _positions(code, sent)
        seq = "".join(sorted(pos, key=pos.get))
        assert seq == ("SVO" if order == "V2" else order), (code, translate(sent, code))
    # so the same structure comes out with the verb last in Turkish and in the middle in German
    assert _positions("tr", sent)["V"] > _positions("tr", sent)["O"]
    assert _positions("de", sent)["V"] < _positions("de", sent)["O"]


def test_modifier_placement_and_number_marking_differ():
    one = Sentence(NounPhrase("teacher"), "see", "present", NounPhrase("book", 1, "red", True))
    many = Sentence(NounPhrase("teacher"), "see", "present", NounPhrase("book", 4, "red", True))
    after = {c for c in COVOST2_EN_XX if TYPOLOGY[c].adj_after}
    assert after and len(after) < len(COVOST2_EN_XX)
    for code in COVOST2_EN_XX:
        lang, text = language(code), translate(one, code).lower()
        adj, noun = text.index(lang.word("adj", "red").lower()), text.index(lang.word("noun", "book").lower())
        assert (adj > noun) == (code in after), (code, text)
        assert translate(many, code) != translate(one, code)
    assert {TYPOLOGY[c].number for c in COVOST2_EN_XX} >= {"suffix", "prefix", "classifier"}


# --------------------------------------------------------------------------------------------
# reuse


def test_reuse_and_rebuild(tmp_path: Path):
    small = dict(n_asr_train=1, n_asr_dev=1, n_st_train=2, n_st_dev=1, n_st_test=1, directions=("de", "ja"))
    root = build_toy_corpus(tmp_path / "c", progress=False, **small)
    marker, tsv = root / ".complete", root / "covost_v2.en_de.tsv"
    stamps = (marker.stat().st_mtime_ns, tsv.stat().st_mtime_ns)
    assert build_toy_corpus(root, progress=False, **small) == root
    assert (marker.stat().st_mtime_ns, tsv.stat().st_mtime_ns) == stamps  # reused, not rewritten

    changed = {**small, "n_st_dev": 2}
    build_toy_corpus(root, progress=False, **changed)
    assert json.loads(marker.read_text())["n_st_dev"] == 2
    assert tsv.stat().st_mtime_ns != stamps[1]
    assert (read_tsv(tsv)["split"] == "dev").sum() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temp or old copies left

    # only the two requested directions
    assert sorted(p.name for p in root.glob("covost_v2.*.tsv")) == [
        "covost_v2.en_de.tsv", "covost_v2.en_ja.tsv"
    ]

    # never overwrite a directory that is not a toy corpus
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a toy corpus"):
        build_toy_corpus(other, progress=False, **small)
    assert (other / "notes.txt").read_text() == "keep me"


def test_cache_dir_is_keyed_by_parameters(tmp_path: Path):
    a = toy_corpus_dir(tmp_path, {"seed": 0, **TINY})
    assert a == toy_corpus_dir(tmp_path, {**TINY, "seed": 0, "directions": list(COVOST2_EN_XX)})
    assert a != toy_corpus_dir(tmp_path, {"seed": 1, **TINY})
    assert a != toy_corpus_dir(tmp_path, {"seed": 0, **TINY, "directions": ["de"]})
    assert a.parent == tmp_path
    with pytest.raises(ValueError, match="unknown CoVoST2 direction"):
        corpus_params(directions=["xx"])
