"""Build the embedded toy corpus in the Common Voice v4 + CoVoST2 layout (docs/design.md §1-2).

The corpus is synthetic: English sentences from :mod:`src.data.toy.grammar`, spoken by eSpeak NG
(:mod:`src.data.toy.tts`), translated into 15 synthetic languages. It is written exactly as the real
data is laid out, so the generic CoVoST2 loader (and the official splitting tool) reads it:

    root/en/clips/common_voice_en_toy_000000.mp3   48 kHz mono mp3
    root/en/validated.tsv                          client_id path sentence up_votes down_votes age gender
                                                   accent
    root/covost_v2.en_XX.tsv                       path sentence translation split  (one per direction)
    root/toy_asr.{train,dev}.tsv                   path sentence tgt_lang translation  (pretraining split,
                                                   disjoint from ST clips: English ASR + k translations per
                                                   clip, one row each)
    root/DATA_CARD.md
    root/.complete                                 JSON of the build parameters (the reuse key)

Everything is a pure function of the parameters: same seed, same bytes (TSVs and mp3s).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.data.languages import COVOST2_EN_XX, check_directions
from src.data.toy.grammar import LEXICONS, TYPOLOGY, Sentence, language, sample_sentence, translate
from src.utils.atomic import atomic_dir
from src.utils.errors import UserError

log = logging.getLogger(__name__)

# Bump when the generator changes in a way that changes the output: old caches then rebuild.
TOY_CORPUS_VERSION = 3
MARKER = ".complete"
CLIP_PREFIX = "common_voice_en_toy_"
VALIDATED_HEADER = ("client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent")
COVOST_HEADER = ("path", "sentence", "translation", "split")
ASR_HEADER = ("path", "sentence", "tgt_lang", "translation")

DEFAULT_SIZES: dict[str, int] = {
    "n_asr_train": 3000, "n_asr_dev": 200, "n_st_train": 400, "n_st_dev": 50, "n_st_test": 50,
}
# Translations per pretraining clip (directions in turn). 2 (ASR on a third of the rows) left the
# encoder's CTC at 0.87 instead of 0.53 after 1000 steps and halved the dense fine-tune's BLEU.
DEFAULT_PRETRAIN_TRANSLATIONS = 1


# --------------------------------------------------------------------------------------------
# Parameters and cache location


def corpus_params(
    *,
    seed: int = 0,
    n_asr_train: int = DEFAULT_SIZES["n_asr_train"],
    n_asr_dev: int = DEFAULT_SIZES["n_asr_dev"],
    n_st_train: int = DEFAULT_SIZES["n_st_train"],
    n_st_dev: int = DEFAULT_SIZES["n_st_dev"],
    n_st_test: int = DEFAULT_SIZES["n_st_test"],
    pretrain_translations: int = DEFAULT_PRETRAIN_TRANSLATIONS,
    directions: Sequence[str] = COVOST2_EN_XX,
    sample_rate: int = 48000,
    lexicon: str = "invented",
) -> dict:
    """The canonical, JSON-able parameter set that identifies a toy corpus (the reuse key).

    ``lexicon``: "invented" (the 15 synthetic languages) or "real" (real words of the 15 languages,
    src/data/toy/real_grammar.py). It enters the key only when it is not "invented", so the invented corpus
    keeps the key, directory and marker it had before the option existed, and the two never share a cache.
    """
    sizes = {"n_asr_train": n_asr_train, "n_asr_dev": n_asr_dev, "n_st_train": n_st_train,
             "n_st_dev": n_st_dev, "n_st_test": n_st_test}
    for k, v in sizes.items():
        if int(v) != v or v < 0:
            raise UserError(f"toy corpus: {k} must be a non-negative integer, got {v!r}")
    if int(sample_rate) <= 0:
        raise UserError(f"toy corpus: sample_rate must be positive, got {sample_rate!r}")
    dirs = check_directions(list(directions), source="toy corpus directions")
    if int(pretrain_translations) != pretrain_translations or pretrain_translations < 0:
        raise UserError(f"toy corpus: pretrain_translations must be a non-negative integer, "
                         f"got {pretrain_translations!r}")
    pretrain_translations = min(int(pretrain_translations), len(dirs))  # at most one per direction
    if lexicon not in LEXICONS:
        raise UserError(f"toy corpus: lexicon must be one of {', '.join(LEXICONS)}, got {lexicon!r}")
    return {
        "version": TOY_CORPUS_VERSION, "seed": int(seed), **{k: int(v) for k, v in sizes.items()},
        "pretrain_translations": int(pretrain_translations), "directions": dirs, "sample_rate": int(sample_rate),
        **({} if lexicon == "invented" else {"lexicon": lexicon}),
    }


def toy_corpus_dir(cache_dir: str | os.PathLike, params: Mapping | None = None) -> Path:
    """A cache path keyed by the (canonicalised) parameters, e.g. ``<cache>/toy-v1-seed0-3a9f01c2``, or
    ``<cache>/toy-v3-real-seed0-...`` with the real lexicon.

    Different parameters never share a directory, so several toy corpora can coexist in a cache.
    """
    p = corpus_params(**{k: v for k, v in (params or {}).items() if k != "version"})
    digest = hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()[:8]
    lexicon = f"-{p['lexicon']}" if "lexicon" in p else ""
    return Path(cache_dir) / f"toy-v{p['version']}{lexicon}-seed{p['seed']}-{digest}"


def ensure_toy_corpus(cache_dir: str | os.PathLike, *, progress: bool = True, **params) -> Path:
    """Build (or reuse) the toy corpus for ``params`` under ``cache_dir``; returns its root."""
    return build_toy_corpus(toy_corpus_dir(cache_dir, params), progress=progress, **params)


def read_marker(root: str | os.PathLike) -> dict | None:
    """The build parameters of a complete toy corpus at ``root``, or None."""
    path = Path(root) / MARKER
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Speakers and clips


@dataclass(frozen=True)
class ToySpeaker:
    """A synthetic speaker: one eSpeak voice at one rate and pitch, with Common Voice metadata."""

    voice: str
    rate: int
    pitch: int
    age: str
    gender: str
    accent: str

    @property
    def client_id(self) -> str:
        return hashlib.sha256(f"toy-speaker|{self.voice}|{self.rate}|{self.pitch}".encode()).hexdigest()


def _accent(voice: str) -> str:
    base = voice.split("+")[0]
    return {"en-us": "us", "en-gb-x-rp": "england", "en-gb-scotland": "scotland", "en-029": "other",
            "en": "england"}.get(base, "other")


def toy_speakers(n: int = 16) -> list[ToySpeaker]:
    """A fixed pool of speakers (independent of the corpus seed, so client ids are stable)."""
    from src.data.toy.tts import ENGLISH_VOICES

    rng = random.Random("upcycle-st toy speakers v1")
    out = []
    for i in range(n):
        voice = ENGLISH_VOICES[i % len(ENGLISH_VOICES)]
        variant = voice.partition("+")[2]
        gender = "female" if variant.startswith("f") else "male"
        age = rng.choice(("twenties", "thirties", "fourties", "fifties", "sixties"))
        out.append(ToySpeaker(voice, rng.randint(135, 205), rng.randint(25, 75), age, gender, _accent(voice)))
    return out


@dataclass(frozen=True)
class ClipJob:
    """Everything needed to render one clip: a picklable, pure description."""

    path: str  # absolute output path of the mp3
    text: str
    voice: str
    rate: int
    pitch: int
    tts_seed: int
    lead_s: float
    tail_s: float
    gain: float
    sample_rate: int


@functools.cache
def _resampler(orig: int, new: int):
    """torchaudio's sinc resampler with its kernel built once (building it costs ~12 ms a clip).

    With a float32 kernel it is bit-identical to ``torchaudio.functional.resample`` (checked);
    the default float64 kernel is not. This is torchaudio's DSP, not its I/O.
    """
    import torch
    import torchaudio.transforms

    return torchaudio.transforms.Resample(orig, new, dtype=torch.float32)


def render_clip(job: ClipJob) -> int:
    """Speak, pad with silence, resample, write mp3; returns the number of samples written."""
    import soundfile as sf
    import torch

    from src.data.toy.tts import synthesize

    audio, sr = synthesize(job.text, job.voice, job.rate, job.pitch, seed=job.tts_seed)
    if audio.size == 0:
        raise RuntimeError(f"eSpeak NG produced no audio for {job.text!r} (voice {job.voice})")
    lead, tail = np.zeros(int(job.lead_s * sr), np.float32), np.zeros(int(job.tail_s * sr), np.float32)
    # (No noise floor: it made LAME ~20% slower and the files ~10% bigger for no use in the toy.)
    audio = np.concatenate([lead, audio * np.float32(job.gain), tail])
    if sr != job.sample_rate:
        with torch.inference_mode():
            audio = _resampler(sr, job.sample_rate)(torch.from_numpy(audio)).numpy()
    audio = np.clip(audio, -1.0, 1.0)
    sf.write(job.path, audio, job.sample_rate, format="MP3")
    return int(audio.size)


# --------------------------------------------------------------------------------------------
# TSV writing (the format the official CoVoST tool reads: tab-separated, no quoting, escapechar "\")


def _check_field(value: str, where: str) -> str:
    if any(c in value for c in "\t\n\r\\"):
        raise ValueError(f"toy corpus: field for {where} contains a tab, newline or backslash: {value!r}")
    return value


def write_tsv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a TSV with no quoting; fields never contain tabs/newlines/backslashes (checked)."""
    lines = ["\t".join(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"{path.name}: row {row!r} does not match header {header}")
        lines.append("\t".join(_check_field(str(v), path.name) for v in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------
# The build


@dataclass(frozen=True)
class _Clip:
    name: str
    group: str  # st | asr
    split: str  # train | dev | test
    sentence: Sentence
    text: str


def _draw_sentences(params: Mapping) -> list[_Clip]:
    """Sentences per split from split-specific streams, unique English text across the corpus.

    Test is drawn first, then dev, then train, so changing a train size leaves the held-out sets
    (and the ST sets, when ASR sizes change) untouched.
    """
    plan = [("st", "test", params["n_st_test"]), ("st", "dev", params["n_st_dev"]),
            ("st", "train", params["n_st_train"]), ("asr", "dev", params["n_asr_dev"]),
            ("asr", "train", params["n_asr_train"])]
    seen: set[str] = set()
    drawn: dict[tuple[str, str], list[tuple[Sentence, str]]] = {}
    for group, split, n in plan:
        rng = random.Random(f"upcycle-st toy corpus seed={params['seed']} {group}-{split}")
        out = []
        while len(out) < n:
            s = sample_sentence(rng)
            text = s.english()
            if text not in seen:
                seen.add(text)
                out.append((s, text))
        drawn[(group, split)] = out
    clips = []
    for group, split in (("st", "train"), ("st", "dev"), ("st", "test"), ("asr", "train"), ("asr", "dev")):
        for s, text in drawn[(group, split)]:
            clips.append(_Clip(f"{CLIP_PREFIX}{len(clips):06d}.mp3", group, split, s, text))
    return clips


def _clip_job(clip: _Clip, speaker: ToySpeaker, params: Mapping, clips_dir: Path) -> ClipJob:
    rng = random.Random(f"upcycle-st toy clip seed={params['seed']} {clip.name}")
    return ClipJob(
        path=str(clips_dir / clip.name), text=clip.text, voice=speaker.voice, rate=speaker.rate,
        pitch=speaker.pitch, tts_seed=rng.getrandbits(31), lead_s=round(rng.uniform(0.05, 0.3), 3),
        tail_s=round(rng.uniform(0.05, 0.3), 3), gain=round(rng.uniform(0.55, 0.95), 3),
        sample_rate=params["sample_rate"],
    )


def _speaker_for(clip: _Clip, speakers: list[ToySpeaker], seed: int) -> ToySpeaker:
    rng = random.Random(f"upcycle-st toy speaker seed={seed} {clip.name}")
    return speakers[rng.randrange(len(speakers))]


def _render_all(jobs: list[ClipJob], workers: int, progress: bool) -> list[int]:
    """Render every clip, in a thread pool when ``workers`` > 1.

    Threads, not processes: eSpeak (~10 ms a clip, serialised by its lock) is the only part that
    holds a global; mp3 encoding (~40 ms, libsndfile via cffi) and resampling (torch) release the
    GIL, so threads give most of the parallel speed-up with no worker start-up, no re-import of the
    caller's ``__main__`` and no fork-after-threads hazards. Each clip is a pure function of its job,
    so the number of workers never changes the output.
    """
    from concurrent.futures import ThreadPoolExecutor

    import torch
    from tqdm.auto import tqdm

    out: list[int] = []
    # One intra-op thread while rendering: a 1-D resample gains nothing from more, and idle OpenMP
    # threads spin-waiting between clips steal CPU from the encoder threads. Restored afterwards;
    # the output is bit-identical either way (checked).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tqdm(total=len(jobs), desc="toy corpus clips", unit="clip", disable=not progress) as bar:
            if workers <= 1:
                for job in jobs:
                    out.append(render_clip(job))
                    bar.update(1)
            else:
                with ThreadPoolExecutor(workers, thread_name_prefix="toy-clip") as ex:
                    for n in ex.map(render_clip, jobs):
                        out.append(n)
                        bar.update(1)
    finally:
        torch.set_num_threads(threads)
    return out


def _auto_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def build_toy_corpus(
    root: str | os.PathLike, *, progress: bool = True, workers: int | None = None, **params
) -> Path:
    """Write the toy corpus into ``root`` (or reuse it when its marker matches); returns ``root``.

    The build goes to a temporary sibling directory that is renamed into place at the end
    (utils.atomic.atomic_dir), so a crash never leaves a half-written corpus that looks complete.
    ``workers`` (None = automatic) only changes speed, never the output.
    """
    root = Path(root)
    params = corpus_params(**params)  # the knobs and their defaults: see corpus_params
    if read_marker(root) == params:
        return root
    if root.exists() and read_marker(root) is None and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"{root} exists and is not a toy corpus (no {MARKER} marker); refusing to overwrite it. "
            "Point the toy corpus at an empty or new directory."
        )
    t0 = time.perf_counter()
    # a corpus another process finished first is kept (the cache names each corpus by its params' digest)
    with atomic_dir(root, replace=root.exists()) as tmp:
        n_samples = _write_corpus(tmp, params, progress, workers)
    seconds = time.perf_counter() - t0
    n = len(n_samples)
    log.info("toy corpus: %d clips (%.2f h of audio) in %.1f s (%.1f clips/s) at %s",
             n, sum(n_samples) / params["sample_rate"] / 3600, seconds, n / max(seconds, 1e-9), root)
    return root


def _write_corpus(out: Path, params: dict, progress: bool, workers: int | None) -> list[int]:
    clips_dir = out / "en" / "clips"
    clips_dir.mkdir(parents=True)
    speakers = toy_speakers()
    clips = _draw_sentences(params)
    who = {c.name: _speaker_for(c, speakers, params["seed"]) for c in clips}
    jobs = [_clip_job(c, who[c.name], params, clips_dir) for c in clips]
    n_samples = _render_all(jobs, _auto_workers() if workers is None else workers, progress)

    write_tsv(out / "en" / "validated.tsv", VALIDATED_HEADER, (
        (who[c.name].client_id, c.name, c.text, 2, 0, who[c.name].age, who[c.name].gender, who[c.name].accent)
        for c in clips
    ))
    st = [c for c in clips if c.group == "st"]
    lexicon = params.get("lexicon", "invented")
    for code in params["directions"]:
        rows = []
        for i, c in enumerate(st):
            # Real CoVoST2 files label part of train "train_covost"; loaders must count it as train.
            split = "train_covost" if c.split == "train" and i % 8 == 1 else c.split
            rows.append((c.name, c.text, translate(c.sentence, code, lexicon), split))
        write_tsv(out / f"covost_v2.en_{code}.tsv", COVOST_HEADER, rows)
    dirs, k = params["directions"], params["pretrain_translations"]
    for split in ("train", "dev"):
        # Each pretraining clip also carries k translations (directions in turn, one row each), so the toy
        # "pretrained" model has seen every target language, as a multilingual pretrained model would have.
        # With k = 0 each clip has one row with an empty translation (English ASR only).
        asr = [c for c in clips if c.group == "asr" and c.split == split]
        rows = []
        for i, c in enumerate(asr):
            langs = [dirs[(i * k + j) % len(dirs)] for j in range(k)]
            rows += [(c.name, c.text, x, translate(c.sentence, x, lexicon)) for x in langs] or [
                (c.name, c.text, "", "")]
        write_tsv(out / f"toy_asr.{split}.tsv", ASR_HEADER, rows)
    (out / "DATA_CARD.md").write_text(_data_card(params, clips, n_samples, speakers), encoding="utf-8")
    (out / MARKER).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return n_samples


def _lexicon_bullet(lexicon: str) -> list[str]:
    """The data card's line on how the targets are made, for the invented or the real lexicon."""
    if lexicon == "real":
        return [
            "- Each target text is written with real words of the target language, in its own script (the",
            "  `real` lexicon: src/data/toy/real_lexicon.py), in the language's basic word order with a",
            "  simplified grammar (src/data/toy/real_grammar.py lists what is simplified). The sentences are",
            "  template translations, not human ones. A translation is a pure function of the sentence's",
            "  structure, so it is exact and unambiguous (no noise, no paraphrase).",
        ]
    return [
        "- Each target language is an invented language, one per CoVoST2 code, in a script that fits",
        "  the code. Languages that share a script share their content stems (cognates: the nine",
        "  Latin-script ones, and ar/fa); prepositions and every function morpheme (plural, articles,",
        "  case, tense, agreement, particles) are each language's own, as are word order, adjective",
        "  placement, number, case and tense marking. A translation is a pure function of the",
        "  sentence's structure, so it is exact and unambiguous (no noise, no paraphrase).",
    ]


def _language_table(params: dict, example: _Clip | None) -> list[str]:
    """The data card's table of target languages, with the example sentence in each."""
    lexicon = params.get("lexicon", "invented")
    if lexicon == "real":
        from src.data.toy.real_grammar import real_language

        lines = ["| code | order | example |", "|---|---|---|"]
        for code in params["directions"]:
            ex = translate(example.sentence, code, lexicon) if example else ""
            lines.append(f"| {code} | {real_language(code).order} | {ex} |")
        return lines
    lines = ["| code | script | order | adjective | plural | example |", "|---|---|---|---|---|---|"]
    for code in params["directions"]:
        t, lang = TYPOLOGY[code], language(code)
        ex = translate(example.sentence, code) if example else ""
        adj = "after" if t.adj_after else "before"
        lines.append(f"| {code} | {lang.script.name} | {t.order} | {adj} noun | {t.number} | {ex} |")
    return lines


def _data_card(params: dict, clips: list[_Clip], n_samples: list[int], speakers: list[ToySpeaker]) -> str:
    """The corpus's DATA_CARD.md (long on purpose: a document's text, section by section)."""
    sr = params["sample_rate"]
    hours = sum(n_samples) / sr / 3600
    count = {(g, s): sum(c.group == g and c.split == s for c in clips)
             for g in ("st", "asr") for s in ("train", "dev", "test")}
    example = next((c for c in clips if c.group == "st"), clips[0] if clips else None)
    lines = [
        "# Toy corpus data card",
        "",
        "**This corpus is synthetic.** No human speech and no real translations are in it. It is a",
        "small, deterministic stand-in with the shape of Common Voice v4 English + CoVoST2 En->X, made",
        "so that the whole upcycle-st pipeline (dense pretraining, upcycling, MoE training, evaluation)",
        "runs on a CPU in minutes with no download. Scores on it say nothing about real languages or",
        "real speech; use it for smoke tests, demos, debugging and relative comparisons of methods on a",
        "task where routing by direction matters.",
        "",
        "## How it is made",
        "",
        "- English sentences come from a template grammar (subject, verb, tense, object, optional place",
        "  and time; optional adjectives and numbers), drawn from a seeded random generator; every",
        "  English sentence is unique within the corpus.",
        "- The audio is eSpeak NG (via the espeakng-loader wheel) speaking each sentence, with "
        f"{len(speakers)} synthetic",
        "  speakers (voice variant, rate, pitch) and a little silence at both ends, resampled to",
        f"  {sr} Hz and stored as mono mp3 (libsndfile/LAME).",
        *_lexicon_bullet(params.get("lexicon", "invented")),
        "- `client_id` identifies a synthetic speaker (a hash of voice, rate and pitch); age, gender and",
        "  accent are labels derived from the voice, not facts about a person.",
        "",
        "## Sizes",
        "",
        "| part | train | dev | test |",
        "|---|---|---|---|",
        f"| English ASR (`toy_asr.*.tsv`, dense pretraining) | {count[('asr', 'train')]} | "
        f"{count[('asr', 'dev')]} | - |",
        f"| speech translation (`covost_v2.en_XX.tsv`, per direction, shared audio) | "
        f"{count[('st', 'train')]} | {count[('st', 'dev')]} | {count[('st', 'test')]} |",
        "",
        f"{len(clips)} clips, {hours:.2f} hours of audio; directions: {', '.join(params['directions'])}.",
        "The ASR and speech-translation clips are disjoint.",
        "",
        "## Files",
        "",
        "- `en/clips/*.mp3`, `en/validated.tsv` (Common Voice v4 layout; all clips)",
        "- `covost_v2.en_XX.tsv` with columns path, sentence, translation, split (train, train_covost,",
        "  dev, test; `train_covost` counts as train, as in the real files)",
        "- `toy_asr.train.tsv`, `toy_asr.dev.tsv` with columns path, sentence, tgt_lang, translation (",
        f"  {params['pretrain_translations']} directions per clip, in turn, one row each): dense pretraining on "
        "English ASR plus some speech translation",
        "- `.complete`: the build parameters; the builder reuses the corpus when they match",
        "",
        "## Languages",
        "",
        *_language_table(params, example),
    ]
    if example:
        lines += ["", f"Example English: {example.text}"]
    lines += [
        "",
        "## Licence notes",
        "",
        "eSpeak NG is GPL-3.0; it is used as a tool to generate the audio and is loaded only by",
        "`src/data/toy/tts.py`. The grammar, lexicons and parameters are part of upcycle-st.",
        "",
        f"Build parameters: `{json.dumps(params, sort_keys=True)}`",
        "",
    ]
    return "\n".join(lines)
