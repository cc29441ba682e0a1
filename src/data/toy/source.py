"""`data=toy`: the synthetic corpus, built (or reused) in the cache, read by the CoVoST2 loader."""

from __future__ import annotations

from pathlib import Path

from src.data.covost2 import CoVoST2Source


class ToySource(CoVoST2Source):
    """The toy corpus in Common Voice + CoVoST2 layout; everything downstream is the real loader."""

    def __init__(self, corpus: dict, cache_dir: str, **kwargs) -> None:
        from src.data.toy.corpus import ensure_toy_corpus

        root = ensure_toy_corpus(Path(cache_dir).expanduser() / "toy_corpus", progress=kwargs.get("progress", True),
                                 **dict(corpus))
        self.corpus_root = root
        super().__init__(root=str(root), cache_dir=cache_dir, **kwargs)
