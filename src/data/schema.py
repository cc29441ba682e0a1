"""The example schema every data source yields, and the skip accounting shared by all of them."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from src.utils.atomic import write_json
from src.utils.errors import UserError

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")

# Every reason an example can be skipped; a new reason must be added here so it is reported.
SKIP_REASONS = (
    "missing_clip",
    "unreadable_clip",
    "empty_clip",
    "too_long",
    "too_short",
    "empty_translation",
    "empty_sentence",
    "outside_clips_dir",  # a TSV path that resolves outside en/clips (../.., absolute)
    "not_validated",  # a CoVoST2 row whose clip is not in validated.tsv (the inner join drops it)
    "duplicate_path",  # a clip listed twice in validated.tsv (the first row is kept)
    "bad_encoding",  # a TSV row with a byte that is not UTF-8 (only that row is left out)
    "missing_split",  # a CoVoST2 row with no split label (a short row): it belongs to no split
    "unknown_split",  # a CoVoST2 row whose split label is none of train, train_covost, dev, test
)


@dataclass(frozen=True)
class Example:
    """One (English clip, target language) pair.

    `audio` is a key into the source's clip store: the 15 directions of one clip share that key, so
    the clip is decoded and featurized once.
    """

    id: str
    audio: str
    sentence: str
    tgt_lang: str
    translation: str
    duration: float | None = None

    @property
    def task(self) -> str:
        return "transcribe" if self.tgt_lang == "en" else "translate"

    def to_dict(self) -> dict:
        return asdict(self)

    def as_transcription(self) -> Example:
        """The clip's English ASR example (CoVoST2's English transcription direction): one per clip."""
        return replace(self, id=f"{self.audio}:en", tgt_lang="en", translation=self.sentence)


class BadExampleError(UserError):
    """A skip turned fatal by `data.on_bad_example=error`."""


class SkipLog:
    """Counts skipped examples by reason; never drops anything silently.

    With policy "error" the first skip raises instead, naming the example and the reason.
    """

    def __init__(self, policy: str = "skip") -> None:
        if policy not in ("skip", "error"):
            raise UserError(f"data.on_bad_example must be 'skip' or 'error', got '{policy}'")
        self.policy = policy
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def skip(self, reason: str, what: str, detail: str = "") -> None:
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason '{reason}'")
        msg = f"{what}: {reason}" + (f" ({detail})" if detail else "")
        if self.policy == "error":
            raise BadExampleError(f"{msg}. Set data.on_bad_example=skip to skip and count such examples.")
        self.counts[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < 20:
            kept.append(msg)
        log.debug("skipped %s", msg)

    def merge(self, counts: dict[str, int]) -> None:
        for reason, n in counts.items():
            self.counts[reason] += n

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return {r: int(self.counts[r]) for r in SKIP_REASONS if self.counts[r]}

    def log_summary(self, logger: logging.Logger = log) -> None:
        if self.total:
            logger.warning("skipped %d examples: %s", self.total, self.as_dict())
            for msgs in self.examples.values():
                logger.warning("  e.g. %s", msgs[0])

    def save(self, path: str | Path) -> None:
        write_json(path, {"skipped": self.as_dict(), "examples": self.examples})
