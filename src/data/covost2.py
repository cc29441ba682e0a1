"""CoVoST2 En->X from Common Voice v4 English clips plus the CoVoST2 translation TSVs.

Reads both published forms, exactly as the official splitting tool (facebookresearch/covost,
get_covost_splits.py) does: pandas with tab separator, no quoting, backslash escapes, no NA
filtering; the per-direction `covost_v2.en_XX.tsv` is inner-joined with Common Voice's
`validated.tsv` on `path`, and train is the union of the `train` and `train_covost` labels.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from src.data.audio import ClipError, ClipStore, probe_duration
from src.data.schema import SPLITS, Example
from src.data.source import ExampleSource
from src.utils.atomic import write_text
from src.utils.errors import UserError

log = logging.getLogger(__name__)

CV_COLUMNS = ("path", "sentence", "client_id")
COVOST_COLUMNS = ("path", "translation", "split")
SPLIT_FILE_COLUMNS = ("path", "sentence", "translation")
SPLIT_LABELS = ("train", "train_covost", "dev", "test")  # every label split_rows selects; a row with another is in none
HOW_TO_GET = (
    "Download Common Voice v4 English (en/clips/*.mp3 and en/validated.tsv) and the CoVoST2 "
    "translation TSVs (covost_v2.en_XX.tsv), and set data.root (and data.tsv_dir if the TSVs live "
    "elsewhere); or use data=covost2_hf for the parquet mirrors, or data=toy for the synthetic corpus."
)


def _records(data: bytes) -> list[tuple[int, bytes]]:
    """(first line, bytes) of each record as pandas' parser splits them, so that a row can be named by its line: a
    line ending in an odd run of backslashes continues (an escaped line break; a backslash before \\r\\n escapes
    only the \\r)."""
    out: list[tuple[int, bytes]] = []
    start, buf = 1, b""
    for n, line in enumerate(data.splitlines(keepends=True), 1):
        start, buf = (start, buf + line) if buf else (n, line)
        body = line.rstrip(b"\r\n")
        if line[len(body):] in (b"\n", b"\r") and (len(body) - len(body.rstrip(b"\\"))) % 2:
            continue
        out.append((start, buf))
        buf = b""
    return [*out, (start, buf)] if buf else out


def _is_row(record: bytes) -> bool:
    """pandas skips a line of spaces (skip_blank_lines): it is no row."""
    return bool(record.rstrip(b"\r\n").strip(b" "))


def _decodable(path: Path, records: list[tuple[int, bytes]],
               bad_encoding: Callable[[int, str], None] | None) -> list[tuple[int, bytes]]:
    """The records that decode as UTF-8; each other one is handed to `bad_encoding` with the line of its first bad
    byte. Without `bad_encoding`, or if it is the header (no column is known then), it stops the read instead."""
    good: list[tuple[int, bytes]] = []
    header_seen, offset = False, 0
    for start, raw in records:
        offset += len(raw)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = start + len((raw[: e.start] + b"x").splitlines()) - 1
            why = f"byte 0x{raw[e.start]:02x} at offset {offset - len(raw) + e.start} is not UTF-8: {e.reason}"
            if bad_encoding is None or not header_seen:
                raise UserError(f"{path}: line {line}{'' if header_seen else ' (the header)'}: {why}. Re-save the "
                                "file as UTF-8 (or fix that line).") from e
            bad_encoding(line, why)
            continue
        good.append((start, raw))
        header_seen = header_seen or _is_row(raw)
    return good


def read_tsv(path: Path, bad_encoding: Callable[[int, str], None] | None = None) -> pd.DataFrame:
    """Read a Common Voice / CoVoST TSV with the official tool's parsing options, indexed by where each row is.

    A row with a byte that is not UTF-8 costs only that row: it is left out and handed to `bad_encoding` with its
    line (1-based, as an editor shows it) and why; without `bad_encoding` it stops the read, naming file and line.
    The index is the line each row starts on (named "line"), or its 1-based row number (named "row") where rows
    and lines cannot be matched up.
    """
    data = path.read_bytes()
    records = None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        records = _decodable(path, _records(data), bad_encoding)
        data = b"".join(raw for _, raw in records)
    try:
        df = pd.read_csv(
            io.BytesIO(data), sep="\t", header=0, encoding="utf-8", escapechar="\\", quoting=csv.QUOTE_NONE,
            na_filter=False, dtype=str,
        )
    except pd.errors.ParserError as e:
        note = "; its line numbers do not count the rows left out as not UTF-8" if records is not None else ""
        raise UserError(f"{path}: cannot parse as a CoVoST/Common Voice TSV ({e}{note})") from e
    df.index = _line_index(data, records, len(df))
    return df


def _line_index(data: bytes, records: list[tuple[int, bytes]] | None, n_rows: int) -> pd.Index:
    """Each row's first line. Row i is on line i + 2 unless blank lines, escaped line breaks or rows left out
    shift it; the records are only split (slower) then."""
    if records is None:
        if len(data.splitlines()) == n_rows + 1:
            return pd.RangeIndex(2, n_rows + 2, name="line")
        records = _records(data)
    lines = [start for start, raw in records if _is_row(raw)][1:]
    return pd.Index(lines, name="line") if len(lines) == n_rows else pd.RangeIndex(1, n_rows + 1, name="row")


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
    """Locates and reads the TSVs of one CoVoST2 root; every error names the file and the fix.

    Every row it drops is counted (`skip`), once. A row the file itself cannot give (not UTF-8, so unread; no split
    label; an unknown one) counts once per file, on the file's first read: train, dev and test read the same
    per-direction TSV, and such a row is in no split it could be charged to (a split file's rows are its split's).
    A row of a split whose clip is not in validated.tsv counts once per split (a row left out of validated.tsv
    counts there too: it is another row). Asking for a split again (scripts/prepare_covost2.py does) counts nothing.
    """

    def __init__(self, root: str | Path, tsv_dir: str | Path | None = None,
                 skip: Callable[[str, str, str], None] | None = None) -> None:
        self.skip = skip or (lambda reason, what, detail="": None)
        self.root = Path(root).expanduser()
        self.tsv_dir = Path(tsv_dir).expanduser() if tsv_dir else self.root
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={self.root} does not exist. {HOW_TO_GET}")
        self._validated: pd.DataFrame | None = None
        self._counted: set[object] = set()

    @property
    def clips_dir(self) -> Path:
        return self.root / "en" / "clips"

    def _skip_once(self, key: object) -> Callable[[str, str, str], None]:
        """`skip` the first time `key` (a file, or a file and split) is read, a no-op after."""
        if key in self._counted:
            return lambda reason, what, detail="": None
        self._counted.add(key)
        return self.skip

    def _read(self, path: Path, columns: Sequence[str], skip: Callable[[str, str, str], None]) -> pd.DataFrame:
        """`path` with `columns`; a row that is not UTF-8 is left out and counted, by file and line."""
        df = read_tsv(path, lambda line, why: skip("bad_encoding", f"{path.name} line {line}", why))
        require_columns(df, path, columns)
        return df

    def validated(self) -> pd.DataFrame:
        if self._validated is None:
            path = self.root / "en" / "validated.tsv"
            if not path.exists():
                raise FileNotFoundError(f"{path} not found (Common Voice English validated.tsv). {HOW_TO_GET}")
            df = self._read(path, CV_COLUMNS, self.skip)
            dup = df["path"].duplicated(keep="first")
            for p in df.loc[dup, "path"]:
                self.skip("duplicate_path", f"{path.name} {p}", "listed more than once; the first row is kept")
            self._validated = df[~dup]
        return self._validated

    def _unplaced(self, df: pd.DataFrame, path: Path, skip: Callable[[str, str, str], None]) -> None:
        """Count the rows split_rows puts in no split: no split label (a short row, an empty field) or an unknown."""
        off = ~df["split"].isin(SPLIT_LABELS)
        for where, p, label in zip(df.index[off], df.loc[off, "path"], df.loc[off, "split"]):
            what = f"{path.name} {df.index.name} {where}"
            if label.strip():
                skip("unknown_split", what, f"{p}: split '{label}' is none of {', '.join(SPLIT_LABELS)}")
            else:
                skip("missing_split", what, f"{p}: no split label")

    def _joined(self, path: Path, split: str) -> pd.DataFrame:
        """The rows of `split` in a per-direction TSV, joined with validated.tsv (the official tool's inner join)."""
        skip = self._skip_once(path)
        covost = self._read(path, COVOST_COLUMNS, skip)
        self._unplaced(covost, path, skip)
        cv = self.validated()
        rows = split_rows(covost[list(COVOST_COLUMNS)], split)
        known = rows["path"].isin(cv["path"])
        skip = self._skip_once((path, split))
        for p in rows.loc[~known, "path"]:
            skip("not_validated", f"{path.name} {split} {p}", "not in en/validated.tsv")
        return pd.merge(left=cv[list(CV_COLUMNS)], right=rows[known], how="inner", on="path")

    def direction(self, tgt: str, split: str) -> pd.DataFrame:
        """Rows (path, sentence, translation, client_id) of one direction and split."""
        stem = f"covost_v2.en_{tgt}"
        split_file = self.tsv_dir / f"{stem}.{split}.tsv"
        full_file = self.tsv_dir / f"{stem}.tsv"
        if split_file.exists():
            df = self._read(split_file, SPLIT_FILE_COLUMNS, self._skip_once(split_file))
            if "client_id" not in df.columns:
                df["client_id"] = ""
            return df[["path", "sentence", "translation", "client_id"]]
        if full_file.exists():
            return self._joined(full_file, split)[["path", "sentence", "translation", "client_id"]]
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
        good = {k: v for k, v in self._durations.items() if isinstance(v, float)}
        known = self._load_duration_cache() | good
        # a temp file per writer (torchrun ranks write it together); repr: exact, so warm == cold
        write_text(path, "".join(f"{k}\t{v!r}\n" for k, v in sorted(known.items())))

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
