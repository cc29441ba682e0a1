"""CoVoST2 En->X from Common Voice v4 English clips plus the CoVoST2 translation TSVs.

Reads both published forms, exactly as the official splitting tool (facebookresearch/covost,
get_covost_splits.py) does: pandas with tab separator, no quoting, backslash escapes, no NA
filtering; the per-direction `covost_v2.en_XX.tsv` is inner-joined with Common Voice's
`validated.tsv` on `path`, and train is the union of the `train` and `train_covost` labels.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from src.data.audio import ClipError, ClipStore, probe_duration
from src.data.schema import SPLITS, Example
from src.data.source import ExampleSource
from src.utils.errors import UserError

log = logging.getLogger(__name__)

CV_COLUMNS = ("path", "sentence", "client_id")
COVOST_COLUMNS = ("path", "translation", "split")
SPLIT_FILE_COLUMNS = ("path", "sentence", "translation")
HOW_TO_GET = (
    "Download Common Voice v4 English (en/clips/*.mp3 and en/validated.tsv) and the CoVoST2 "
    "translation TSVs (covost_v2.en_XX.tsv), and set data.root (and data.tsv_dir if the TSVs live "
    "elsewhere); or use data=covost2_hf for the parquet mirrors, or data=toy for the synthetic corpus."
)


def read_tsv(path: Path) -> pd.DataFrame:
    """Read a Common Voice / CoVoST TSV with the official tool's parsing options."""
    try:
        return pd.read_csv(
            path, sep="\t", header=0, encoding="utf-8", escapechar="\\", quoting=csv.QUOTE_NONE,
            na_filter=False, dtype=str,
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot parse as a CoVoST/Common Voice TSV ({e})") from e


def require_columns(df: pd.DataFrame, path: Path, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(
            f"{path}: missing required column(s) {missing}; found {list(df.columns)}. "
            f"Expected the published CoVoST2/Common Voice format with columns {list(columns)}."
        )


def split_rows(df: pd.DataFrame, split: str) -> pd.DataFrame:
    """CoVoST2 v2 split selection: train = train + train_covost; dev/test as labelled."""
    if split == "train":
        return df[(df["split"] == "train") | (df["split"] == "train_covost")]
    return df[df["split"] == split]


class CoVoST2Tables:
    """Locates and reads the TSVs of one CoVoST2 root; every error names the file and the fix."""

    def __init__(self, root: str | Path, tsv_dir: str | Path | None = None,
                 skip: Callable[[str, str, str], None] | None = None) -> None:
        self.skip = skip or (lambda reason, what, detail="": None)
        self.root = Path(root).expanduser()
        self.tsv_dir = Path(tsv_dir).expanduser() if tsv_dir else self.root
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={self.root} does not exist. {HOW_TO_GET}")
        self._validated: pd.DataFrame | None = None

    @property
    def clips_dir(self) -> Path:
        return self.root / "en" / "clips"

    def validated(self) -> pd.DataFrame:
        if self._validated is None:
            path = self.root / "en" / "validated.tsv"
            if not path.exists():
                raise FileNotFoundError(f"{path} not found (Common Voice English validated.tsv). {HOW_TO_GET}")
            df = read_tsv(path)
            require_columns(df, path, CV_COLUMNS)
            dup = df["path"].duplicated(keep="first")
            for p in df.loc[dup, "path"]:
                self.skip("duplicate_path", f"{path.name} {p}", "listed more than once; the first row is kept")
            self._validated = df[~dup]
        return self._validated

    def direction(self, tgt: str, split: str) -> pd.DataFrame:
        """Rows (path, sentence, translation, client_id) of one direction and split."""
        stem = f"covost_v2.en_{tgt}"
        split_file = self.tsv_dir / f"{stem}.{split}.tsv"
        full_file = self.tsv_dir / f"{stem}.tsv"
        if split_file.exists():
            df = read_tsv(split_file)
            require_columns(df, split_file, SPLIT_FILE_COLUMNS)
            if "client_id" not in df.columns:
                df["client_id"] = ""
            return df[["path", "sentence", "translation", "client_id"]]
        if full_file.exists():
            covost = read_tsv(full_file)
            require_columns(covost, full_file, COVOST_COLUMNS)
            cv = self.validated()
            rows = split_rows(covost[list(COVOST_COLUMNS)], split)
            known = rows["path"].isin(cv["path"])
            for p in rows.loc[~known, "path"]:
                self.skip("not_validated", f"{full_file.name} {split} {p}", "not in en/validated.tsv")
            df = pd.merge(left=cv[list(CV_COLUMNS)], right=rows[known], how="inner", on="path")
            return df[["path", "sentence", "translation", "client_id"]]
        raise FileNotFoundError(
            f"no CoVoST2 TSV for en->{tgt}: looked for {full_file} and {split_file}. {HOW_TO_GET} "
            f"Or drop '{tgt}' from data.directions."
        )


class CoVoST2Source(ExampleSource):
    """CoVoST2 En->X examples over one shared clip store (each English clip decoded once)."""

    def __init__(self, root: str, tsv_dir: str | None = None, cache_dir: str | None = None, **options) -> None:
        super().__init__(**options)
        self.tables = CoVoST2Tables(root, tsv_dir, skip=self.skips.skip)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.clips = ClipStore.from_dir(self.tables.clips_dir, self.max_duration)
        self._durations: dict[str, float | ClipError] = {}

    # -- clip checks, shared by every direction -------------------------------------------------
    def _probe(self, keys: Sequence[str]) -> None:
        """Duration (header) of every new clip once; a full decode per clip with check_audio."""
        todo = sorted({k for k in keys if k not in self._durations})
        if not todo:
            return
        cache = self._load_duration_cache()
        desc = "decoding clips" if self.check_audio else "probing clip durations"
        for key in tqdm(todo, desc=desc, disable=not self.progress or len(todo) < 200, leave=False):
            try:
                if self.check_audio:
                    self._durations[key] = self.clips.load(key).size / 16_000
                elif key in cache:
                    self._durations[key] = cache[key]
                else:
                    self._durations[key] = probe_duration(self.tables.clips_dir / key)
            except ClipError as e:
                self._durations[key] = e
        self._save_duration_cache()

    def _cache_file(self) -> Path | None:
        if self.cache_dir is None:
            return None
        tag = hashlib.sha1(str(self.tables.clips_dir.resolve()).encode()).hexdigest()[:12]
        return self.cache_dir / f"durations-{tag}.tsv"

    def _load_duration_cache(self) -> dict[str, float]:
        path = self._cache_file()
        if path is None or not path.exists():
            return {}
        out = {}
        for line in path.read_text().splitlines():
            key, _, dur = line.partition("\t")
            try:
                out[key] = float(dur)
            except ValueError:
                continue
        return out

    def _save_duration_cache(self) -> None:
        path = self._cache_file()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        good = {k: v for k, v in self._durations.items() if isinstance(v, float)}
        known = self._load_duration_cache() | good
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # one per process: torchrun ranks write it together
        tmp.write_text("".join(f"{k}\t{v!r}\n" for k, v in sorted(known.items())))  # exact: warm == cold
        tmp.replace(path)

    def _inside_clips(self, df: pd.DataFrame, what: str) -> pd.DataFrame:
        """Rows whose clip path resolves inside en/clips; the others are skipped and counted."""
        clips = self.tables.clips_dir.resolve()
        inside = [(clips / str(p)).resolve().is_relative_to(clips) for p in df["path"]]
        for p, ok in zip(df["path"], inside):
            if not ok:
                self.skips.skip("outside_clips_dir", f"{what} {p}", f"resolves outside {clips}")
        return df[inside] if not all(inside) else df

    def _make_examples(self, df: pd.DataFrame, tgt: str, what: str) -> list[Example]:
        df = self._inside_clips(df, what)
        self._probe(df["path"].tolist())
        out = []
        for path, sentence, translation in zip(df["path"], df["sentence"], df["translation"]):
            ex = self.make_example(path, sentence, tgt, translation, self._durations.get(path), f"{what} {path}")
            if ex is not None:
                out.append(ex)
        return out

    # -- public ---------------------------------------------------------------------------------
    def _read_examples(self, split: str) -> list[Example]:
        """All usable examples of a split (train / dev / test), direction by direction."""
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}'; use one of {SPLITS}")
        out: list[Example] = []
        for tgt in self.directions:
            df = self.tables.direction(tgt, split)
            if split == "train":
                df = df.iloc[self.subset_rows(len(df), tgt)]
            made = self._make_examples(df, tgt, f"en_{tgt} {split}")
            if not made:
                raise UserError(f"en_{tgt} {split}: no usable examples (skipped so far: {self.skips.as_dict()}); "
                                 f"check the CoVoST2 TSV and en/clips under {self.tables.root}, or drop '{tgt}' "
                                 "from data.directions")
            out.extend(made)
        return out
