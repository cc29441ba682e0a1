"""The embedded synthetic toy corpus (docs/design.md §1): eSpeak NG speech + 15 invented languages (or, with
``lexicon="real"``, template sentences in the 15 real languages: real_lexicon.py, real_grammar.py).

Importing this package does not load eSpeak NG; only building clips does (``tts.py``, GPL).
"""

from src.data.toy.corpus import (
    TOY_CORPUS_VERSION,
    build_toy_corpus,
    corpus_params,
    ensure_toy_corpus,
    read_marker,
    toy_corpus_dir,
)

__all__ = [
    "TOY_CORPUS_VERSION",
    "build_toy_corpus",
    "corpus_params",
    "ensure_toy_corpus",
    "read_marker",
    "toy_corpus_dir",
]
