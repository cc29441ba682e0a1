"""The `data` group's dataclasses: torch-free, so validating a config imports no torch (src/config.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from src.utils.errors import UserError
from src.utils.ranges import check_range

TASKS = ("translate", "transcribe")  # Whisper's tasks (src/data/text.py TASK_TOKENS)


@dataclass
class LoaderConfig:
    """`data.loader`: how examples become batches (shared by every source)."""

    max_batch_frames: int = 24000
    max_batch_size: int = 64
    num_workers: int = 0
    cache_features: bool = True
    pad_multiple: int = 32
    max_target_tokens: int = 128
    # Every clip padded to exactly this many feature frames (100 a second; even), the encoder's positions sliced
    # to it: one fixed window shorter than 30 s (model.pad_to_30s=false; data.max_duration must fit in it).
    window_frames: int | None = None

    def check(self) -> None:
        for key, low in (("max_batch_frames", 1), ("max_batch_size", 1), ("num_workers", 0), ("pad_multiple", 1),
                         ("max_target_tokens", 1)):
            check_range(f"data.loader.{key}", getattr(self, key), low, integer=True)
        check_range("data.loader.window_frames", self.window_frames, 2, 3000, integer=True, optional=True)
        if self.window_frames is not None and self.window_frames % 2:
            raise UserError(f"data.loader.window_frames={self.window_frames}: must be even (the encoder halves it)")


@dataclass
class DataConfig:
    """The `data` group, typed: the source class (`_target_`, built by src/data/loading.build_source), the options
    it is built with (checked against its signature at start-up), and the loader settings every source shares."""

    target: str
    options: dict[str, Any] = field(default_factory=dict)
    loader: LoaderConfig = field(default_factory=LoaderConfig)

    @classmethod
    def from_node(cls, node: dict[str, Any]) -> DataConfig:
        """From the group as a resolved container (the yaml's layout)."""
        options = {k: v for k, v in node.items() if k not in ("_target_", "loader")}
        return cls(str(node.get("_target_")), options, LoaderConfig(**(node.get("loader") or {})))

    def node(self) -> dict[str, Any]:
        """The yaml's layout again (what the toy model's cache key hashes)."""
        return {"_target_": self.target, **self.options, "loader": asdict(self.loader)}

    @property
    def is_toy(self) -> bool:
        """The embedded toy corpus (its `corpus` options), which the toy model is pretrained on."""
        return "corpus" in self.options

    @property
    def directions(self) -> list[str] | None:
        return list(self.options["directions"]) if self.options.get("directions") else None

    @property
    def max_duration(self) -> float | None:
        return self.options.get("max_duration")
