"""The toy corpus's `real` lexicon: the grammar's 69 lemmas and its function words as real words of the 15 CoVoST2
target languages, in their own scripts, so a pretrained Whisper decoder meets targets it knows.

One table per language (a dict of sections). The layout of a section's entries is written above each table; the
rules that combine them (word order, agreement, articles, case) are in :mod:`src.data.toy.real_grammar`, whose
docstring lists what is simplified. Entries are dictionary forms as a native text would spell them (German nouns
capitalised; Persian with ZWNJ in verbs like می‌خواند); no vowel points, no diacritics beyond the orthography's own.

Shared layouts:
    "num": count -> numeral (counts 2-6; 1 is an article or nothing, see each language)
    "time": English time phrase -> the language's phrase
    "place": place lemma -> (in, near, behind) complete locative phrases, where case or postpositions make them
             more than preposition + noun; otherwise "prep" (preposition lemma -> word) and the noun tables.
"""

from __future__ import annotations

# ----------------------------------------------------------------------------------------------------------------
# German: V2; articles by gender and case; adjective endings by article type (real_grammar.German).

DE: dict = {
    # noun: (gender m|f|n, singular, plural)
    "noun": {
        "teacher": ("m", "Lehrer", "Lehrer"), "farmer": ("m", "Bauer", "Bauern"), "doctor": ("m", "Arzt", "Ärzte"),
        "child": ("n", "Kind", "Kinder"), "king": ("m", "König", "Könige"),
        "queen": ("f", "Königin", "Königinnen"), "dog": ("m", "Hund", "Hunde"), "cat": ("f", "Katze", "Katzen"),
        "bird": ("m", "Vogel", "Vögel"), "girl": ("n", "Mädchen", "Mädchen"), "boy": ("m", "Junge", "Jungen"),
        "fox": ("m", "Fuchs", "Füchse"),
        "book": ("n", "Buch", "Bücher"), "apple": ("m", "Apfel", "Äpfel"), "box": ("f", "Kiste", "Kisten"),
        "letter": ("m", "Brief", "Briefe"), "cup": ("f", "Tasse", "Tassen"), "flower": ("f", "Blume", "Blumen"),
        "ball": ("m", "Ball", "Bälle"), "hat": ("m", "Hut", "Hüte"), "key": ("m", "Schlüssel", "Schlüssel"),
        "lamp": ("f", "Lampe", "Lampen"), "stone": ("m", "Stein", "Steine"),
        "bottle": ("f", "Flasche", "Flaschen"),
        "garden": ("m", "Garten", "Gärten"), "market": ("m", "Markt", "Märkte"), "river": ("m", "Fluss", "Flüsse"),
        "kitchen": ("f", "Küche", "Küchen"), "school": ("f", "Schule", "Schulen"), "park": ("m", "Park", "Parks"),
        "city": ("f", "Stadt", "Städte"), "forest": ("m", "Wald", "Wälder"),
    },
    # adjective: stem (the ending comes from the article: der kleine, ein kleiner, kleine)
    "adj": {"small": "klein", "big": "groß", "old": "alt", "new": "neu", "red": "rot", "blue": "blau",
            "green": "grün", "white": "weiß", "black": "schwarz", "heavy": "schwer"},
    # verb: (present 3sg, present 3pl, past 3sg, past 3pl); the Präteritum, as written narrative uses it
    "verb": {
        "read": ("liest", "lesen", "las", "lasen"), "see": ("sieht", "sehen", "sah", "sahen"),
        "buy": ("kauft", "kaufen", "kaufte", "kauften"), "sell": ("verkauft", "verkaufen", "verkaufte", "verkauften"),
        "carry": ("trägt", "tragen", "trug", "trugen"), "find": ("findet", "finden", "fand", "fanden"),
        "like": ("mag", "mögen", "mochte", "mochten"), "make": ("macht", "machen", "machte", "machten"),
        "bring": ("bringt", "bringen", "brachte", "brachten"), "wash": ("wäscht", "waschen", "wusch", "wuschen"),
        "open": ("öffnet", "öffnen", "öffnete", "öffneten"), "take": ("nimmt", "nehmen", "nahm", "nahmen"),
    },
    "num": {2: "zwei", 3: "drei", 4: "vier", 5: "fünf", 6: "sechs"},
    # article: (definite?, case) -> gender (or "pl") -> word
    "article": {
        (True, "nom"): {"m": "der", "f": "die", "n": "das", "pl": "die"},
        (True, "acc"): {"m": "den", "f": "die", "n": "das", "pl": "die"},
        (True, "dat"): {"m": "dem", "f": "der", "n": "dem", "pl": "den"},
        (False, "nom"): {"m": "ein", "f": "eine", "n": "ein"},
        (False, "acc"): {"m": "einen", "f": "eine", "n": "ein"},
    },
    # locative prepositions (with the dative); "in dem" contracts to "im"
    "prep": {"in": "in", "near": "nahe", "behind": "hinter"},
    "time": {"in the morning": "am Morgen", "in the evening": "am Abend", "at night": "in der Nacht",
             "on Monday": "am Montag", "on Sunday": "am Sonntag", "every day": "jeden Tag"},
}

# ----------------------------------------------------------------------------------------------------------------
# Catalan: SVO; el/la/els/les (l' before a vowel), un/una; adjectives after the noun, four forms.

CA: dict = {
    # noun: (gender m|f, singular, plural)
    "noun": {
        "teacher": ("m", "mestre", "mestres"), "farmer": ("m", "pagès", "pagesos"), "doctor": ("m", "metge", "metges"),
        "child": ("m", "nen", "nens"), "king": ("m", "rei", "reis"), "queen": ("f", "reina", "reines"),
        "dog": ("m", "gos", "gossos"), "cat": ("m", "gat", "gats"), "bird": ("m", "ocell", "ocells"),
        "girl": ("f", "noia", "noies"), "boy": ("m", "noi", "nois"), "fox": ("f", "guineu", "guineus"),
        "book": ("m", "llibre", "llibres"), "apple": ("f", "poma", "pomes"), "box": ("f", "capsa", "capses"),
        "letter": ("f", "carta", "cartes"), "cup": ("f", "tassa", "tasses"), "flower": ("f", "flor", "flors"),
        "ball": ("f", "pilota", "pilotes"), "hat": ("m", "barret", "barrets"), "key": ("f", "clau", "claus"),
        "lamp": ("f", "làmpada", "làmpades"), "stone": ("f", "pedra", "pedres"),
        "bottle": ("f", "ampolla", "ampolles"),
        "garden": ("m", "jardí", "jardins"), "market": ("m", "mercat", "mercats"), "river": ("m", "riu", "rius"),
        "kitchen": ("f", "cuina", "cuines"), "school": ("f", "escola", "escoles"), "park": ("m", "parc", "parcs"),
        "city": ("f", "ciutat", "ciutats"), "forest": ("m", "bosc", "boscos"),
    },
    # adjective: (masc sg, fem sg, masc pl, fem pl)
    "adj": {
        "small": ("petit", "petita", "petits", "petites"), "big": ("gran", "gran", "grans", "grans"),
        "old": ("vell", "vella", "vells", "velles"), "new": ("nou", "nova", "nous", "noves"),
        "red": ("vermell", "vermella", "vermells", "vermelles"), "blue": ("blau", "blava", "blaus", "blaves"),
        "green": ("verd", "verda", "verds", "verdes"), "white": ("blanc", "blanca", "blancs", "blanques"),
        "black": ("negre", "negra", "negres", "negres"), "heavy": ("pesant", "pesant", "pesants", "pesants"),
    },
    # verb: (present 3sg, present 3pl, infinitive); the past is periphrastic: va/van + infinitive
    "verb": {
        "read": ("llegeix", "llegeixen", "llegir"), "see": ("veu", "veuen", "veure"),
        "buy": ("compra", "compren", "comprar"), "sell": ("ven", "venen", "vendre"),
        "carry": ("carrega", "carreguen", "carregar"), "find": ("troba", "troben", "trobar"),
        "like": ("estima", "estimen", "estimar"), "make": ("fa", "fan", "fer"),
        "bring": ("porta", "porten", "portar"), "wash": ("renta", "renten", "rentar"),
        "open": ("obre", "obren", "obrir"), "take": ("agafa", "agafen", "agafar"),
    },
    "past": ("va", "van"),
    # numeral: (masc, fem)
    "num": {1: ("un", "una"), 2: ("dos", "dues"), 3: ("tres", "tres"), 4: ("quatre", "quatre"),
            5: ("cinc", "cinc"), 6: ("sis", "sis")},
    "article": {"m": "el", "f": "la", "pl_m": "els", "pl_f": "les", "elided": "l'"},
    # locative preposition (+ definite article; a el -> al, de el -> del)
    "prep": {"in": "a", "near": "a prop de", "behind": "darrere de"},
    "time": {"in the morning": "al matí", "in the evening": "al vespre", "at night": "a la nit",
             "on Monday": "dilluns", "on Sunday": "diumenge", "every day": "cada dia"},
}

# ----------------------------------------------------------------------------------------------------------------
# Chinese (Simplified): SVO, no spaces; classifiers; 的 after adjectives; 了 after a past verb; 在 ... 里/附近/后面.

ZH: dict = {
    # noun: (noun, classifier)
    "noun": {
        "teacher": ("老师", "个"), "farmer": ("农民", "个"), "doctor": ("医生", "个"), "child": ("孩子", "个"),
        "king": ("国王", "个"), "queen": ("王后", "个"), "dog": ("狗", "只"), "cat": ("猫", "只"),
        "bird": ("鸟", "只"), "girl": ("女孩", "个"), "boy": ("男孩", "个"), "fox": ("狐狸", "只"),
        "book": ("书", "本"), "apple": ("苹果", "个"), "box": ("盒子", "个"), "letter": ("信", "封"),
        "cup": ("杯子", "个"), "flower": ("花", "朵"), "ball": ("球", "个"), "hat": ("帽子", "顶"),
        "key": ("钥匙", "把"), "lamp": ("灯", "盏"), "stone": ("石头", "块"), "bottle": ("瓶子", "个"),
        "garden": ("花园", ""), "market": ("市场", ""), "river": ("河", ""), "kitchen": ("厨房", ""),
        "school": ("学校", ""), "park": ("公园", ""), "city": ("城市", ""), "forest": ("森林", ""),
    },
    "adj": {"small": "小", "big": "大", "old": "旧", "new": "新", "red": "红色", "blue": "蓝色", "green": "绿色",
            "white": "白色", "black": "黑色", "heavy": "重"},
    "adj_animate": {"old": "老"},  # "old" of a person or animal
    "link": "的",
    "verb": {"read": "读", "see": "看见", "buy": "买", "sell": "卖", "carry": "搬", "find": "找到", "like": "喜欢",
             "make": "做", "bring": "带来", "wash": "洗", "open": "打开", "take": "拿"},
    "past": "了",
    "num": {1: "一", 2: "两", 3: "三", 4: "四", 5: "五", 6: "六"},
    # 在 + place + locative noun
    "at": "在",
    "prep": {"in": "里", "near": "附近", "behind": "后面"},
    "time": {"in the morning": "早上", "in the evening": "晚上", "at night": "夜里", "on Monday": "星期一",
             "on Sunday": "星期天", "every day": "每天"},
}

# ----------------------------------------------------------------------------------------------------------------
# Persian: SOV; numerals with a singular noun; یک for "a"; را after a definite object; ezafe left unwritten.

FA: dict = {
    "noun": {
        "teacher": "معلم", "farmer": "کشاورز", "doctor": "پزشک", "child": "کودک", "king": "پادشاه",
        "queen": "ملکه", "dog": "سگ", "cat": "گربه", "bird": "پرنده", "girl": "دختر", "boy": "پسر",
        "fox": "روباه",
        "book": "کتاب", "apple": "سیب", "box": "جعبه", "letter": "نامه", "cup": "فنجان", "flower": "گل",
        "ball": "توپ", "hat": "کلاه", "key": "کلید", "lamp": "چراغ", "stone": "سنگ", "bottle": "بطری",
    },
    "adj": {"small": "کوچک", "big": "بزرگ", "old": "کهنه", "new": "نو", "red": "قرمز", "blue": "آبی",
            "green": "سبز", "white": "سفید", "black": "سیاه", "heavy": "سنگین"},
    "adj_animate": {"old": "پیر"},
    # verb: (present 3sg, present 3pl, past 3sg, past 3pl); U+200C (ZWNJ) after the prefix می
    "verb": {
        "read": ("می\u200cخواند", "می\u200cخوانند", "خواند", "خواندند"),
        "see": ("می\u200cبیند", "می\u200cبینند", "دید", "دیدند"),
        "buy": ("می\u200cخرد", "می\u200cخرند", "خرید", "خریدند"),
        "sell": ("می\u200cفروشد", "می\u200cفروشند", "فروخت", "فروختند"),
        "carry": ("حمل می\u200cکند", "حمل می\u200cکنند", "حمل کرد", "حمل کردند"),
        "find": ("پیدا می\u200cکند", "پیدا می\u200cکنند", "پیدا کرد", "پیدا کردند"),
        "like": ("دوست دارد", "دوست دارند", "دوست داشت", "دوست داشتند"),
        "make": ("می\u200cسازد", "می\u200cسازند", "ساخت", "ساختند"),
        "bring": ("می\u200cآورد", "می\u200cآورند", "آورد", "آوردند"),
        "wash": ("می\u200cشوید", "می\u200cشویند", "شست", "شستند"),
        "open": ("باز می\u200cکند", "باز می\u200cکنند", "باز کرد", "باز کردند"),
        "take": ("برمی\u200cدارد", "برمی\u200cدارند", "برداشت", "برداشتند"),
    },
    "num": {1: "یک", 2: "دو", 3: "سه", 4: "چهار", 5: "پنج", 6: "شش"},
    "acc": "را",
    "place": {
        "garden": ("در باغ", "نزدیک باغ", "پشت باغ"), "market": ("در بازار", "نزدیک بازار", "پشت بازار"),
        "river": ("در رودخانه", "نزدیک رودخانه", "پشت رودخانه"),
        "kitchen": ("در آشپزخانه", "نزدیک آشپزخانه", "پشت آشپزخانه"),
        "school": ("در مدرسه", "نزدیک مدرسه", "پشت مدرسه"), "park": ("در پارک", "نزدیک پارک", "پشت پارک"),
        "city": ("در شهر", "نزدیک شهر", "پشت شهر"), "forest": ("در جنگل", "نزدیک جنگل", "پشت جنگل"),
    },
    "time": {"in the morning": "صبح", "in the evening": "عصر", "at night": "شب", "on Monday": "دوشنبه",
             "on Sunday": "یکشنبه", "every day": "هر روز"},
}

# ----------------------------------------------------------------------------------------------------------------
# Estonian: SVO; no articles; numerals 2-6 take the partitive singular; objects in the genitive (total) or the
# partitive (partial); adjectives agree in case.

ET: dict = {
    # noun: (nominative, genitive, partitive) singular
    "noun": {
        "teacher": ("õpetaja", "õpetaja", "õpetajat"), "farmer": ("talunik", "taluniku", "talunikku"),
        "doctor": ("arst", "arsti", "arsti"), "child": ("laps", "lapse", "last"),
        "king": ("kuningas", "kuninga", "kuningat"), "queen": ("kuninganna", "kuninganna", "kuningannat"),
        "dog": ("koer", "koera", "koera"), "cat": ("kass", "kassi", "kassi"), "bird": ("lind", "linnu", "lindu"),
        "girl": ("tüdruk", "tüdruku", "tüdrukut"), "boy": ("poiss", "poisi", "poissi"),
        "fox": ("rebane", "rebase", "rebast"),
        "book": ("raamat", "raamatu", "raamatut"), "apple": ("õun", "õuna", "õuna"), "box": ("kast", "kasti", "kasti"),
        "letter": ("kiri", "kirja", "kirja"), "cup": ("tass", "tassi", "tassi"), "flower": ("lill", "lille", "lille"),
        "ball": ("pall", "palli", "palli"), "hat": ("müts", "mütsi", "mütsi"), "key": ("võti", "võtme", "võtit"),
        "lamp": ("lamp", "lambi", "lampi"), "stone": ("kivi", "kivi", "kivi"),
        "bottle": ("pudel", "pudeli", "pudelit"),
    },
    # adjective: (nominative, genitive, partitive) singular
    "adj": {
        "small": ("väike", "väikese", "väikest"), "big": ("suur", "suure", "suurt"), "old": ("vana", "vana", "vana"),
        "new": ("uus", "uue", "uut"), "red": ("punane", "punase", "punast"), "blue": ("sinine", "sinise", "sinist"),
        "green": ("roheline", "rohelise", "rohelist"), "white": ("valge", "valge", "valget"),
        "black": ("must", "musta", "musta"), "heavy": ("raske", "raske", "rasket"),
    },
    # verb: (present 3sg, present 3pl, past 3sg, past 3pl, object): a singular object is total (genitive)
    # "always", in the "past" only, or "never" (partitive: ongoing or atelic)
    "verb": {
        "read": ("loeb", "loevad", "luges", "lugesid", "past"), "see": ("näeb", "näevad", "nägi", "nägid", "never"),
        "buy": ("ostab", "ostavad", "ostis", "ostsid", "always"),
        "sell": ("müüb", "müüvad", "müüs", "müüsid", "always"),
        "carry": ("kannab", "kannavad", "kandis", "kandsid", "never"),
        "find": ("leiab", "leiavad", "leidis", "leidsid", "always"),
        "like": ("armastab", "armastavad", "armastas", "armastasid", "never"),
        "make": ("teeb", "teevad", "tegi", "tegid", "past"), "bring": ("toob", "toovad", "tõi", "tõid", "always"),
        "wash": ("peseb", "pesevad", "pesi", "pesid", "past"), "open": ("avab", "avavad", "avas", "avasid", "always"),
        "take": ("võtab", "võtavad", "võttis", "võtsid", "always"),
    },
    "num": {2: "kaks", 3: "kolm", 4: "neli", 5: "viis", 6: "kuus"},
    "place": {
        "garden": ("aias", "aia lähedal", "aia taga"), "market": ("turul", "turu lähedal", "turu taga"),
        "river": ("jões", "jõe lähedal", "jõe taga"), "kitchen": ("köögis", "köögi lähedal", "köögi taga"),
        "school": ("koolis", "kooli lähedal", "kooli taga"), "park": ("pargis", "pargi lähedal", "pargi taga"),
        "city": ("linnas", "linna lähedal", "linna taga"), "forest": ("metsas", "metsa lähedal", "metsa taga"),
    },
    "time": {"in the morning": "hommikul", "in the evening": "õhtul", "at night": "öösel",
             "on Monday": "esmaspäeval", "on Sunday": "pühapäeval", "every day": "iga päev"},
}

# ----------------------------------------------------------------------------------------------------------------
# Mongolian (Cyrillic): SOV; numerals (attributive forms) with a singular noun; нэг for "a"; a definite object in
# the accusative.

MN: dict = {
    "noun": {
        "teacher": "багш", "farmer": "тариачин", "doctor": "эмч", "child": "хүүхэд", "king": "хаан",
        "queen": "хатан", "dog": "нохой", "cat": "муур", "bird": "шувуу", "girl": "охин", "boy": "хүү",
        "fox": "үнэг",
        "book": "ном", "apple": "алим", "box": "хайрцаг", "letter": "захидал", "cup": "аяга", "flower": "цэцэг",
        "ball": "бөмбөг", "hat": "малгай", "key": "түлхүүр", "lamp": "чийдэн", "stone": "чулуу", "bottle": "лонх",
    },
    # accusative singular of the objects
    "acc": {
        "book": "номыг", "apple": "алимыг", "box": "хайрцгийг", "letter": "захидлыг", "cup": "аягыг",
        "flower": "цэцгийг", "ball": "бөмбөгийг", "hat": "малгайг", "key": "түлхүүрийг", "lamp": "чийдэнг",
        "stone": "чулууг", "bottle": "лонхыг",
    },
    "adj": {"small": "жижиг", "big": "том", "old": "хуучин", "new": "шинэ", "red": "улаан", "blue": "цэнхэр",
            "green": "ногоон", "white": "цагаан", "black": "хар", "heavy": "хүнд"},
    "adj_animate": {"old": "хөгшин"},
    # verb: (present-future, past)
    "verb": {
        "read": ("уншина", "уншсан"), "see": ("харна", "харсан"), "buy": ("худалдаж авна", "худалдаж авсан"),
        "sell": ("зарна", "зарсан"), "carry": ("зөөнө", "зөөсөн"), "find": ("олно", "олсон"),
        "like": ("таална", "таалсан"), "make": ("хийнэ", "хийсэн"), "bring": ("авчирна", "авчирсан"),
        "wash": ("угаана", "угаасан"), "open": ("нээнэ", "нээсэн"), "take": ("авна", "авсан"),
    },
    "num": {1: "нэг", 2: "хоёр", 3: "гурван", 4: "дөрвөн", 5: "таван", 6: "зургаан"},
    "place": {
        "garden": ("цэцэрлэгт", "цэцэрлэгийн ойролцоо", "цэцэрлэгийн ард"),
        "market": ("захад", "захын ойролцоо", "захын ард"), "river": ("голд", "голын ойролцоо", "голын ард"),
        "kitchen": ("гал тогоонд", "гал тогооны ойролцоо", "гал тогооны ард"),
        "school": ("сургуульд", "сургуулийн ойролцоо", "сургуулийн ард"),
        "park": ("цэцэрлэгт хүрээлэнд", "цэцэрлэгт хүрээлэнгийн ойролцоо", "цэцэрлэгт хүрээлэнгийн ард"),
        "city": ("хотод", "хотын ойролцоо", "хотын ард"), "forest": ("ойд", "ойн ойролцоо", "ойн ард"),
    },
    "time": {"in the morning": "өглөө", "in the evening": "орой", "at night": "шөнө",
             "on Monday": "даваа гарагт", "on Sunday": "ням гарагт", "every day": "өдөр бүр"},
}

# ----------------------------------------------------------------------------------------------------------------
# Turkish: SOV; numerals with a singular noun; "bir" for "a" (after the adjective); a definite object in the
# accusative.

TR: dict = {
    "noun": {
        "teacher": "öğretmen", "farmer": "çiftçi", "doctor": "doktor", "child": "çocuk", "king": "kral",
        "queen": "kraliçe", "dog": "köpek", "cat": "kedi", "bird": "kuş", "girl": "kız", "boy": "oğlan",
        "fox": "tilki",
        "book": "kitap", "apple": "elma", "box": "kutu", "letter": "mektup", "cup": "fincan", "flower": "çiçek",
        "ball": "top", "hat": "şapka", "key": "anahtar", "lamp": "lamba", "stone": "taş", "bottle": "şişe",
    },
    "acc": {
        "book": "kitabı", "apple": "elmayı", "box": "kutuyu", "letter": "mektubu", "cup": "fincanı",
        "flower": "çiçeği", "ball": "topu", "hat": "şapkayı", "key": "anahtarı", "lamp": "lambayı", "stone": "taşı",
        "bottle": "şişeyi",
    },
    "adj": {"small": "küçük", "big": "büyük", "old": "eski", "new": "yeni", "red": "kırmızı", "blue": "mavi",
            "green": "yeşil", "white": "beyaz", "black": "siyah", "heavy": "ağır"},
    "adj_animate": {"old": "yaşlı"},
    # verb: (present progressive 3sg, past 3sg)
    "verb": {
        "read": ("okuyor", "okudu"), "see": ("görüyor", "gördü"), "buy": ("satın alıyor", "satın aldı"),
        "sell": ("satıyor", "sattı"), "carry": ("taşıyor", "taşıdı"), "find": ("buluyor", "buldu"),
        "like": ("seviyor", "sevdi"), "make": ("yapıyor", "yaptı"), "bring": ("getiriyor", "getirdi"),
        "wash": ("yıkıyor", "yıkadı"), "open": ("açıyor", "açtı"), "take": ("alıyor", "aldı"),
    },
    "num": {1: "bir", 2: "iki", 3: "üç", 4: "dört", 5: "beş", 6: "altı"},
    "place": {
        "garden": ("bahçede", "bahçenin yanında", "bahçenin arkasında"),
        "market": ("çarşıda", "çarşının yanında", "çarşının arkasında"),
        "river": ("nehirde", "nehrin yanında", "nehrin arkasında"),
        "kitchen": ("mutfakta", "mutfağın yanında", "mutfağın arkasında"),
        "school": ("okulda", "okulun yanında", "okulun arkasında"),
        "park": ("parkta", "parkın yanında", "parkın arkasında"),
        "city": ("şehirde", "şehrin yanında", "şehrin arkasında"),
        "forest": ("ormanda", "ormanın yanında", "ormanın arkasında"),
    },
    "time": {"in the morning": "sabah", "in the evening": "akşam", "at night": "gece",
             "on Monday": "pazartesi günü", "on Sunday": "pazar günü", "every day": "her gün"},
}

# ----------------------------------------------------------------------------------------------------------------
# Arabic (unvocalised): VSO; the article ال on noun, adjective and numeral; adjective and numeral after the noun.

AR: dict = {
    # noun: (gender m|f, human?, singular, plural; a human masculine sound plural in the nominative)
    "noun": {
        "teacher": ("m", True, "معلم", "معلمون"), "farmer": ("m", True, "مزارع", "مزارعون"),
        "doctor": ("m", True, "طبيب", "أطباء"), "child": ("m", True, "طفل", "أطفال"),
        "king": ("m", True, "ملك", "ملوك"), "queen": ("f", True, "ملكة", "ملكات"),
        "dog": ("m", False, "كلب", "كلاب"), "cat": ("f", False, "قطة", "قطط"),
        "bird": ("m", False, "طائر", "طيور"), "girl": ("f", True, "بنت", "بنات"),
        "boy": ("m", True, "ولد", "أولاد"), "fox": ("m", False, "ثعلب", "ثعالب"),
        "book": ("m", False, "كتاب", "كتب"), "apple": ("f", False, "تفاحة", "تفاحات"),
        "box": ("m", False, "صندوق", "صناديق"), "letter": ("f", False, "رسالة", "رسائل"),
        "cup": ("m", False, "فنجان", "فناجين"), "flower": ("f", False, "زهرة", "زهور"),
        "ball": ("f", False, "كرة", "كرات"), "hat": ("f", False, "قبعة", "قبعات"),
        "key": ("m", False, "مفتاح", "مفاتيح"), "lamp": ("m", False, "مصباح", "مصابيح"),
        "stone": ("m", False, "حجر", "حجارة"), "bottle": ("f", False, "زجاجة", "زجاجات"),
        "garden": ("f", False, "حديقة", "حدائق"), "market": ("m", False, "سوق", "أسواق"),
        "river": ("m", False, "نهر", "أنهار"), "kitchen": ("m", False, "مطبخ", "مطابخ"),
        "school": ("f", False, "مدرسة", "مدارس"), "park": ("m", False, "منتزه", "منتزهات"),
        "city": ("f", False, "مدينة", "مدن"), "forest": ("f", False, "غابة", "غابات"),
    },
    # adjective: (masc sg, fem sg, human plural); a non-human plural takes the feminine singular
    "adj": {
        "small": ("صغير", "صغيرة", "صغار"), "big": ("كبير", "كبيرة", "كبار"), "old": ("قديم", "قديمة", "قدماء"),
        "new": ("جديد", "جديدة", "جدد"), "red": ("أحمر", "حمراء", "حمر"), "blue": ("أزرق", "زرقاء", "زرق"),
        "green": ("أخضر", "خضراء", "خضر"), "white": ("أبيض", "بيضاء", "بيض"), "black": ("أسود", "سوداء", "سود"),
        "heavy": ("ثقيل", "ثقيلة", "ثقال"),
    },
    "adj_animate": {"old": ("عجوز", "عجوز", "عجائز")},
    # verb: (present masc, present fem, past masc, past fem), 3rd person singular (a verb before its subject)
    "verb": {
        "read": ("يقرأ", "تقرأ", "قرأ", "قرأت"), "see": ("يرى", "ترى", "رأى", "رأت"),
        "buy": ("يشتري", "تشتري", "اشترى", "اشترت"), "sell": ("يبيع", "تبيع", "باع", "باعت"),
        "carry": ("يحمل", "تحمل", "حمل", "حملت"), "find": ("يجد", "تجد", "وجد", "وجدت"),
        "like": ("يحب", "تحب", "أحب", "أحبت"), "make": ("يصنع", "تصنع", "صنع", "صنعت"),
        "bring": ("يحضر", "تحضر", "أحضر", "أحضرت"), "wash": ("يغسل", "تغسل", "غسل", "غسلت"),
        "open": ("يفتح", "تفتح", "فتح", "فتحت"), "take": ("يأخذ", "تأخذ", "أخذ", "أخذت"),
    },
    # numeral after the noun: (with a masculine noun, with a feminine noun) - the gender polarity of 3-10
    "num": {2: ("اثنان", "اثنتان"), 3: ("ثلاثة", "ثلاث"), 4: ("أربعة", "أربع"), 5: ("خمسة", "خمس"),
            6: ("ستة", "ست")},
    "num_acc": {2: ("اثنين", "اثنتين")},  # 3-6: an indefinite accusative adds alif where no ة ends it
    # indefinite accusative of the objects (singular, plural): the alif of -an; none after ة, on diptotes
    # (صناديق, رسائل, ...) or on sound feminine plurals
    "acc_indef": {
        "book": ("كتابا", "كتبا"), "apple": ("تفاحة", "تفاحات"), "box": ("صندوقا", "صناديق"),
        "letter": ("رسالة", "رسائل"), "cup": ("فنجانا", "فناجين"), "flower": ("زهرة", "زهورا"),
        "ball": ("كرة", "كرات"), "hat": ("قبعة", "قبعات"), "key": ("مفتاحا", "مفاتيح"),
        "lamp": ("مصباحا", "مصابيح"), "stone": ("حجرا", "حجارة"), "bottle": ("زجاجة", "زجاجات"),
    },
    "article": "ال",
    "prep": {"in": "في", "near": "قرب", "behind": "خلف"},
    "time": {"in the morning": "في الصباح", "in the evening": "في المساء", "at night": "في الليل",
             "on Monday": "يوم الاثنين", "on Sunday": "يوم الأحد", "every day": "كل يوم"},
}

# ----------------------------------------------------------------------------------------------------------------
# Swedish: SVO; en/ett; suffixed definite article, with den/det/de before an adjective or numeral.

SV: dict = {
    # noun: (gender en|ett, indefinite sg, definite sg, indefinite pl, definite pl)
    "noun": {
        "teacher": ("en", "lärare", "läraren", "lärare", "lärarna"),
        "farmer": ("en", "bonde", "bonden", "bönder", "bönderna"),
        "doctor": ("en", "läkare", "läkaren", "läkare", "läkarna"),
        "child": ("ett", "barn", "barnet", "barn", "barnen"),
        "king": ("en", "kung", "kungen", "kungar", "kungarna"),
        "queen": ("en", "drottning", "drottningen", "drottningar", "drottningarna"),
        "dog": ("en", "hund", "hunden", "hundar", "hundarna"), "cat": ("en", "katt", "katten", "katter", "katterna"),
        "bird": ("en", "fågel", "fågeln", "fåglar", "fåglarna"),
        "girl": ("en", "flicka", "flickan", "flickor", "flickorna"),
        "boy": ("en", "pojke", "pojken", "pojkar", "pojkarna"), "fox": ("en", "räv", "räven", "rävar", "rävarna"),
        "book": ("en", "bok", "boken", "böcker", "böckerna"), "apple": ("ett", "äpple", "äpplet", "äpplen", "äpplena"),
        "box": ("en", "låda", "lådan", "lådor", "lådorna"), "letter": ("ett", "brev", "brevet", "brev", "breven"),
        "cup": ("en", "kopp", "koppen", "koppar", "kopparna"),
        "flower": ("en", "blomma", "blomman", "blommor", "blommorna"),
        "ball": ("en", "boll", "bollen", "bollar", "bollarna"), "hat": ("en", "hatt", "hatten", "hattar", "hattarna"),
        "key": ("en", "nyckel", "nyckeln", "nycklar", "nycklarna"),
        "lamp": ("en", "lampa", "lampan", "lampor", "lamporna"),
        "stone": ("en", "sten", "stenen", "stenar", "stenarna"),
        "bottle": ("en", "flaska", "flaskan", "flaskor", "flaskorna"),
    },
    # adjective: (en-form, ett-form, definite singular, plural)
    "adj": {
        "small": ("liten", "litet", "lilla", "små"), "big": ("stor", "stort", "stora", "stora"),
        "old": ("gammal", "gammalt", "gamla", "gamla"), "new": ("ny", "nytt", "nya", "nya"),
        "red": ("röd", "rött", "röda", "röda"), "blue": ("blå", "blått", "blå", "blå"),
        "green": ("grön", "grönt", "gröna", "gröna"), "white": ("vit", "vitt", "vita", "vita"),
        "black": ("svart", "svart", "svarta", "svarta"), "heavy": ("tung", "tungt", "tunga", "tunga"),
    },
    # verb: (present, past)
    "verb": {
        "read": ("läser", "läste"), "see": ("ser", "såg"), "buy": ("köper", "köpte"), "sell": ("säljer", "sålde"),
        "carry": ("bär", "bar"), "find": ("hittar", "hittade"), "like": ("gillar", "gillade"),
        "make": ("gör", "gjorde"), "bring": ("hämtar", "hämtade"), "wash": ("tvättar", "tvättade"),
        "open": ("öppnar", "öppnade"), "take": ("tar", "tog"),
    },
    "num": {2: "två", 3: "tre", 4: "fyra", 5: "fem", 6: "sex"},
    # indefinite article by gender; the free definite article: en-word, ett-word, plural
    "article": {"en": "en", "ett": "ett", "def_en": "den", "def_ett": "det", "def_pl": "de"},
    "place": {  # the place nouns' definite forms after i / nära / bakom
        "garden": "trädgården", "market": "marknaden", "river": "floden", "kitchen": "köket", "school": "skolan",
        "park": "parken", "city": "staden", "forest": "skogen",
    },
    "prep": {"in": "i", "near": "nära", "behind": "bakom"},
    "time": {"in the morning": "på morgonen", "in the evening": "på kvällen", "at night": "på natten",
             "on Monday": "på måndag", "on Sunday": "på söndag", "every day": "varje dag"},
}

# ----------------------------------------------------------------------------------------------------------------
# Latvian: SVO; no articles (definiteness on the adjective's long ending); nominative subjects, accusative objects.

LV: dict = {
    # noun: (gender m|f, nom sg, acc sg, nom pl, acc pl)
    "noun": {
        "teacher": ("m", "skolotājs", "skolotāju", "skolotāji", "skolotājus"),
        "farmer": ("m", "zemnieks", "zemnieku", "zemnieki", "zemniekus"),
        "doctor": ("m", "ārsts", "ārstu", "ārsti", "ārstus"), "child": ("m", "bērns", "bērnu", "bērni", "bērnus"),
        "king": ("m", "karalis", "karali", "karaļi", "karaļus"),
        "queen": ("f", "karaliene", "karalieni", "karalienes", "karalienes"),
        "dog": ("m", "suns", "suni", "suņi", "suņus"), "cat": ("m", "kaķis", "kaķi", "kaķi", "kaķus"),
        "bird": ("m", "putns", "putnu", "putni", "putnus"),
        "girl": ("f", "meitene", "meiteni", "meitenes", "meitenes"), "boy": ("m", "zēns", "zēnu", "zēni", "zēnus"),
        "fox": ("f", "lapsa", "lapsu", "lapsas", "lapsas"),
        "book": ("f", "grāmata", "grāmatu", "grāmatas", "grāmatas"),
        "apple": ("m", "ābols", "ābolu", "āboli", "ābolus"), "box": ("f", "kaste", "kasti", "kastes", "kastes"),
        "letter": ("f", "vēstule", "vēstuli", "vēstules", "vēstules"),
        "cup": ("f", "krūze", "krūzi", "krūzes", "krūzes"), "flower": ("m", "zieds", "ziedu", "ziedi", "ziedus"),
        "ball": ("f", "bumba", "bumbu", "bumbas", "bumbas"), "hat": ("f", "cepure", "cepuri", "cepures", "cepures"),
        "key": ("f", "atslēga", "atslēgu", "atslēgas", "atslēgas"),
        "lamp": ("f", "lampa", "lampu", "lampas", "lampas"),
        "stone": ("m", "akmens", "akmeni", "akmeņi", "akmeņus"),
        "bottle": ("f", "pudele", "pudeli", "pudeles", "pudeles"),
    },
    # adjective: (stem, masculine nominative singular of the short form); endings in real_grammar.Latvian
    "adj": {"small": ("maz", "mazs"), "big": ("liel", "liels"), "old": ("vec", "vecs"), "new": ("jaun", "jauns"),
            "red": ("sarkan", "sarkans"), "blue": ("zil", "zils"), "green": ("zaļ", "zaļš"),
            "white": ("balt", "balts"), "black": ("meln", "melns"), "heavy": ("smag", "smags")},
    # verb: (present 3rd person, past 3rd person); the same for singular and plural
    "verb": {
        "read": ("lasa", "lasīja"), "see": ("redz", "redzēja"), "buy": ("pērk", "pirka"),
        "sell": ("pārdod", "pārdeva"), "carry": ("nes", "nesa"), "find": ("atrod", "atrada"),
        "like": ("mīl", "mīlēja"), "make": ("taisa", "taisīja"), "bring": ("atnes", "atnesa"),
        "wash": ("mazgā", "mazgāja"), "open": ("atver", "atvēra"), "take": ("ņem", "ņēma"),
    },
    # numeral: stem with the adjective's plural endings (divi/divas, divus/divas), or one invariable form
    "num": {2: "div", 3: "trīs", 4: "četr", 5: "piec", 6: "seš"},
    "place": {
        "garden": ("dārzā", "pie dārza", "aiz dārza"), "market": ("tirgū", "pie tirgus", "aiz tirgus"),
        "river": ("upē", "pie upes", "aiz upes"), "kitchen": ("virtuvē", "pie virtuves", "aiz virtuves"),
        "school": ("skolā", "pie skolas", "aiz skolas"), "park": ("parkā", "pie parka", "aiz parka"),
        "city": ("pilsētā", "pie pilsētas", "aiz pilsētas"), "forest": ("mežā", "pie meža", "aiz meža"),
    },
    "time": {"in the morning": "no rīta", "in the evening": "vakarā", "at night": "naktī",
             "on Monday": "pirmdien", "on Sunday": "svētdien", "every day": "katru dienu"},
}

# ----------------------------------------------------------------------------------------------------------------
# Slovene: SVO; no articles; singular, dual (2), plural (3-4) and genitive plural (5-6); the past is je/sta/so
# with an l-participle agreeing in gender and number.

SL: dict = {
    # noun: (gender m|f|n, singular, dual, plural, genitive plural); subjects in the nominative, objects in the
    # accusative (the only case each appears in)
    "noun": {
        "teacher": ("m", "učitelj", "učitelja", "učitelji", "učiteljev"),
        "farmer": ("m", "kmet", "kmeta", "kmetje", "kmetov"),
        "doctor": ("m", "zdravnik", "zdravnika", "zdravniki", "zdravnikov"),
        "child": ("m", "otrok", "otroka", "otroci", "otrok"), "king": ("m", "kralj", "kralja", "kralji", "kraljev"),
        "queen": ("f", "kraljica", "kraljici", "kraljice", "kraljic"),
        "dog": ("m", "pes", "psa", "psi", "psov"), "cat": ("f", "mačka", "mački", "mačke", "mačk"),
        "bird": ("f", "ptica", "ptici", "ptice", "ptic"), "girl": ("f", "deklica", "deklici", "deklice", "deklic"),
        "boy": ("m", "deček", "dečka", "dečki", "dečkov"), "fox": ("f", "lisica", "lisici", "lisice", "lisic"),
        "book": ("f", "knjigo", "knjigi", "knjige", "knjig"),
        "apple": ("n", "jabolko", "jabolki", "jabolka", "jabolk"),
        "box": ("f", "škatlo", "škatli", "škatle", "škatel"), "letter": ("n", "pismo", "pismi", "pisma", "pisem"),
        "cup": ("f", "skodelico", "skodelici", "skodelice", "skodelic"),
        "flower": ("f", "rožo", "roži", "rože", "rož"), "ball": ("f", "žogo", "žogi", "žoge", "žog"),
        "hat": ("m", "klobuk", "klobuka", "klobuke", "klobukov"), "key": ("m", "ključ", "ključa", "ključe", "ključev"),
        "lamp": ("f", "svetilko", "svetilki", "svetilke", "svetilk"),
        "stone": ("m", "kamen", "kamna", "kamne", "kamnov"),
        "bottle": ("f", "steklenico", "steklenici", "steklenice", "steklenic"),
    },
    # adjective: (masculine nominative singular, stem); endings in real_grammar.Slovene
    "adj": {"small": ("majhen", "majhn"), "big": ("velik", "velik"), "old": ("star", "star"), "new": ("nov", "nov"),
            "red": ("rdeč", "rdeč"), "blue": ("moder", "modr"), "green": ("zelen", "zelen"), "white": ("bel", "bel"),
            "black": ("črn", "črn"), "heavy": ("težek", "težk")},
    # verb: (present 3sg, present 3pl, l-participle masc sg, participle stem); the dual is the 3sg + "ta"
    "verb": {
        "read": ("bere", "berejo", "bral", "bral"), "see": ("vidi", "vidijo", "videl", "videl"),
        "buy": ("kupuje", "kupujejo", "kupil", "kupil"), "sell": ("prodaja", "prodajajo", "prodal", "prodal"),
        "carry": ("nosi", "nosijo", "nosil", "nosil"), "find": ("najde", "najdejo", "našel", "našl"),
        "like": ("mara", "marajo", "maral", "maral"), "make": ("dela", "delajo", "naredil", "naredil"),
        "bring": ("prinaša", "prinašajo", "prinesel", "prinesl"), "wash": ("pere", "perejo", "opral", "opral"),
        "open": ("odpira", "odpirajo", "odprl", "odprl"), "take": ("jemlje", "jemljejo", "vzel", "vzel"),
    },
    "aux": {"sg": "je", "du": "sta", "pl": "so"},
    # numeral: (masc nominative, fem/neuter nominative, masc accusative, fem/neuter accusative)
    "num": {2: ("dva", "dve", "dva", "dve"), 3: ("trije", "tri", "tri", "tri"),
            4: ("štirje", "štiri", "štiri", "štiri"), 5: ("pet",) * 4, 6: ("šest",) * 4},
    "place": {
        "garden": ("v vrtu", "blizu vrta", "za vrtom"), "market": ("na tržnici", "blizu tržnice", "za tržnico"),
        "river": ("v reki", "blizu reke", "za reko"), "kitchen": ("v kuhinji", "blizu kuhinje", "za kuhinjo"),
        "school": ("v šoli", "blizu šole", "za šolo"), "park": ("v parku", "blizu parka", "za parkom"),
        "city": ("v mestu", "blizu mesta", "za mestom"), "forest": ("v gozdu", "blizu gozda", "za gozdom"),
    },
    "time": {"in the morning": "zjutraj", "in the evening": "zvečer", "at night": "ponoči",
             "on Monday": "v ponedeljek", "on Sunday": "v nedeljo", "every day": "vsak dan"},
}

# ----------------------------------------------------------------------------------------------------------------
# Tamil: SOV; -கள் plurals; ஒரு for "a"; a definite object in the accusative (-ஐ); verbs agree with the
# subject's class (honorific, masculine, feminine, non-rational) and number.

TA: dict = {
    # noun: (class, singular, plural); class: h rational, honorific verb (-ஆர்) | m masculine (-ஆன்) |
    # f feminine (-ஆள்) | n non-rational (animals, things, and குழந்தை "child", grammatically neuter)
    "noun": {
        "teacher": ("h", "ஆசிரியர்", "ஆசிரியர்கள்"), "farmer": ("h", "விவசாயி", "விவசாயிகள்"),
        "doctor": ("h", "மருத்துவர்", "மருத்துவர்கள்"), "child": ("n", "குழந்தை", "குழந்தைகள்"),
        "king": ("h", "அரசன்", "அரசர்கள்"), "queen": ("h", "அரசி", "அரசிகள்"),
        "dog": ("n", "நாய்", "நாய்கள்"), "cat": ("n", "பூனை", "பூனைகள்"),
        "bird": ("n", "பறவை", "பறவைகள்"), "girl": ("f", "சிறுமி", "சிறுமிகள்"),
        "boy": ("m", "சிறுவன்", "சிறுவர்கள்"), "fox": ("n", "நரி", "நரிகள்"),
        "book": ("n", "புத்தகம்", "புத்தகங்கள்"), "apple": ("n", "ஆப்பிள்", "ஆப்பிள்கள்"),
        "box": ("n", "பெட்டி", "பெட்டிகள்"), "letter": ("n", "கடிதம்", "கடிதங்கள்"),
        "cup": ("n", "கோப்பை", "கோப்பைகள்"), "flower": ("n", "பூ", "பூக்கள்"),
        "ball": ("n", "பந்து", "பந்துகள்"), "hat": ("n", "தொப்பி", "தொப்பிகள்"),
        "key": ("n", "சாவி", "சாவிகள்"), "lamp": ("n", "விளக்கு", "விளக்குகள்"),
        "stone": ("n", "கல்", "கற்கள்"), "bottle": ("n", "பாட்டில்", "பாட்டில்கள்"),
    },
    # accusative singular of the objects (the plural's is -கள் -> -களை)
    "acc": {
        "book": "புத்தகத்தை", "apple": "ஆப்பிளை", "box": "பெட்டியை", "letter": "கடிதத்தை", "cup": "கோப்பையை",
        "flower": "பூவை", "ball": "பந்தை", "hat": "தொப்பியை", "key": "சாவியை", "lamp": "விளக்கை", "stone": "கல்லை",
        "bottle": "பாட்டிலை",
    },
    "adj": {"small": "சிறிய", "big": "பெரிய", "old": "பழைய", "new": "புதிய", "red": "சிவப்பு", "blue": "நீல",
            "green": "பச்சை", "white": "வெள்ளை", "black": "கருப்பு", "heavy": "கனமான"},
    "adj_animate": {"old": "வயதான"},
    # verb: (present rational 3sg (honorific), present non-rational 3sg, past rational, past non-rational);
    # a rational plural adds -கள் to the rational form; masculine and feminine replace its -ஆர் by -ஆன் / -ஆள்
    "verb": {
        "read": ("படிக்கிறார்", "படிக்கிறது", "படித்தார்", "படித்தது"),
        "see": ("பார்க்கிறார்", "பார்க்கிறது", "பார்த்தார்", "பார்த்தது"),
        "buy": ("வாங்குகிறார்", "வாங்குகிறது", "வாங்கினார்", "வாங்கியது"),
        "sell": ("விற்கிறார்", "விற்கிறது", "விற்றார்", "விற்றது"),
        "carry": ("சுமக்கிறார்", "சுமக்கிறது", "சுமந்தார்", "சுமந்தது"),
        "find": ("கண்டுபிடிக்கிறார்", "கண்டுபிடிக்கிறது", "கண்டுபிடித்தார்", "கண்டுபிடித்தது"),
        "like": ("விரும்புகிறார்", "விரும்புகிறது", "விரும்பினார்", "விரும்பியது"),
        "make": ("செய்கிறார்", "செய்கிறது", "செய்தார்", "செய்தது"),
        "bring": ("கொண்டுவருகிறார்", "கொண்டுவருகிறது", "கொண்டுவந்தார்", "கொண்டுவந்தது"),
        "wash": ("கழுவுகிறார்", "கழுவுகிறது", "கழுவினார்", "கழுவியது"),
        "open": ("திறக்கிறார்", "திறக்கிறது", "திறந்தார்", "திறந்தது"),
        "take": ("எடுக்கிறார்", "எடுக்கிறது", "எடுத்தார்", "எடுத்தது"),
    },
    "num": {1: "ஒரு", 2: "இரண்டு", 3: "மூன்று", 4: "நான்கு", 5: "ஐந்து", 6: "ஆறு"},
    "place": {
        "garden": ("தோட்டத்தில்", "தோட்டத்தின் அருகில்", "தோட்டத்தின் பின்னால்"),
        "market": ("சந்தையில்", "சந்தையின் அருகில்", "சந்தையின் பின்னால்"),
        "river": ("ஆற்றில்", "ஆற்றின் அருகில்", "ஆற்றின் பின்னால்"),
        "kitchen": ("சமையலறையில்", "சமையலறையின் அருகில்", "சமையலறையின் பின்னால்"),
        "school": ("பள்ளியில்", "பள்ளியின் அருகில்", "பள்ளியின் பின்னால்"),
        "park": ("பூங்காவில்", "பூங்காவின் அருகில்", "பூங்காவின் பின்னால்"),
        "city": ("நகரத்தில்", "நகரத்தின் அருகில்", "நகரத்தின் பின்னால்"),
        "forest": ("காட்டில்", "காட்டின் அருகில்", "காட்டின் பின்னால்"),
    },
    "time": {"in the morning": "காலையில்", "in the evening": "மாலையில்", "at night": "இரவில்",
             "on Monday": "திங்கட்கிழமை", "on Sunday": "ஞாயிற்றுக்கிழமை", "every day": "தினமும்"},
}

# ----------------------------------------------------------------------------------------------------------------
# Japanese: SOV, no spaces; は after the subject, を after the object; numeral + counter + の; で for the place.

JA: dict = {
    # noun: (noun, counter)
    "noun": {
        "teacher": ("先生", "人"), "farmer": ("農家", "人"), "doctor": ("医者", "人"), "child": ("子供", "人"),
        "king": ("王", "人"), "queen": ("女王", "人"), "dog": ("犬", "匹"), "cat": ("猫", "匹"), "bird": ("鳥", "羽"),
        "girl": ("女の子", "人"), "boy": ("男の子", "人"), "fox": ("狐", "匹"),
        "book": ("本", "冊"), "apple": ("りんご", "個"), "box": ("箱", "個"), "letter": ("手紙", "通"),
        "cup": ("カップ", "個"), "flower": ("花", "本"), "ball": ("ボール", "個"), "hat": ("帽子", "個"),
        "key": ("鍵", "本"), "lamp": ("ランプ", "個"), "stone": ("石", "個"), "bottle": ("瓶", "本"),
        "garden": ("庭", ""), "market": ("市場", ""), "river": ("川", ""), "kitchen": ("台所", ""),
        "school": ("学校", ""), "park": ("公園", ""), "city": ("町", ""), "forest": ("森", ""),
    },
    "adj": {"small": "小さい", "big": "大きい", "old": "古い", "new": "新しい", "red": "赤い", "blue": "青い",
            "green": "緑の", "white": "白い", "black": "黒い", "heavy": "重い"},
    "adj_animate": {"old": "年老いた"},
    # verb: (non-past, past), plain style
    "verb": {
        "read": ("読む", "読んだ"), "see": ("見る", "見た"), "buy": ("買う", "買った"), "sell": ("売る", "売った"),
        "carry": ("運ぶ", "運んだ"), "find": ("見つける", "見つけた"), "like": ("好む", "好んだ"),
        "make": ("作る", "作った"), "bring": ("持ってくる", "持ってきた"), "wash": ("洗う", "洗った"),
        "open": ("開ける", "開けた"), "take": ("取る", "取った"),
    },
    "num": {2: "二", 3: "三", 4: "四", 5: "五", 6: "六"},
    "particle": {"subj": "は", "obj": "を", "counter": "の"},
    "prep": {"in": "で", "near": "の近くで", "behind": "の後ろで"},  # after the place noun
    "time": {"in the morning": "朝", "in the evening": "夕方", "at night": "夜", "on Monday": "月曜日に",
             "on Sunday": "日曜日に", "every day": "毎日"},
}

# ----------------------------------------------------------------------------------------------------------------
# Indonesian: SVO; adjective after the noun; "itu" marks a definite noun phrase; se- + classifier for "a";
# numerals with an unmarked noun; "telah" before a past verb.

ID: dict = {
    # noun: (noun, classifier for "a": orang people | ekor animals | buah things)
    "noun": {
        "teacher": ("guru", "orang"), "farmer": ("petani", "orang"), "doctor": ("dokter", "orang"),
        "child": ("anak", "orang"), "king": ("raja", "orang"), "queen": ("ratu", "orang"),
        "dog": ("anjing", "ekor"), "cat": ("kucing", "ekor"), "bird": ("burung", "ekor"),
        "girl": ("gadis", "orang"), "boy": ("anak laki-laki", "orang"), "fox": ("rubah", "ekor"),
        "book": ("buku", "buah"), "apple": ("apel", "buah"), "box": ("kotak", "buah"), "letter": ("surat", "buah"),
        "cup": ("cangkir", "buah"), "flower": ("bunga", "buah"), "ball": ("bola", "buah"), "hat": ("topi", "buah"),
        "key": ("kunci", "buah"), "lamp": ("lampu", "buah"), "stone": ("batu", "buah"), "bottle": ("botol", "buah"),
    },
    "adj": {"small": "kecil", "big": "besar", "old": "lama", "new": "baru", "red": "merah", "blue": "biru",
            "green": "hijau", "white": "putih", "black": "hitam", "heavy": "berat"},
    "adj_animate": {"old": "tua"},
    "verb": {"read": "membaca", "see": "melihat", "buy": "membeli", "sell": "menjual", "carry": "mengangkut",
             "find": "menemukan", "like": "menyukai", "make": "membuat", "bring": "membawa", "wash": "mencuci",
             "open": "membuka", "take": "mengambil"},
    "past": "telah",
    "num": {1: "se", 2: "dua", 3: "tiga", 4: "empat", 5: "lima", 6: "enam"},
    "def": "itu",
    "place": {"garden": "kebun", "market": "pasar", "river": "sungai", "kitchen": "dapur", "school": "sekolah",
              "park": "taman", "city": "kota", "forest": "hutan"},
    "prep": {"in": "di", "near": "di dekat", "behind": "di belakang"},
    "time": {"in the morning": "pada pagi hari", "in the evening": "pada sore hari", "at night": "pada malam hari",
             "on Monday": "pada hari Senin", "on Sunday": "pada hari Minggu", "every day": "setiap hari"},
}

# ----------------------------------------------------------------------------------------------------------------
# Welsh: VSO ("Mae ... yn" + verbnoun in the present, the inflected past in -odd); y/yr/'r; numerals with a
# singular noun; the soft and aspirate mutations of real_grammar.Welsh.

CY: dict = {
    # noun: (gender m|f, singular); numerals take the singular, so no plural is needed
    "noun": {
        "teacher": ("m", "athro"), "farmer": ("m", "ffermwr"), "doctor": ("m", "meddyg"), "child": ("m", "plentyn"),
        "king": ("m", "brenin"), "queen": ("f", "brenhines"), "dog": ("m", "ci"), "cat": ("f", "cath"),
        "bird": ("m", "aderyn"), "girl": ("f", "merch"), "boy": ("m", "bachgen"), "fox": ("m", "llwynog"),
        "book": ("m", "llyfr"), "apple": ("m", "afal"), "box": ("m", "bocs"), "letter": ("m", "llythyr"),
        "cup": ("m", "cwpan"), "flower": ("m", "blodyn"), "ball": ("f", "pêl"), "hat": ("f", "het"),
        "key": ("f", "allwedd"), "lamp": ("f", "lamp"), "stone": ("f", "carreg"), "bottle": ("f", "potel"),
        "garden": ("f", "gardd"), "market": ("f", "marchnad"), "river": ("f", "afon"), "kitchen": ("f", "cegin"),
        "school": ("f", "ysgol"), "park": ("m", "parc"), "city": ("f", "dinas"), "forest": ("f", "coedwig"),
    },
    # adjective: (masculine, feminine); "hen" (old) comes before the noun
    "adj": {"small": ("bach", "bach"), "big": ("mawr", "mawr"), "old": ("hen", "hen"),
            "new": ("newydd", "newydd"), "red": ("coch", "coch"), "blue": ("glas", "glas"),
            "green": ("gwyrdd", "gwyrdd"), "white": ("gwyn", "gwen"), "black": ("du", "du"),
            "heavy": ("trwm", "trom")},
    # verb: (verbnoun, past 3sg)
    "verb": {
        "read": ("darllen", "darllenodd"), "see": ("gweld", "gwelodd"), "buy": ("prynu", "prynodd"),
        "sell": ("gwerthu", "gwerthodd"), "carry": ("cario", "cariodd"), "find": ("ffeindio", "ffeindiodd"),
        "like": ("hoffi", "hoffodd"), "make": ("gwneud", "gwnaeth"), "bring": ("dod", "daeth"),
        "wash": ("golchi", "golchodd"), "open": ("agor", "agorodd"), "take": ("cymryd", "cymerodd"),
    },
    "particle": {"bring": "â"},  # "dod â" / "daeth â": the object follows â (aspirate mutation)
    "present": ("mae", "yn"),
    # numeral before a noun: (masculine, feminine)
    "num": {2: ("dau", "dwy"), 3: ("tri", "tair"), 4: ("pedwar", "pedair"), 5: ("pum", "pum"), 6: ("chwe", "chwe")},
    "prep": {"in": "yn", "near": "ger", "behind": "y tu ôl i"},
    "time": {"in the morning": "yn y bore", "in the evening": "gyda'r nos", "at night": "yn y nos",
             "on Monday": "ddydd Llun", "on Sunday": "ddydd Sul", "every day": "bob dydd"},
}

REAL_TABLES: dict[str, dict] = {
    "de": DE, "ca": CA, "zh-CN": ZH, "fa": FA, "et": ET, "mn": MN, "tr": TR, "ar": AR, "sv-SE": SV, "lv": LV,
    "sl": SL, "ta": TA, "ja": JA, "id": ID, "cy": CY,
}
