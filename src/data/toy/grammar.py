"""Template-grammar English sentences and 15 synthetic target languages for the toy corpus.

A sentence is a small structure (subject, verb, tense, object, optional place and time), sampled
from a ``random.Random``. English is one rendering of it; each of the 15 CoVoST2 target codes gets
a synthetic language that renders the same structure with pseudo-words (stems shared by the
languages of one script, like cognates; function morphemes its own), its own script,
word order (SVO / SOV / VSO / verb-second), adjective placement, number marking (suffix, prefix,
reduplication, classifier or numeral only), articles, case marking, adpositions and tense marking.
The languages deliberately differ, so a model has to know the direction to translate, as on real
CoVoST2; and each translation is a pure function of (structure, language code), so the corpus seed
only changes which sentences are drawn, never how a sentence is translated.

The vocabulary is small (69 lemmas, pseudo-words of one or two syllables) so a tiny model learns
to recognise and translate it from a few hundred examples per direction on a CPU: with 160 lemmas
and longer words the dense toy model stayed under 4 BLEU. The languages are inventions, not
approximations of the real ones; the corpus option ``lexicon: real`` renders the same structures in the
real languages instead (src/data/toy/real_grammar.py), for a pretrained decoder that knows them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from src.utils.errors import UserError

# --------------------------------------------------------------------------------------------
# English lexicon. Each table is lemma -> inflected forms; lemmas double as lexicon keys.

# agents (subjects): singular -> plural
SUBJECTS: dict[str, str] = {
    "teacher": "teachers", "farmer": "farmers", "doctor": "doctors", "child": "children", "king": "kings",
    "queen": "queens", "dog": "dogs", "cat": "cats", "bird": "birds", "girl": "girls", "boy": "boys",
    "fox": "foxes",
}
# things (objects): singular -> plural
OBJECTS: dict[str, str] = {
    "book": "books", "apple": "apples", "box": "boxes", "letter": "letters", "cup": "cups", "flower": "flowers",
    "ball": "balls", "hat": "hats", "key": "keys", "lamp": "lamps", "stone": "stones", "bottle": "bottles",
}
# verbs: base -> (third person singular present, past)
VERBS: dict[str, tuple[str, str]] = {
    "read": ("reads", "read"), "see": ("sees", "saw"), "buy": ("buys", "bought"),
    "sell": ("sells", "sold"), "carry": ("carries", "carried"), "find": ("finds", "found"),
    "like": ("likes", "liked"), "make": ("makes", "made"), "bring": ("brings", "brought"),
    "wash": ("washes", "washed"), "open": ("opens", "opened"), "take": ("takes", "took"),
}
ADJECTIVES: tuple[str, ...] = ("small", "big", "old", "new", "red", "blue", "green", "white", "black", "heavy")
NUMBERS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
TIMES: tuple[str, ...] = ("in the morning", "in the evening", "at night", "on Monday", "on Sunday", "every day")
PLACES: tuple[str, ...] = ("garden", "market", "river", "kitchen", "school", "park", "city", "forest")
PREPOSITIONS: tuple[str, ...] = ("in", "near", "behind")
TENSES: tuple[str, ...] = ("present", "past")

assert not (set(SUBJECTS) & set(OBJECTS)) and not (set(PLACES) & (set(SUBJECTS) | set(OBJECTS)))


# --------------------------------------------------------------------------------------------
# Sentence structure


@dataclass(frozen=True)
class NounPhrase:
    """A noun with its count (1-10), an optional adjective and definiteness."""

    noun: str
    count: int = 1
    adjective: str | None = None
    definite: bool = True

    def english(self) -> str:
        plural_of = SUBJECTS.get(self.noun) or OBJECTS.get(self.noun) or self.noun + "s"
        noun = plural_of if self.count > 1 else self.noun
        words = [self.adjective, noun] if self.adjective else [noun]
        if self.count > 1:
            words.insert(0, NUMBERS[self.count])
        if self.definite:
            words.insert(0, "the")
        elif self.count == 1:
            words.insert(0, "an" if words[0][0] in "aeiou" else "a")
        return " ".join(words)


@dataclass(frozen=True)
class Place:
    """A locative phrase: preposition + a definite place noun ("near the river")."""

    preposition: str
    noun: str

    def english(self) -> str:
        return f"{self.preposition} the {self.noun}"


@dataclass(frozen=True)
class Sentence:
    """One sentence as slots; every language (English included) renders it deterministically."""

    subject: NounPhrase
    verb: str
    tense: str
    obj: NounPhrase
    place: Place | None = None
    time: str | None = None

    def english(self) -> str:
        third_sg, past = VERBS[self.verb]
        if self.tense == "past":
            verb = past
        else:
            verb = third_sg if self.subject.count == 1 else self.verb
        words = [self.subject.english(), verb, self.obj.english()]
        if self.place:
            words.append(self.place.english())
        if self.time:
            words.append(self.time)
        text = " ".join(words)
        return text[0].upper() + text[1:] + "."


def _sample_np(rng: random.Random, nouns: list[str], p_definite: float) -> NounPhrase:
    noun = rng.choice(nouns)
    count = 1 if rng.random() < 0.55 else rng.randint(2, max(NUMBERS))
    adjective = rng.choice(ADJECTIVES) if rng.random() < 0.45 else None
    return NounPhrase(noun, count, adjective, rng.random() < p_definite)


def sample_sentence(rng: random.Random) -> Sentence:
    """Draw one sentence structure; uses a fixed number of rng calls per slot decision."""
    subject = _sample_np(rng, list(SUBJECTS), p_definite=0.6)
    verb = rng.choice(list(VERBS))
    tense = rng.choice(TENSES)
    if verb == "read" and subject.count > 1:
        tense = "present"  # "the two boys read" would be both tenses: keep English unambiguous
    obj = _sample_np(rng, list(OBJECTS), p_definite=0.4)
    place = Place(rng.choice(PREPOSITIONS), rng.choice(PLACES)) if rng.random() < 0.35 else None
    time = rng.choice(TIMES) if rng.random() < 0.35 else None
    return Sentence(subject, verb, tense, obj, place, time)


# --------------------------------------------------------------------------------------------
# Scripts: syllable inventories (onsets, vowels, codas) written directly in each orthography.

_TA_CONS = [chr(c) for c in (
    0x0B95, 0x0B99, 0x0B9A, 0x0B9F, 0x0BA3, 0x0BA4, 0x0BA8, 0x0BAA, 0x0BAE, 0x0BAF, 0x0BB0, 0x0BB2,
    0x0BB5, 0x0BB4, 0x0BB3, 0x0BB1, 0x0BA9,
)]
_TA_VOWEL_SIGNS = ["", ""] + [chr(c) for c in (0x0BBE, 0x0BBF, 0x0BC0, 0x0BC1, 0x0BC2, 0x0BC6, 0x0BC7, 0x0BC8,
                                              0x0BCA, 0x0BCB)]
_TA_PULLI = "\u0bcd"
_TA_CODAS = ["", "", ""] + [chr(c) + _TA_PULLI for c in (0x0BAE, 0x0BA9, 0x0BB3, 0x0BB0, 0x0BB2, 0x0B9F)]

_ZH_CHARS = (
    "山水火木金土日月天地人口手心目耳花草石田风云雨雪光明春夏秋冬东西南北上下左右高长新老白黑红绿青黄好美"
    "生活学文字书画语言歌舞家国城门路车船马牛羊鱼鸟米茶酒饭肉菜果树林河海湖江桥房窗灯纸笔刀衣帽鞋包杯碗桌"
    "椅钟镜星朋友王父母兄弟姐妹男女子师医农兵工商开关走跑飞看听说读写买卖拿放洗画找做吃喝送带"
)
_JA_KANJI = (
    "森川町村駅橋店畑池島岩谷浜坂港園庭箱傘鍵皿瓶靴机窓扉筆紙本絵卵籠旗鈴梨桃柿栗桜梅松竹菊蘭蝶猫犬鶏狐猿"
    "熊鹿兎亀蛇鯛霧霜嵐雷波砂泥炭鉄銅銀玉糸布綿絹革針釘棚壁床屋蔵寺宮城砦塔門柱"
)
_HIRAGANA = "かきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわ"


@dataclass(frozen=True)
class Script:
    """How a language's pseudo-words are spelled."""

    name: str  # latin | arabic | cyrillic | tamil | han | japanese
    onsets: tuple[str, ...] = ()
    vowels: tuple[str, ...] = ()
    codas: tuple[str, ...] = ()

    def syllable(self, rng: random.Random) -> str:
        if self.name == "han":
            return rng.choice(_ZH_CHARS)
        if self.name == "japanese":
            return rng.choice(_JA_KANJI)
        return rng.choice(self.onsets) + rng.choice(self.vowels) + rng.choice(self.codas)


def _latin(onsets: str, vowels: str, codas: str) -> Script:
    # "" twice: open syllables are the most common
    return Script("latin", tuple(onsets.split()), tuple(vowels.split()), ("", "", *codas.split()))


_SCRIPTS: dict[str, Script] = {
    "de": _latin("b d f g h k l m n r s t w z sch st sp br gr kr tr fl pf", "a e i o u ä ö ü ei au ie",
                 "n r s t ch ng ck l m nd"),
    "ca": _latin("b c d f g l ll m n ny p r s t v x", "a e i o u à è é ò ó", "l n r s t"),
    "et": _latin("h j k l m n p r s t v", "a e i o u õ ä ö ü aa ee ii uu", "d k l n s t"),
    "tr": _latin("b c ç d g h k l m n p r s ş t y z", "a e ı i o ö u ü", "k l m n r t ş z"),
    "sv-SE": _latin("b d f g h j k l m n p r s t v sk st fr", "a e i o u y å ä ö", "d g k l n r s t ng"),
    "lv": _latin("b d g j k l m n p r s t v z š ž č ķ ļ", "a e i u ā ē ī ū o", "s š t n r"),
    "sl": _latin("b č d g j k l m n p r s š t v z ž", "a e i o u", "c j k l m n t"),
    "id": _latin("b d g h j k l m n p r s t w ng ny", "a e i o u", "k n ng r s h t"),
    "cy": _latin("b c d dd f g h ll m n p r rh s t th w", "a e i o u w y ae ai wy ŵ ŷ",
                 "dd ch n l r s th ff"),
    "mn": Script("cyrillic", tuple("б г д ж з л м н р с т х ц ч ш".split()),
                 tuple("а э и о у ө ү аа оо ээ үү".split()), ("", "", "л", "н", "р", "г", "д", "с", "х")),
    "ar": Script("arabic", tuple("ب ت ج د ر ز س ش ع ف ق ك ل م ن ه ح خ ص ط".split()),
                 ("", "", "ا", "و", "ي"), ("", "", "", "ب", "د", "ر", "ل", "م", "ن", "س")),
    "fa": Script("arabic", tuple("ب پ ت ج چ د ر ز ژ س ش ف ک گ ل م ن خ ه".split()),
                 ("", "", "ا", "و", "ی"), ("", "", "", "ر", "ن", "م", "د", "ز", "ش")),
    "ta": Script("tamil", tuple(_TA_CONS), tuple(_TA_VOWEL_SIGNS), tuple(_TA_CODAS)),
    "zh-CN": Script("han"),
    "ja": Script("japanese"),
}


# --------------------------------------------------------------------------------------------
# Typology


@dataclass(frozen=True)
class Typology:
    """The grammar of one synthetic language (see the module docstring)."""

    order: str  # SVO | SOV | VSO | V2 (verb second: a fronted time phrase pushes the subject after the verb)
    adj_after: bool  # adjective after the noun
    number: str  # suffix | prefix | redup | classifier | none (plural shown by the numeral only)
    num_after: bool = False  # numeral after the noun phrase
    indef_one: bool = False  # indefinite singular takes the numeral "one" (like an indefinite article)
    article: str = "none"  # definite marker: none | before | after | suffix | prefix (also on adjectives)
    adj_agree: bool = False  # adjectives take a plural ending
    adj_linker: str = "none"  # none | after_adj (a particle between adjective and noun) | on_noun (ezafe)
    acc: str = "none"  # object marking: none | suffix | particle
    acc_definite_only: bool = False
    subj_particle: bool = False
    adposition: str = "pre"  # pre | post | suffix | circum
    place_preverbal: bool = False
    present: str = "none"  # tense marking: none | suffix | prefix | before | after
    past: str = "suffix"
    verb_agree: bool = False  # plural subjects add a suffix to the verb
    time_initial: bool = False
    capitalize_nouns: bool = False


TYPOLOGY: dict[str, Typology] = {
    "de": Typology("V2", False, "suffix", indef_one=True, article="before", adj_agree=True, present="suffix",
                   verb_agree=True, time_initial=True, capitalize_nouns=True),
    "ca": Typology("SVO", True, "suffix", indef_one=True, article="before", adj_agree=True, present="suffix",
                   past="before", verb_agree=True),
    "zh-CN": Typology("SVO", False, "classifier", indef_one=True, adj_linker="after_adj", adposition="circum",
                      place_preverbal=True, past="after", time_initial=True),
    "fa": Typology("SOV", True, "suffix", adj_linker="on_noun", acc="particle", acc_definite_only=True,
                   present="prefix", past="suffix", verb_agree=True, time_initial=True),
    "et": Typology("SVO", False, "suffix", adj_agree=True, acc="suffix", adposition="suffix",
                   verb_agree=True),
    "mn": Typology("SOV", False, "none", acc="suffix", acc_definite_only=True, adposition="suffix",
                   place_preverbal=True, present="suffix", time_initial=True),
    "tr": Typology("SOV", False, "none", acc="suffix", acc_definite_only=True, adposition="suffix",
                   place_preverbal=True, present="suffix", verb_agree=True, time_initial=True),
    "ar": Typology("VSO", True, "prefix", article="prefix", adj_agree=True, present="prefix"),
    "sv-SE": Typology("SVO", False, "suffix", indef_one=True, article="suffix", adj_agree=True,
                      present="suffix"),
    "lv": Typology("SVO", False, "suffix", adj_agree=True, acc="suffix", present="suffix", time_initial=True),
    "sl": Typology("SVO", False, "suffix", adj_agree=True, acc="suffix", past="before", verb_agree=True),
    "ta": Typology("SOV", False, "suffix", acc="suffix", adposition="suffix", place_preverbal=True,
                   present="suffix", verb_agree=True, time_initial=True),
    "ja": Typology("SOV", False, "classifier", acc="particle", subj_particle=True, adposition="post",
                   place_preverbal=True, present="suffix", time_initial=True),
    "id": Typology("SVO", True, "redup", article="after", adposition="pre", past="before"),
    "cy": Typology("VSO", True, "suffix", article="before", present="before"),
}

# Function morphemes every language gets an entry for (unused ones are harmless).
_FUNCTION = ("pl", "adj_pl", "def", "cl", "link", "acc", "subj", "present", "past", "agree", "loc")


def _keys() -> list[tuple[str, str]]:
    keys = [("noun", n) for n in (*SUBJECTS, *OBJECTS, *PLACES)]
    keys += [("verb", v) for v in VERBS] + [("adj", a) for a in ADJECTIVES]
    keys += [("num", str(n)) for n in NUMBERS] + [("time", t) for t in TIMES]
    keys += [("prep", p) for p in PREPOSITIONS]
    return keys


# Languages that share a script form a family with one root lexicon (cognates): the stems of
# nouns, verbs, adjectives, numerals and time words are the family's; prepositions and every
# function morpheme (plural, articles, case, tense, agreement, particles) are each language's own.
# With a lexicon per language the dense toy model stayed under 4 BLEU within the CPU budget.
FAMILIES: dict[str, tuple[str, ...]] = {
    "latin": ("de", "ca", "et", "tr", "sv-SE", "lv", "sl", "id", "cy"),
    "arabic": ("ar", "fa"),
}
_FAMILY_SCRIPTS: dict[str, Script] = {
    "latin": _latin("b d f g k l m n p r s t v z", "a e i o u", "n r s l"),
    "arabic": _SCRIPTS["ar"],
}
_ROOT_KINDS = ("noun", "verb", "adj", "num", "time")


def family_of(code: str) -> str:
    """The family (shared root lexicon) of a language; a language of its own script is its own family."""
    return next((f for f, codes in FAMILIES.items() if code in codes), code)


def _new_word(script: Script, rng: random.Random, used: set[str], kind: str, content: bool) -> str:
    unspaced = script.name in ("han", "japanese")
    for attempt in range(1000):
        word = _draw(script, rng, kind, content, longer=attempt // 50)
        # Without spaces a stem inside another (or containing one) would be ambiguous in the text.
        if word not in used and not (unspaced and any(word in w or w in word for w in used)):
            used.add(word)
            return word
    raise RuntimeError(f"{script.name}: could not draw a unique pseudo-word")  # pragma: no cover


def _draw(s: Script, rng: random.Random, kind: str, content: bool, longer: int) -> str:
    if s.name == "japanese" and not content:
        return "".join(rng.choice(_HIRAGANA) for _ in range(rng.randint(1, 2) + longer))
    if s.name in ("han", "japanese"):
        n = (1 if rng.random() < 0.3 else 2) if content else 1
        word = "".join(s.syllable(rng) for _ in range(n + longer))
        if s.name == "japanese" and kind == "verb":
            word += rng.choice("むるくすうぶつ")
        elif s.name == "japanese" and kind == "adj":
            word += "い"
        return word
    if content:
        n = rng.choice((1, 2, 2)) + longer
        return "".join(s.syllable(rng) for _ in range(n))
    # function morphemes: one light syllable (vowel-initial now and then, as suffixes often are)
    if rng.random() < 0.25 and s.name == "latin":
        extra = "".join(s.syllable(rng) for _ in range(longer))
        return rng.choice(s.vowels) + rng.choice(s.codas[2:]) + extra
    return "".join(s.syllable(rng) for _ in range(1 + longer))


@cache
def family_roots(family: str) -> dict[tuple[str, str], str]:
    """The shared stems of a family (a fixed seed per family: never the corpus seed)."""
    script = _FAMILY_SCRIPTS.get(family) or _SCRIPTS[family]
    rng = random.Random(f"upcycle-st toy family {family} v1")
    used: set[str] = set()
    return {(kind, lemma): _new_word(script, rng, used, kind, content=True)
            for kind, lemma in _keys() if kind in _ROOT_KINDS}


class Language:
    """A synthetic language for one CoVoST2 code: its family's stems, its own function morphemes
    and prepositions, and a :class:`Typology`."""

    def __init__(self, code: str) -> None:
        if code not in TYPOLOGY:
            raise UserError(f"no synthetic toy language for '{code}'; known: {', '.join(TYPOLOGY)}")
        self.code = code
        self.typology = TYPOLOGY[code]
        self.script = _SCRIPTS[code]
        self.family = family_of(code)
        self.spaces = self.script.name not in ("han", "japanese")
        self.lexicon: dict[tuple[str, str], str] = dict(family_roots(self.family))
        # A fixed per-language seed: translations never depend on the corpus seed.
        rng = random.Random(f"upcycle-st toy language {code} v2")
        used = set(self.lexicon.values())
        for kind, lemma in _keys():
            if kind not in _ROOT_KINDS:
                self.lexicon[(kind, lemma)] = _new_word(self.script, rng, used, kind, content=False)
        for name in _FUNCTION:
            self.lexicon[("fn", name)] = _new_word(self.script, rng, used, "fn", content=False)

    def word(self, kind: str, lemma: str | int) -> str:
        """The stem for a lemma (kind: noun, verb, adj, num, time, prep, fn)."""
        return self.lexicon[(kind, str(lemma))]

    # -- rendering ----------------------------------------------------------------------------

    def _fn(self, name: str) -> str:
        return self.lexicon[("fn", name)]

    def noun_phrase(self, np: NounPhrase, role: str) -> list[str]:
        """Words of a noun phrase in role subj | obj | place (long on purpose: one typological rule per branch)."""
        t = self.typology
        plural = np.count > 1
        noun = self.word("noun", np.noun)
        if plural and t.number == "suffix":
            noun += self._fn("pl")
        elif plural and t.number == "prefix":
            noun = self._fn("pl") + noun
        elif plural and t.number == "redup":
            noun = f"{noun}-{noun}"
        if t.capitalize_nouns:
            noun = noun[0].upper() + noun[1:]
        adj = self.word("adj", np.adjective) if np.adjective else None
        if adj and plural and t.adj_agree:
            adj += self._fn("adj_pl")
        if np.definite and t.article == "suffix":
            noun += self._fn("def")
        elif np.definite and t.article == "prefix":
            noun = self._fn("def") + noun
            adj = self._fn("def") + adj if adj else None
        if adj and t.adj_linker == "after_adj":
            adj += self._fn("link")
        elif adj and t.adj_linker == "on_noun":
            noun += self._fn("link")
        core = [noun] if adj is None else ([noun, adj] if t.adj_after else [adj, noun])
        numeral: list[str] = []
        if plural or (not np.definite and (t.indef_one or t.number == "classifier")):
            numeral = [self.word("num", np.count) + (self._fn("cl") if t.number == "classifier" else "")]
        words = core + numeral if t.num_after else numeral + core
        if np.definite and t.article == "before":
            words = [self._fn("def"), *words]
        elif np.definite and t.article == "after":
            words = [*words, self._fn("def")]
        if role == "obj" and t.acc != "none" and (np.definite or not t.acc_definite_only):
            if t.acc == "suffix":
                words[-1] += self._fn("acc")
            else:
                words.append(self._fn("acc"))
        if role == "subj" and t.subj_particle:
            words.append(self._fn("subj"))
        return words

    def place_phrase(self, place: Place) -> list[str]:
        t = self.typology
        words = self.noun_phrase(NounPhrase(place.noun, 1, None, True), "place")
        adp = self.word("prep", place.preposition)
        if t.adposition == "pre":
            return [adp, *words]
        if t.adposition == "post":
            return [*words, adp]
        if t.adposition == "suffix":
            return [*words[:-1], words[-1] + adp]
        return [self._fn("loc"), *words, adp]  # circum

    def verb_group(self, s: Sentence) -> list[str]:
        t = self.typology
        verb = self.word("verb", s.verb)
        mode = t.past if s.tense == "past" else t.present
        marker = self._fn(s.tense)
        before: list[str] = []
        after: list[str] = []
        if mode == "suffix":
            verb += marker
        elif mode == "prefix":
            verb = marker + verb
        elif mode == "before":
            before = [marker]
        elif mode == "after":
            after = [marker]
        if t.verb_agree and s.subject.count > 1:
            verb += self._fn("agree")
        return [*before, verb, *after]

    def render(self, s: Sentence) -> str:
        """The translation of ``s``: a pure function of the structure and the language."""
        t = self.typology
        subj, obj = self.noun_phrase(s.subject, "subj"), self.noun_phrase(s.obj, "obj")
        place = self.place_phrase(s.place) if s.place else []
        time = [self.word("time", s.time)] if s.time else []
        words = arrange(t.order, subj, self.verb_group(s), obj, place, time, time_initial=t.time_initial,
                        place_preverbal=t.place_preverbal)
        return finish(words, self.spaces)


def arrange(order: str, subj: list[str], verb: list[str], obj: list[str], place: list[str], time: list[str], *,
            time_initial: bool, place_preverbal: bool) -> list[str]:
    """The clause's words in a language's order (SVO | SOV | VSO | V2); shared by the invented and the real
    lexicon (src/data/toy/real_grammar.py), so both place the verb, the place and the time phrase alike."""
    if place_preverbal:
        verb, place = [*place, *verb], []
    if order == "SOV":
        words = [*subj, *obj, *verb]
    elif order == "VSO":
        words = [*verb, *subj, *obj]
    elif order == "V2" and time and time_initial:
        words, time = [*time, *verb, *subj, *obj], []
    else:  # SVO, V2 without a fronted phrase
        words = [*subj, *verb, *obj]
    words = [*words, *place]
    return [*time, *words] if time_initial else [*words, *time]


def finish(words: list[str], spaces: bool) -> str:
    """Words to a sentence: spaced, capitalised and with a full stop, or unspaced with 。 (Chinese, Japanese)."""
    if spaces:
        text = " ".join(words)
        return text[0].upper() + text[1:] + "."
    return "".join(words) + "。"


@cache
def language(code: str) -> Language:
    """The synthetic language for a CoVoST2 code (built once per process)."""
    return Language(code)


LEXICONS: tuple[str, ...] = ("invented", "real")


def translate(sentence: Sentence, code: str, lexicon: str = "invented") -> str:
    """Render ``sentence`` for ``code`` (e.g. "de", "zh-CN"): in the invented language (the default), or in the
    real language with the `real` lexicon (src/data/toy/real_grammar.py)."""
    if lexicon == "invented":
        return language(code).render(sentence)
    if lexicon == "real":
        from src.data.toy.real_grammar import real_language  # imports this module: imported on use

        return real_language(code).render(sentence)
    raise UserError(f"toy corpus: unknown lexicon {lexicon!r}; known: {', '.join(LEXICONS)}")
