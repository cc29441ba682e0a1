"""`data=toy`: the synthetic corpus, built (or reused) in the cache, read by the CoVoST2 loader."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from src.data.covost2 import CoVoST2Source, read_tsv, require_columns
from src.data.schema import Example

ASR_COLUMNS = ("path", "sentence")


class ToySource(CoVoST2Source):
    """The toy corpus in Common Voice + CoVoST2 layout; everything downstream is the real loader."""

    def __init__(self, corpus: dict, cache_dir: str, **kwargs) -> None:
        from src.data.toy.corpus import ensure_toy_corpus

        root = ensure_toy_corpus(Path(cache_dir).expanduser() / "toy_corpus", progress=kwargs.get("progress", True),
                                 **dict(corpus))
        self.corpus_root = root
        super().__init__(root=str(root), cache_dir=cache_dir, **kwargs)

    def _read_examples(self, split: str) -> list[Example]:
        """The CoVoST2 splits, plus the toy model's pretraining splits: asr_train / asr_dev (English ASR) and
        pretrain_st_train / pretrain_st_dev (a translation of each ASR clip)."""
        if split.startswith("asr_"):
            df = self.asr_table(split[4:])
            df = df.assign(translation=df["sentence"])
            return self._make_examples(df, "en", f"asr {split[4:]}")
        if split.startswith("pretrain_st_"):
            df = self.asr_table(split[len("pretrain_st_"):], with_translation=True)
            return [ex for tgt in self.directions
                    for ex in self._make_examples(df[df["tgt_lang"] == tgt], tgt, f"pretrain {split}")]
        return super()._read_examples(split)

    def asr_table(self, split: str, with_translation: bool = False) -> pd.DataFrame:
        """toy_asr.<split>.tsv (with_translation: a row per translation of a clip, else a row per clip)."""
        path = self.tables.tsv_dir / f"toy_asr.{split}.tsv"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: rebuild the toy corpus (make pretrain)")
        df = read_tsv(path)
        require_columns(df, path, ASR_COLUMNS + (("tgt_lang", "translation") if with_translation else ()))
        return df if with_translation else df.drop_duplicates("path")
