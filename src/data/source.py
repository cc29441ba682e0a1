"""What every data source shares: its options, the per-example checks with skip accounting, and
deterministic data-constrained subsets. Sources differ only in where rows and clips come from."""

from __future__ import annotations

import random
from collections.abc import Sequence

from src.data.audio import ClipError
from src.data.languages import COVOST2_EN_XX, check_directions
from src.data.schema import Example, SkipLog


class ExampleSource:
    def __init__(
        self,
        directions: Sequence[str] | None = None,
        max_train_per_direction: int | None = None,
        min_duration: float = 0.0,
        max_duration: float | None = 30.0,
        seed: int = 0,
        on_bad_example: str = "skip",
        check_audio: bool = False,
        progress: bool = True,
    ) -> None:
        self.directions = check_directions(list(directions) if directions else list(COVOST2_EN_XX))
        self.max_train_per_direction = max_train_per_direction
        self.min_duration = min_duration
        self.max_duration = max_duration
        self.seed = seed
        self.check_audio = check_audio
        self.progress = progress
        self.skips = SkipLog(on_bad_example)
        self._splits: dict[str, list[Example]] = {}

    def examples(self, split: str) -> list[Example]:
        """All usable examples of ``split``, read (and their skips counted) once per source: training, the
        dev loss and evaluation ask for the same split, and `skipped.json` must count each bad row once."""
        if split not in self._splits:
            self._splits[split] = self._read_examples(split)
        return list(self._splits[split])

    def _read_examples(self, split: str) -> list[Example]:
        """The split's examples, direction by direction, counting every skipped row (each source's own)."""
        raise NotImplementedError

    def subset_rows(self, n_rows: int, tgt: str) -> list[int]:
        """Row indices of the data-constrained train subset: a seeded sample, in file order."""
        n = self.max_train_per_direction
        if n is None or n_rows <= n:
            return list(range(n_rows))
        return sorted(random.Random(f"{self.seed}:{tgt}").sample(range(n_rows), int(n)))

    def make_example(
        self, key: str, sentence: str, tgt: str, translation: str, duration: float | ClipError | None, label: str
    ) -> Example | None:
        """The example, or None after counting why it is skipped (first failing check wins)."""
        if isinstance(duration, ClipError):
            self.skips.skip(duration.reason, label, duration.detail)
            return None
        translation, sentence = (translation or "").strip(), (sentence or "").strip()
        if not translation:
            self.skips.skip("empty_translation", label)
        elif not sentence:
            self.skips.skip("empty_sentence", label)
        elif duration is not None and self.max_duration is not None and duration > self.max_duration:
            self.skips.skip("too_long", label, f"{duration:.1f}s > data.max_duration={self.max_duration}")
        elif duration is not None and duration < self.min_duration:
            self.skips.skip("too_short", label, f"{duration:.2f}s < data.min_duration={self.min_duration}")
        else:
            return Example(f"{key.rsplit('.', 1)[0]}.{tgt}", key, sentence, tgt, translation, duration)
        return None
