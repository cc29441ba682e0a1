"""The toy corpus's `real` lexicon (issue 32): real words of the 15 target languages in their scripts and word
orders, a corpus option of its own cache key, and the invented lexicon's output unchanged by it."""

from __future__ import annotations

import csv
import hashlib
import itertools
import random
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from src.data.languages import COVOST2_EN_XX
from src.data.toy import build_toy_corpus, corpus_params, read_marker, toy_corpus_dir
from src.data.toy.grammar import (
    ADJECTIVES,
    NUMBERS,
    OBJECTS,
    PLACES,
    PREPOSITIONS,
    SUBJECTS,
    TIMES,
    VERBS,
    NounPhrase,
    Place,
    Sentence,
    sample_sentence,
    translate,
)
from src.data.toy.real_grammar import real_language
from src.data.toy.real_lexicon import REAL_TABLES
from src.utils.errors import UserError

SENT = Sentence(NounPhrase("teacher", 1, "small", True), "read", "present",
                NounPhrase("book", 3, "red", False), Place("near", "river"), "in the morning")
CATS = Sentence(NounPhrase("cat", 2, "black", True), "take", "past", NounPhrase("bottle", 1, "green", False),
                Place("in", "kitchen"))


def real(s: Sentence, code: str) -> str:
    return translate(s, code, "real")


# --------------------------------------------------------------------------------------------
# coverage: every lemma and function word, in every role, number and tense


def coverage_sentences() -> list[list[Sentence]]:
    """Groups of sentences that differ in one slot only (a lemma, a count, a tense, a place, a time)."""
    base = Sentence(NounPhrase("teacher"), "see", "present", NounPhrase("book"))
    groups = [[Sentence(NounPhrase(n, c, a, d), base.verb, base.tense, base.obj) for n in SUBJECTS]
              for c, a, d in itertools.product(NUMBERS, (None, *ADJECTIVES), (True, False))]
    groups += [[Sentence(base.subject, base.verb, base.tense, NounPhrase(n, c, a, d)) for n in OBJECTS]
               for c, a, d in itertools.product(NUMBERS, (None, *ADJECTIVES), (True, False))]
    groups += [[Sentence(NounPhrase("cat", c, a), base.verb, base.tense, NounPhrase("box", c, a, False))
                for a in ADJECTIVES] for c in (1, 2, 5)]
    groups += [[Sentence(NounPhrase(n, c, None, d), base.verb, base.tense, base.obj) for c in NUMBERS]
               for n, d in itertools.product(("queen", "dog", "child"), (True, False))]
    groups += [[Sentence(NounPhrase("girl", c), v, t, NounPhrase("apple", c)) for v in VERBS]
               for c, t in itertools.product(NUMBERS, ("present", "past"))]
    groups += [[Sentence(NounPhrase("fox", c), v, t, NounPhrase("ball")) for t in ("present", "past")]
               for c, v in itertools.product(NUMBERS, VERBS)]
    groups.append([Sentence(base.subject, base.verb, base.tense, base.obj, Place(p, n))
                   for p, n in itertools.product(PREPOSITIONS, PLACES)])
    groups.append([Sentence(base.subject, base.verb, base.tense, base.obj, None, t) for t in TIMES])
    return groups


GROUPS = coverage_sentences()


def test_every_language_renders_every_lemma_and_tells_them_apart():
    """No missing table entry in any role, number or tense, and every lemma (count, tense, place, time) comes out
    as its own sentence: a lemma rendered like another one, or not at all, would make two sentences equal."""
    tables = {"noun": set(SUBJECTS) | set(OBJECTS), "verb": set(VERBS), "adj": set(ADJECTIVES), "time": set(TIMES)}
    for code in COVOST2_EN_XX:
        table = REAL_TABLES[code]
        for section, lemmas in tables.items():
            assert lemmas <= set(table[section]), (code, section, lemmas - set(table[section]))
        places = set(table.get("place", {})) | {n for n in table["noun"] if n in PLACES}
        assert places == set(PLACES), (code, set(PLACES) - places)
        for group in GROUPS:
            texts = [real(s, code) for s in group]
            assert len(set(texts)) == len(texts), (code, [t for t in texts if texts.count(t) > 1][:2])
            for text in texts:
                assert text.endswith("。" if code in ("zh-CN", "ja") else ".") and "  " not in text, (code, text)
                assert "None" not in text and unicodedata.is_normalized("NFC", text), (code, text)


# --------------------------------------------------------------------------------------------
# scripts


def script_of(ch: str) -> str:
    cp = ord(ch)
    if 0x0600 <= cp <= 0x06FF:
        return "arabic"
    if 0x0400 <= cp <= 0x04FF:
        return "cyrillic"
    if 0x0B80 <= cp <= 0x0BFF:
        return "tamil"
    if 0x4E00 <= cp <= 0x9FFF:
        return "han"
    if 0x3040 <= cp <= 0x30FF:
        return "kana"
    if cp <= 0x024F:
        return "latin"
    return f"other:{ch}"


EXPECTED = {
    **{c: {"latin"} for c in ("de", "ca", "et", "tr", "sv-SE", "lv", "sl", "id", "cy")},
    "ar": {"arabic"}, "fa": {"arabic"}, "mn": {"cyrillic"}, "ta": {"tamil"}, "zh-CN": {"han"}, "ja": {"han", "kana"},
}


def test_each_language_is_written_in_its_own_script():
    """Every letter and mark (Tamil vowel signs and virama included) in the language's Unicode block."""
    rng = random.Random(3)
    sentences = [SENT, CATS, *(sample_sentence(rng) for _ in range(150))]
    for code in COVOST2_EN_XX:
        seen = set()
        for s in sentences:
            text = real(s, code)
            scripts = {script_of(ch) for ch in text if unicodedata.category(ch)[0] in "LM"}
            assert scripts <= EXPECTED[code], (code, text, scripts - EXPECTED[code])
            seen |= scripts
        assert seen == EXPECTED[code], (code, seen)
    ta = real(SENT, "ta")
    assert any("\u0bbe" <= ch <= "\u0bcd" for ch in ta)  # vowel signs and the virama: real Tamil orthography
    assert any(0x0600 <= ord(ch) <= 0x06FF and ch in "پچژگکی" for ch in real(SENT, "fa"))  # Persian letters


# --------------------------------------------------------------------------------------------
# words and word order


# "The dog sees a book." per language: the words for "the dog" and "a book" (as words, or inside unspaced text)
DOG = {"de": "Hund", "ca": "gos", "zh-CN": "狗", "fa": "سگ", "et": "koer", "mn": "нохой", "tr": "köpek", "ar": "كلب",
       "sv-SE": "hunden", "lv": "suns", "sl": "pes", "ta": "நாய்", "ja": "犬", "id": "anjing", "cy": "ci"}
BOOK = {"de": "Buch", "ca": "llibre", "zh-CN": "书", "fa": "کتاب", "et": "raamatut", "mn": "ном", "tr": "kitap",
        "ar": "كتابا", "sv-SE": "bok", "lv": "grāmatu", "sl": "knjigo", "ta": "புத்தகம்", "ja": "本", "id": "buku",
        "cy": "llyfr"}


def words(text: str) -> list[str]:
    """Lower-cased words without punctuation and without the Arabic article ال (written on its noun)."""
    return [w.strip(".,").lower().removeprefix("ال") for w in text.split()]


def test_known_words():
    s = Sentence(NounPhrase("dog"), "see", "present", NounPhrase("book", 1, None, False))
    for code in COVOST2_EN_XX:
        text = real(s, code)
        if code in ("zh-CN", "ja"):
            assert DOG[code] in text and BOOK[code] in text, (code, text)
        else:
            assert DOG[code].lower() in words(text) and BOOK[code].lower() in words(text), (code, text)
    assert real(s, "ja") == "犬は本を見る。" and real(s, "zh-CN") == "狗看见一本书。"
    assert real(s, "de") == "Der Hund sieht ein Buch."


@pytest.mark.parametrize("tense", ["present", "past"])
def test_word_order_verb_last_or_first(tense: str):
    """SOV (ja, ta, tr, fa, mn): the verb ends the sentence; VSO (ar, cy): it starts it; SVO: in between."""
    s = Sentence(NounPhrase("dog"), "see", tense, NounPhrase("book", 1, None, True))
    past = tense == "past"
    verb = {"ja": ("見る", "見た")[past], "ta": ("பார்க்கிறது", "பார்த்தது")[past], "tr": ("görüyor", "gördü")[past],
            "fa": ("می\u200cبیند", "دید")[past], "mn": ("харна", "харсан")[past], "ar": ("يرى", "رأى")[past],
            "cy": ("Mae'r", "Gwelodd")[past], "sv-SE": ("ser", "såg")[past], "id": "melihat",
            "lv": ("redz", "redzēja")[past]}
    for code in ("ja", "ta", "tr", "fa", "mn"):
        text = real(s, code)
        assert text.removesuffix(".").removesuffix("。").endswith(verb[code]), (code, text)
        assert text.lower().index(DOG[code]) < text.index(verb[code]), (code, text)
    for code in ("ar", "cy"):
        text = real(s, code)
        assert text.startswith(verb[code]), (code, text)
        assert words(text).index(verb[code].lower()) < words(text).index(DOG[code]), (code, text)
    for code in ("sv-SE", "id", "lv"):
        w = words(real(s, code))
        assert 0 < w.index(verb[code]) < len(w) - 1, (code, w)
    assert real(s, "cy") == ("Gwelodd y ci y llyfr." if past else "Mae'r ci yn gweld y llyfr.")


def test_german_verb_second_after_a_fronted_time():
    s = Sentence(NounPhrase("dog"), "see", "past", NounPhrase("book"), None, "on Monday")
    assert real(s, "de") == "Am Montag sah der Hund das Buch."


# Hand-checked renderings (the grammar each exercises: articles, gender and case, adjective agreement, numerals,
# dual, classifiers and counters, mutations, the Arabic numeral's gender polarity, the Slovene participle).
GOLDEN = {
    SENT: {
        "de": "Am Morgen liest der kleine Lehrer drei rote Bücher nahe dem Fluss.",
        "ca": "El mestre petit llegeix tres llibres vermells a prop del riu al matí.",
        "zh-CN": "早上小的老师在河附近读三本红色的书。",
        "fa": "صبح معلم کوچک سه کتاب قرمز نزدیک رودخانه می\u200cخواند.",
        "et": "Väike õpetaja loeb kolm punast raamatut jõe lähedal hommikul.",
        "mn": "Өглөө жижиг багш гурван улаан ном голын ойролцоо уншина.",
        "tr": "Sabah küçük öğretmen üç kırmızı kitap nehrin yanında okuyor.",
        "ar": "يقرأ المعلم الصغير كتبا حمراء ثلاثة قرب النهر في الصباح.",
        "sv-SE": "Den lilla läraren läser tre röda böcker nära floden på morgonen.",
        "lv": "Mazais skolotājs lasa trīs sarkanas grāmatas pie upes no rīta.",
        "sl": "Majhni učitelj bere tri rdeče knjige blizu reke zjutraj.",
        "ta": "காலையில் சிறிய ஆசிரியர் மூன்று சிவப்பு புத்தகங்கள் ஆற்றின் அருகில் படிக்கிறார்.",
        "ja": "朝小さい先生は三冊の赤い本を川の近くで読む。",
        "id": "Guru kecil itu membaca tiga buku merah di dekat sungai pada pagi hari.",
        "cy": "Mae'r athro bach yn darllen tri llyfr coch ger yr afon yn y bore.",
    },
    CATS: {
        "de": "Die zwei schwarzen Katzen nahmen eine grüne Flasche in der Küche.",
        "ca": "Els dos gats negres van agafar una ampolla verda a la cuina.",
        "zh-CN": "两只黑色的猫在厨房里拿了一个绿色的瓶子。",
        "fa": "دو گربه سیاه یک بطری سبز در آشپزخانه برداشتند.",
        "et": "Kaks musta kassi võtsid rohelise pudeli köögis.",
        "mn": "Хоёр хар муур нэг ногоон лонх гал тогоонд авсан.",
        "tr": "İki siyah kedi yeşil bir şişe mutfakta aldı.",
        "ar": "أخذت القطط السوداء الاثنتان زجاجة خضراء في المطبخ.",
        "sv-SE": "De två svarta katterna tog en grön flaska i köket.",
        "lv": "Divi melnie kaķi ņēma zaļu pudeli virtuvē.",
        "sl": "Dve črni mački sta vzeli zeleno steklenico v kuhinji.",
        "ta": "இரண்டு கருப்பு பூனைகள் ஒரு பச்சை பாட்டில் சமையலறையில் எடுத்தது.",
        "ja": "二匹の黒い猫は緑の瓶を台所で取った。",
        "id": "Dua kucing hitam itu telah mengambil sebuah botol hijau di dapur.",
        "cy": "Cymerodd y ddwy gath ddu botel wyrdd yn y gegin.",
    },
}


def test_hand_checked_sentences():
    for s, expected in GOLDEN.items():
        assert {c: real(s, c) for c in COVOST2_EN_XX} == expected


def test_real_translation_is_a_pure_function_of_structure_code_and_lexicon():
    rng = random.Random(11)
    sents = [sample_sentence(rng) for _ in range(60)]
    first = [[real(s, c) for c in COVOST2_EN_XX] for s in sents]
    real_language.cache_clear()
    again = [[real(Sentence(**s.__dict__), c) for c in reversed(COVOST2_EN_XX)][::-1] for s in sents]
    assert first == again
    assert all(real(s, c) != translate(s, c) for s in sents[:10] for c in COVOST2_EN_XX)  # not the invented one
    with pytest.raises(UserError, match="unknown lexicon"):
        translate(SENT, "de", "klingon")


# --------------------------------------------------------------------------------------------
# the invented lexicon is unchanged (recorded from main before the real lexicon existed)

INVENTED_FIRST = {  # the first sentence drawn by random.Random(12345): "Four dogs carried the box."
    "de": "Dos Kugoltäm tulnackka flaung Rolkis.", "ca": "Dos kugolvor cul tulos nar rolkis.",
    "zh-CN": "飞湖听江下友下鱼黑。", "fa": "خوسجب كوسسما زيم گود كدنوددننیر.",
    "et": "Dos kugolnä tuliinlä rolkiskut.", "mn": "Шихлээн дээн дигөс дигшоонхун.",
    "tr": "Dos kugol rolkisgo tulhunyil.", "ar": "كدنوددار خوسجب تولكوسس صودزيم.",
    "sv-SE": "Dos kugolskö tulbol rolkisjur.", "lv": "Dos kugološ tulķu rolkisčor.",
    "sl": "Dos kugolpon im tulpil rolkisra.", "ta": "ளொநு துதாம்ஙோல் ரைட்நெகூள் ழேட்வைமன்.",
    "ja": "橋泥みね瓶みゆ泥扉り畑ぶく。", "id": "Dos kugol-kugol lik tul rolkis ngut.",
    "cy": "Tulhŷch dos kugolmwch sin rolkis.",
}
# sha256 of the 400 sentences of random.Random(12345) x 15 languages, one translation a line (main, 5a5c269)
INVENTED_DIGEST = "13013dbfdc7bc8d74d9f4bff7ee2392231a62802c36d416e99a0c22ff0ed6b91"


def test_invented_lexicon_output_is_unchanged():
    rng = random.Random(12345)
    sents = [sample_sentence(rng) for _ in range(400)]
    assert sents[0].english() == "Four dogs carried the box."
    assert {c: translate(sents[0], c) for c in COVOST2_EN_XX} == INVENTED_FIRST
    assert {c: translate(sents[0], c, "invented") for c in COVOST2_EN_XX} == INVENTED_FIRST
    digest = hashlib.sha256()
    for s in sents:
        for c in COVOST2_EN_XX:
            digest.update(translate(s, c).encode() + b"\n")
    assert digest.hexdigest() == INVENTED_DIGEST


# --------------------------------------------------------------------------------------------
# the corpus option and its cache key


def test_lexicon_enters_the_cache_key_only_when_real():
    tiny = dict(n_asr_train=4, n_asr_dev=2, n_st_train=4, n_st_dev=2, n_st_test=2)
    demo = dict(seed=0, n_asr_train=3000, n_asr_dev=100, n_st_train=400, n_st_dev=40, n_st_test=120,
                pretrain_translations=1)  # conf/data/toy.yaml
    # the invented corpus keeps the directories it had before the option (names recorded on main)
    assert toy_corpus_dir("/c", tiny).name == "toy-v3-seed0-8cc76d51"
    assert toy_corpus_dir("/c", demo).name == "toy-v3-seed0-075317d5"
    assert toy_corpus_dir("/c", {**demo, "lexicon": "invented"}).name == "toy-v3-seed0-075317d5"
    assert "lexicon" not in corpus_params(**tiny)
    real_dir = toy_corpus_dir("/c", {**demo, "lexicon": "real"})
    assert real_dir.name.startswith("toy-v3-real-seed0-") and real_dir != toy_corpus_dir("/c", demo)
    assert corpus_params(lexicon="real")["lexicon"] == "real"
    with pytest.raises(UserError, match="lexicon must be one of invented, real"):
        corpus_params(lexicon="klingon")


def test_real_corpus_build(tmp_path: Path):
    params = dict(n_asr_train=1, n_asr_dev=1, n_st_train=1, n_st_dev=1, n_st_test=1, directions=("de", "ta"),
                  lexicon="real")
    root = build_toy_corpus(tmp_path / "real", progress=False, **params)
    assert read_marker(root)["lexicon"] == "real"
    for code in ("de", "ta"):
        df = pd.read_csv(root / f"covost_v2.en_{code}.tsv", sep="\t", quoting=csv.QUOTE_NONE, na_filter=False)
        assert all({script_of(ch) for ch in t if ch.isalpha()} <= EXPECTED[code] for t in df["translation"])
    de = pd.read_csv(root / "covost_v2.en_de.tsv", sep="\t", quoting=csv.QUOTE_NONE, na_filter=False)
    assert any(w in ("der", "die", "das", "ein", "eine", "einen", "den") for t in de["translation"]
               for w in t.lower().split())
    assert "real words of the target language" in (root / "DATA_CARD.md").read_text(encoding="utf-8")
