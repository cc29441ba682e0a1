"""The `real` lexicon's grammar: the toy sentence structures rendered as real sentences of the 15 CoVoST2 target
languages (tables in :mod:`src.data.toy.real_lexicon`), so a pretrained multilingual decoder (Whisper) is asked
for text it knows instead of the invented languages of :mod:`src.data.toy.grammar`.

Each language keeps its basic word order (via :func:`src.data.toy.grammar.arrange`): SVO (ca, et, lv, sl, sv-SE,
id, zh-CN), verb-second with a fronted time phrase (de), SOV with postpositions or case (fa, mn, tr, ta, ja) and
VSO (ar, cy); adjectives before or after the noun as the language puts them; its articles, number marking
(plural forms, numerals with a singular noun, classifiers, counters, the Slovene dual), object case and tense.
A translation is a pure function of (structure, language code), like the invented one.

Simplified on purpose (what a reader should not expect to be idiomatic):
- Register and choice of word: one translation per lemma, present-tense verbs in the simple (or progressive
  where that is the usual present: tr) form, the plain style in ja; "like" is a transitive verb of loving or
  liking where the usual verb takes a dative experiencer (ca estimar, et armastama, lv mīlēt, sl marati,
  mn таалах, ja 好む); sv "bring" is hämta (fetch), cy "find" the colloquial ffeindio. Semantic oddities of the
  templates ("the blue farmer") stay.
- de: a fixed gender per noun, the article and the adjective ending by article type, case (nom/acc/dat) and
  number; places take "in/nahe/hinter" + dative, "in dem" -> "im". No genitive, no Perfekt.
- ca: articles elide to l' before a vowel; a/de + el contract; the past is the periphrastic va/van + infinitive.
- zh-CN: every adjective takes 的; the past is 了 after the verb (also where 过 or no marker would be usual);
  definiteness is not marked.
- fa: the ezafe is not written (as is usual after a consonant; after a silent h it would be); plurality only by
  the numeral (which takes a singular noun, as in Persian).
- et: numerals 2-6 take the partitive singular; a singular object is genitive (total) after a verb of a
  result (buy, sell, find, bring, open, take; read, make, wash in the past only) and partitive otherwise (see,
  carry, like, and ongoing reading, making, washing); no plural nouns are needed.
- mn, tr: numerals with a singular noun, the accusative on definite objects only; no verb agreement (tr keeps
  the 3sg verb with a numeral subject, as usual). mn has no vowel-harmony rules: the accusatives are listed.
- ar: unvocalised; a verb before its subject is singular, feminine for a feminine or non-human plural subject;
  numerals follow the noun as adjectives (with gender polarity; for 2 the numeral follows the plural instead of a
  dual noun); non-human plurals take a feminine singular adjective; case is written only where the script shows
  it (the indefinite accusative's alif, كتابا, and the numeral 2's accusative, اثنين).
- sv-SE: double definiteness (den lilla läraren, de tre böckerna); no verb agreement (as in Swedish).
- lv: adjectives take the definite (long) ending in a definite noun phrase; subjects nominative, objects
  accusative; numerals agree in gender and case.
- sl: dual for 2, plural for 3-4, genitive plural for 5-6 (with a 3sg / neuter verb); the past participle agrees
  in gender and number; a definite masculine adjective takes -i (zeleni učitelj); inanimate objects only (the
  accusative of an animate masculine is never needed).
- ta: no sandhi (consonant doubling after -ஐ); a non-rational plural subject takes the singular verb (as in
  spoken Tamil); a rational singular subject takes the honorific (-ஆர்: teacher, farmer, doctor, king, queen),
  masculine (-ஆன்: boy) or feminine (-ஆள்: girl) verb.
- ja: は after every subject, を after every object; numerals as kanji with a counter and の; a singular noun
  is bare (definiteness is not marked); no tense nuances.
- id: "itu" after every definite noun phrase; "telah" marks the past.
- cy: the soft mutation (feminine singular after the article, adjectives after a feminine noun, after dau/dwy,
  after "hen", the object of an inflected verb) and the aspirate mutation (after tri, chwe and â); no nasal
  mutation (never triggered here); y/yr/'r; "bring" is dod â / daeth â.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from src.data.toy.grammar import PREPOSITIONS, SUBJECTS, NounPhrase, Place, Sentence, arrange, finish
from src.data.toy.real_lexicon import REAL_TABLES
from src.utils.errors import UserError


class RealLanguage:
    """A real target language: its table, its clause order, and the noun phrase and verb rules of a subclass."""

    order = "SVO"
    time_initial = False
    place_preverbal = False
    spaces = True

    def __init__(self, code: str) -> None:
        self.code = code
        self.t = REAL_TABLES[code]

    def render(self, s: Sentence) -> str:
        """The translation of ``s``: a pure function of the structure and the language."""
        subj, obj = self.noun_phrase(s.subject, "subj", s), self.noun_phrase(s.obj, "obj", s)
        place = self.place_phrase(s.place) if s.place else []
        time = [self.t["time"][s.time]] if s.time else []
        words = arrange(self.order, subj, self.verb_group(s), obj, place, time, time_initial=self.time_initial,
                        place_preverbal=self.place_preverbal)
        return self.sentence(words)

    def sentence(self, words: list[str]) -> str:
        """The words as a sentence (capital, full stop; no spaces and 。 for zh-CN and ja)."""
        return finish(words, self.spaces)

    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        raise NotImplementedError

    def verb_group(self, s: Sentence) -> list[str]:
        raise NotImplementedError

    def adjective(self, np: NounPhrase) -> Any:
        """The adjective's table entry; "old" of a person or animal (every subject) may be its own word."""
        if np.noun in SUBJECTS and np.adjective in self.t.get("adj_animate", {}):
            return self.t["adj_animate"][np.adjective]
        return self.t["adj"][np.adjective]

    def place_phrase(self, place: Place) -> list[str]:
        """The complete locative phrase from the table's "place" section (in, near, behind)."""
        return [self.t["place"][place.noun][PREPOSITIONS.index(place.preposition)]]

    def tensed(self, s: Sentence, forms: tuple, plural_forms: bool = True) -> str:
        """(present sg, present pl, past sg, past pl)[...] by tense and subject number, or (present, past)."""
        if not plural_forms:
            return forms[s.tense == "past"]
        return forms[2 * (s.tense == "past") + (s.subject.count > 1)]


# ------------------------------------------------------------------------------------------------------------
# Germanic and Romance


class German(RealLanguage):
    order, time_initial = "V2", True

    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        case, plural = ("nom" if role == "subj" else "acc"), np.count > 1
        gender, singular, plural_form = self.t["noun"][np.noun]
        words = []
        if np.definite:
            words.append(self.t["article"][(True, case)]["pl" if plural else gender])
        elif not plural:
            words.append(self.t["article"][(False, case)][gender])
        if plural:
            words.append(self.t["num"][np.count])
        if np.adjective:
            kind = "weak" if np.definite else ("strong" if plural else "mixed")
            words.append(self.adjective(np) + _german_ending(kind, case, gender, plural))
        return [*words, plural_form if plural else singular]

    def verb_group(self, s: Sentence) -> list[str]:
        return [self.tensed(s, self.t["verb"][s.verb])]

    def place_phrase(self, place: Place) -> list[str]:
        gender, noun, _ = self.t["noun"][place.noun]
        prep, article = self.t["prep"][place.preposition], self.t["article"][(True, "dat")][gender]
        return ["im", noun] if (prep, article) == ("in", "dem") else [prep, article, noun]


def _german_ending(kind: str, case: str, gender: str, plural: bool) -> str:
    """The adjective ending after a definite article (weak), after ein (mixed) or with no article (strong)."""
    if plural:
        return "e" if kind == "strong" else "en"
    if kind == "weak":
        return "en" if (case, gender) == ("acc", "m") else "e"
    return {"m": "er" if case == "nom" else "en", "f": "e", "n": "es"}[gender]


class Catalan(RealLanguage):
    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        gender, singular, plural_form = self.t["noun"][np.noun]
        plural, fem = np.count > 1, gender == "f"
        words = [self._article(gender, plural)] if np.definite else []
        if plural or not np.definite:
            words.append(self.t["num"][np.count][fem])
        words.append(plural_form if plural else singular)
        if np.adjective:
            words.append(self.adjective(np)[fem + 2 * plural])
        return _elide(words)

    def _article(self, gender: str, plural: bool) -> str:
        return self.t["article"][("pl_" if plural else "") + gender]

    def verb_group(self, s: Sentence) -> list[str]:
        present_sg, present_pl, infinitive = self.t["verb"][s.verb]
        many = s.subject.count > 1
        if s.tense == "past":
            return [self.t["past"][many], infinitive]
        return [present_pl if many else present_sg]

    def place_phrase(self, place: Place) -> list[str]:
        gender, noun, _ = self.t["noun"][place.noun]
        out: list[str] = []
        for word in _elide([*self.t["prep"][place.preposition].split(), self._article(gender, False), noun]):
            if word == "el" and out and out[-1] in ("a", "de"):
                out[-1] += "l"  # a + el -> al, de + el -> del
            else:
                out.append(word)
        return out


def _elide(words: list[str]) -> list[str]:
    """Catalan el/la before a vowel or h -> l' (joined to the next word)."""
    out: list[str] = []
    for word in words:
        if out and out[-1] in ("el", "la") and word[0].lower() in "aeiouàèéíòóúh":
            out[-1] = "l'" + word
        else:
            out.append(word)
    return out


class Swedish(RealLanguage):
    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        gender, indef, definite, plural_indef, plural_def = self.t["noun"][np.noun]
        adj = self.adjective(np) if np.adjective else None
        art = self.t["article"]
        if np.count > 1:
            words = [self.t["num"][np.count], *([adj[3]] if adj else []), plural_def if np.definite else plural_indef]
            return [art["def_pl"], *words] if np.definite else words
        if not np.definite:
            return [art[gender], *([adj[gender == "ett"]] if adj else []), indef]
        return [art["def_" + gender], adj[2], definite] if adj else [definite]

    def verb_group(self, s: Sentence) -> list[str]:
        return [self.tensed(s, self.t["verb"][s.verb], plural_forms=False)]

    def place_phrase(self, place: Place) -> list[str]:
        return [self.t["prep"][place.preposition], self.t["place"][place.noun]]


# ------------------------------------------------------------------------------------------------------------
# Case languages of Europe


class Estonian(RealLanguage):
    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        total = self.t["verb"][s.verb][4] == "always" or (self.t["verb"][s.verb][4] == "past" and s.tense == "past")
        if np.count > 1:  # numeral (nominative) + partitive singular
            case, words = 2, [self.t["num"][np.count]]
        else:
            case = 0 if role == "subj" else (1 if total else 2)
            words = []
        if np.adjective:
            words.append(self.adjective(np)[case])
        return [*words, self.t["noun"][np.noun][case]]

    def verb_group(self, s: Sentence) -> list[str]:
        return [self.tensed(s, self.t["verb"][s.verb][:4])]


# Latvian adjective endings: (definite?, gender) -> (nom sg, acc sg, nom pl, acc pl); None: the listed form
_LV_ENDINGS = {
    (False, "m"): (None, "u", "i", "us"), (True, "m"): ("ais", "o", "ie", "os"),
    (False, "f"): ("a", "u", "as", "as"), (True, "f"): ("ā", "o", "ās", "ās"),
}


class Latvian(RealLanguage):
    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        gender, *forms = self.t["noun"][np.noun]
        slot = (role == "obj") + 2 * (np.count > 1)  # nom sg, acc sg, nom pl, acc pl
        words = []
        if np.count > 1:
            stem, ending = self.t["num"][np.count], "as" if gender == "f" else ("us" if role == "obj" else "i")
            words.append(stem if np.count == 3 else stem + ending)  # trīs does not decline
        if np.adjective:
            stem, short_masc = self.adjective(np)
            ending = _LV_ENDINGS[(np.definite, gender)][slot]
            words.append(short_masc if ending is None else stem + ending)
        return [*words, forms[slot]]

    def verb_group(self, s: Sentence) -> list[str]:
        return [self.tensed(s, self.t["verb"][s.verb], plural_forms=False)]


# Slovene adjective endings by role and gender: (singular, dual, plural, genitive plural); "" = the listed form
_SL_ENDINGS = {
    ("subj", "m"): ("", "a", "i", "ih"), ("subj", "f"): ("a", "i", "e", "ih"), ("subj", "n"): ("o", "i", "a", "ih"),
    ("obj", "m"): ("", "a", "e", "ih"), ("obj", "f"): ("o", "i", "e", "ih"), ("obj", "n"): ("o", "i", "a", "ih"),
}


def _sl_number(count: int) -> int:
    """0 singular, 1 dual (2), 2 plural (3-4), 3 genitive plural (5 and more)."""
    return 0 if count == 1 else 1 if count == 2 else 2 if count < 5 else 3


class Slovene(RealLanguage):
    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        gender, *forms = self.t["noun"][np.noun]
        number = _sl_number(np.count)
        words = []
        if np.count > 1:
            words.append(self.t["num"][np.count][(gender != "m") + 2 * (role == "obj")])
        if np.adjective:
            base, stem = self.adjective(np)
            ending = _SL_ENDINGS[(role, gender)][number]
            if ending == "o" and stem[-1] in "cčšžj":
                ending = "e"  # soft stems: rdeče jabolko
            if ending == "" and np.definite:
                ending = "i"  # the definite masculine: zeleni učitelj
            words.append(base if ending == "" else stem + ending)
        return [*words, forms[number]]

    def verb_group(self, s: Sentence) -> list[str]:
        present_sg, present_pl, masc_sg, stem = self.t["verb"][s.verb]
        number, fem = _sl_number(s.subject.count), self.t["noun"][s.subject.noun][0] == "f"
        if s.tense == "present":
            return [(present_sg, present_sg + "ta", present_pl, present_sg)[number]]
        aux = self.t["aux"][("sg", "du", "pl", "sg")[number]]
        participle = [(masc_sg, stem + "a"), (stem + "a", stem + "i"), (stem + "i", stem + "e"),
                      (stem + "o", stem + "o")][number][fem]
        return [aux, participle]


# ------------------------------------------------------------------------------------------------------------
# Verb-final languages


class Persian(RealLanguage):
    order, time_initial, place_preverbal = "SOV", True, True

    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        words = [self.t["num"][np.count]] if (np.count > 1 or not np.definite) else []
        words.append(self.t["noun"][np.noun])
        if np.adjective:
            words.append(self.adjective(np))
        if role == "obj" and np.definite:
            words.append(self.t["acc"])
        return words

    def verb_group(self, s: Sentence) -> list[str]:
        return [self.tensed(s, self.t["verb"][s.verb])]


class Mongolian(RealLanguage):
    order, time_initial, place_preverbal = "SOV", True, True

    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        words = [self.t["num"][np.count]] if (np.count > 1 or not np.definite) else []
        if np.adjective:
            words.append(self.adjective(np))
        definite_obj = role == "obj" and np.definite
        return [*words, self.t["acc"][np.noun] if definite_obj else self.t["noun"][np.noun]]

    def verb_group(self, s: Sentence) -> list[str]:
        return [self.tensed(s, self.t["verb"][s.verb], plural_forms=False)]


class Turkish(RealLanguage):
    order, time_initial, place_preverbal = "SOV", True, True

    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        words = [self.t["num"][np.count]] if np.count > 1 else []
        if np.adjective:
            words.append(self.adjective(np))
        if np.count == 1 and not np.definite:
            words.append(self.t["num"][1])  # kırmızı bir kitap: "bir" after the adjective
        definite_obj = role == "obj" and np.definite
        return [*words, self.t["acc"][np.noun] if definite_obj else self.t["noun"][np.noun]]

    def verb_group(self, s: Sentence) -> list[str]:
        return [self.tensed(s, self.t["verb"][s.verb], plural_forms=False)]

    def sentence(self, words: list[str]) -> str:
        """As every language's, with the capital of i written İ (İki kedi)."""
        return super().sentence(["İ" + words[0][1:], *words[1:]] if words[0].startswith("i") else words)


class Tamil(RealLanguage):
    order, time_initial, place_preverbal = "SOV", True, True

    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        _, singular, plural = self.t["noun"][np.noun]
        words = [self.t["num"][np.count]] if (np.count > 1 or not np.definite) else []
        if np.adjective:
            words.append(self.adjective(np))
        noun = plural if np.count > 1 else singular
        if role == "obj" and np.definite:
            noun = plural.removesuffix("\u0bcd") + "\u0bc8" if np.count > 1 else self.t["acc"][np.noun]  # -களை
        return [*words, noun]

    def verb_group(self, s: Sentence) -> list[str]:
        kind = self.t["noun"][s.subject.noun][0]
        present_r, present_n, past_r, past_n = self.t["verb"][s.verb]
        past = s.tense == "past"
        if kind == "n":
            return [past_n if past else present_n]
        verb = past_r if past else present_r
        if s.subject.count > 1:
            return [verb + "கள்"]  # rational plural: -ஆர்கள்
        return [verb.removesuffix("ார்") + {"h": "ார்", "m": "ான்", "f": "ாள்"}[kind]]


class Japanese(RealLanguage):
    order, time_initial, place_preverbal, spaces = "SOV", True, True, False

    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        noun, counter = self.t["noun"][np.noun]
        particle = self.t["particle"]
        words = [self.t["num"][np.count] + counter + particle["counter"]] if np.count > 1 else []
        if np.adjective:
            words.append(self.adjective(np))
        return [*words, noun + particle[role]]

    def verb_group(self, s: Sentence) -> list[str]:
        return [self.tensed(s, self.t["verb"][s.verb], plural_forms=False)]

    def place_phrase(self, place: Place) -> list[str]:
        return [self.t["noun"][place.noun][0] + self.t["prep"][place.preposition]]


# ------------------------------------------------------------------------------------------------------------
# Verb-initial languages


class Arabic(RealLanguage):
    order = "VSO"

    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        gender, human, singular, plural_form = self.t["noun"][np.noun]
        al = self.t["article"] if np.definite else ""
        plural, fem = np.count > 1, gender == "f"
        indef_acc = role == "obj" and not np.definite  # written with the alif of -an where it takes one
        words = [self.t["acc_indef"][np.noun][plural] if indef_acc else al + (plural_form if plural else singular)]
        if np.adjective:
            masc, femi, human_plural = self.adjective(np)
            adj = (human_plural if human else femi) if plural else (femi if fem else masc)
            words.append(al + (_ar_alif(adj) if indef_acc else adj))
        if plural:
            numeral = self.t["num"][np.count][fem]
            if role == "obj":
                numeral = self.t["num_acc"][np.count][fem] if np.count in self.t["num_acc"] else numeral
                numeral = _ar_alif(numeral) if indef_acc else numeral
            words.append(al + numeral)
        return words

    def verb_group(self, s: Sentence) -> list[str]:
        gender, human, _, _ = self.t["noun"][s.subject.noun]
        fem = gender == "f" or (s.subject.count > 1 and not human)
        return [self.t["verb"][s.verb][2 * (s.tense == "past") + fem]]

    def place_phrase(self, place: Place) -> list[str]:
        return [self.t["prep"][place.preposition], self.t["article"] + self.t["noun"][place.noun][2]]


_AR_DIPTOTES = ("أحمر", "أزرق", "أخضر", "أبيض", "أسود")  # the colour adjectives of the pattern أفعل


def _ar_alif(word: str) -> str:
    """The indefinite accusative's written alif, except after ة, after a final اء, on اثنين and on diptotes."""
    return word if word.endswith(("ة", "اء", "ين")) or word in _AR_DIPTOTES else word + "ا"


class Indonesian(RealLanguage):
    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        noun, classifier = self.t["noun"][np.noun]
        if np.count > 1:
            words = [self.t["num"][np.count], noun]
        else:
            words = [noun] if np.definite else [self.t["num"][1] + classifier, noun]
        if np.adjective:
            words.append(self.adjective(np))
        return [*words, self.t["def"]] if np.definite else words

    def verb_group(self, s: Sentence) -> list[str]:
        verb = self.t["verb"][s.verb]
        return [self.t["past"], verb] if s.tense == "past" else [verb]

    def place_phrase(self, place: Place) -> list[str]:
        return [self.t["prep"][place.preposition], self.t["place"][place.noun]]


_CY_SOFT = (("ll", "l"), ("rh", "r"), ("p", "b"), ("t", "d"), ("c", "g"), ("b", "f"), ("d", "dd"), ("g", ""),
            ("m", "f"))
_CY_ASPIRATE = (("p", "ph"), ("t", "th"), ("c", "ch"))
_CY_VOWELS = "aeiouwyâêîôûŵŷ"


def _cy_mutate(word: str, rules: tuple[tuple[str, str], ...]) -> str:
    """A Welsh initial mutation (ch, ph, th, dd, ff and ng never mutate)."""
    if word.startswith(("ch", "ph", "th", "dd", "ff", "ng")):
        return word
    return next((new + word[len(old):] for old, new in rules if word.startswith(old)), word)


def _cy_rules_after(before: str | None, definite_fem: bool) -> tuple[tuple[str, str], ...]:
    """The mutation a noun takes after ``before`` (None: the article or nothing; a feminine singular noun softens
    after the article, except ll and rh)."""
    if before in ("hen", "dau", "dwy", "ddau", "ddwy"):
        return _CY_SOFT
    if before in ("tri", "chwe"):
        return _CY_ASPIRATE
    return tuple(r for r in _CY_SOFT if r[0] not in ("ll", "rh")) if before is None and definite_fem else ()


def _cy_attach(before: list[str], after: list[str]) -> list[str]:
    """``before + after`` with the article after a vowel-final word written 'r (mae'r, i'r, â'r, prynu'r)."""
    if before and after and after[0] in ("y", "yr") and before[-1][-1] in _CY_VOWELS:
        return [*before[:-1], before[-1] + "'r", *after[1:]]
    return [*before, *after]


class Welsh(RealLanguage):
    order = "VSO"

    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence | None = None) -> list[str]:
        """Article, numeral, "hen", noun, adjective; the noun mutated by the word right before it."""
        gender, noun = self.t["noun"][np.noun]
        fem = gender == "f"
        adj = self.adjective(np)[fem] if np.adjective else None
        words: list[str] = []
        if np.count > 1:
            numeral = self.t["num"][np.count][fem]
            words.append(_cy_mutate(numeral, _CY_SOFT) if np.definite and numeral in ("dau", "dwy") else numeral)
        if adj == "hen":  # before the noun, which it mutates
            words.append(adj)
            adj = None
        noun = _cy_mutate(noun, _cy_rules_after(words[-1] if words else None, np.definite and fem))
        words.append(noun)
        if adj:
            words.append(_cy_mutate(adj, _CY_SOFT) if fem else adj)
        if np.definite:
            words.insert(0, "yr" if words[0][0] in _CY_VOWELS + "h" else "y")
        return words

    def render(self, s: Sentence) -> str:
        """Present: mae + subject + yn + verbnoun + object; past: inflected verb + subject + object (soft
        mutation of a direct object; the aspirate after â)."""
        subj, obj = self.noun_phrase(s.subject, "subj", s), self.noun_phrase(s.obj, "obj", s)
        verbnoun, past = self.t["verb"][s.verb]
        particle = self.t["particle"].get(s.verb)
        if particle:
            obj = _cy_attach([particle], [_cy_mutate(obj[0], _CY_ASPIRATE), *obj[1:]])
        elif s.tense == "past":
            obj = [_cy_mutate(obj[0], _CY_SOFT), *obj[1:]]
        if s.tense == "past":
            words = [past, *subj, *obj]
        else:
            mae, yn = self.t["present"]
            words = _cy_attach([*_cy_attach([mae], subj), yn, verbnoun], obj)
        if s.place:
            words += self.place_phrase(s.place)
        if s.time:
            words.append(self.t["time"][s.time])
        return self.sentence(words)

    def place_phrase(self, place: Place) -> list[str]:
        return _cy_attach(self.t["prep"][place.preposition].split(), self.noun_phrase(NounPhrase(place.noun), "place"))


class Chinese(RealLanguage):
    order, time_initial, place_preverbal, spaces = "SVO", True, True, False

    def noun_phrase(self, np: NounPhrase, role: str, s: Sentence) -> list[str]:
        noun, classifier = self.t["noun"][np.noun]
        words = [self.t["num"][np.count] + classifier] if (np.count > 1 or not np.definite) else []
        if np.adjective:
            words.append(self.adjective(np) + self.t["link"])
        return [*words, noun]

    def verb_group(self, s: Sentence) -> list[str]:
        verb = self.t["verb"][s.verb]
        return [verb + self.t["past"] if s.tense == "past" else verb]

    def place_phrase(self, place: Place) -> list[str]:
        return [self.t["at"] + self.t["noun"][place.noun][0] + self.t["prep"][place.preposition]]


REAL_LANGUAGES: dict[str, type[RealLanguage]] = {
    "de": German, "ca": Catalan, "zh-CN": Chinese, "fa": Persian, "et": Estonian, "mn": Mongolian, "tr": Turkish,
    "ar": Arabic, "sv-SE": Swedish, "lv": Latvian, "sl": Slovene, "ta": Tamil, "ja": Japanese, "id": Indonesian,
    "cy": Welsh,
}


@cache
def real_language(code: str) -> RealLanguage:
    """The real-lexicon renderer for a CoVoST2 code (built once per process)."""
    if code not in REAL_LANGUAGES:
        raise UserError(f"no real toy lexicon for '{code}'; known: {', '.join(REAL_LANGUAGES)}")
    return REAL_LANGUAGES[code](code)
