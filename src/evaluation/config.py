"""The `eval` group's dataclasses: torch-free, so validating a config imports no torch (src/config.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from src.data.config import TASKS, LoaderConfig
from src.utils.errors import UserError
from src.utils.ranges import check_range


@dataclass
class DecodeConfig:
    beam: int = 5
    length_penalty: float = 1.0
    max_new_tokens: int = 128
    greedy: bool = False


@dataclass
class CometConfig:
    model: str | None = "Unbabel/wmt22-comet-da"  # hub name or local checkpoint (.ckpt or its directory)
    batch_size: int = 16
    gpus: int | None = None  # None: 1 if a GPU is available, else 0
    required: bool = False  # true: a COMET failure fails the evaluation


@dataclass
class MetricsConfig:
    # Per-language sacrebleu tokenizer overrides, e.g. {zh-CN: zh, ja: ja-mecab}; default 13a, char for zh/ja.
    bleu_tokenize: dict[str, str] = field(default_factory=dict)
    comet: CometConfig = field(default_factory=CometConfig)


@dataclass
class EvalConfig(DecodeConfig, MetricsConfig):
    """`eval` group: which splits, how to decode, how to score."""

    splits: list[str] = field(default_factory=lambda: ["dev", "test"])
    task: str = "translate"  # translate: every direction; transcribe: each clip's English transcript, scored by WER
    max_examples_per_direction: int | None = None  # a quick look; null = the whole split
    # Decoding batches (null: data.loader's, the training batches). Generation's cost per decoder step is mostly
    # fixed overhead at toy size, so larger batches decode faster; clips are length-bucketed either way.
    max_batch_size: int | None = None
    max_batch_frames: int | None = None

    def check(self) -> None:
        if self.task not in TASKS:
            raise UserError(f"eval.task must be one of {sorted(TASKS)}, got '{self.task}'")
        check_range("eval.beam", self.beam, 1, integer=True)
        check_range("eval.length_penalty", self.length_penalty)
        check_range("eval.max_new_tokens", self.max_new_tokens, 1, integer=True)
        check_range("eval.max_examples_per_direction", self.max_examples_per_direction, 1, optional=True,
                    integer=True)
        check_range("eval.comet.batch_size", self.comet.batch_size, 1, integer=True)
        check_range("eval.max_batch_size", self.max_batch_size, 1, optional=True, integer=True)
        check_range("eval.max_batch_frames", self.max_batch_frames, 1, optional=True, integer=True)

    def batching(self, loader: LoaderConfig) -> LoaderConfig:
        """The decoding batches: ``loader`` with this group's caps where set."""
        return replace(loader, max_batch_size=self.max_batch_size or loader.max_batch_size,
                       max_batch_frames=self.max_batch_frames or loader.max_batch_frames)

    @property
    def decoding(self) -> DecodeConfig:
        return DecodeConfig(self.beam, self.length_penalty, self.max_new_tokens, self.greedy)


RESAMPLE = ("clip", "direction")


@dataclass
class ReportConfig:
    """How `src.report` compares runs (its command-line options; src/evaluation/comparison.py reads them)."""

    resample: str = "clip"  # the bootstrap's unit: whole test clips in every direction, or each direction alone
    n_draws: int = 1000
    contrasts: list[str] = field(default_factory=list)  # the primary family, "NAME=A vs B", named before reading
    equivalence_margin: float | None = None  # "equivalent within ±m" when a whole interval lies inside ±m

    def check(self) -> None:
        if self.resample not in RESAMPLE:
            raise UserError(f"--resample must be one of {RESAMPLE}, got '{self.resample}'")
        check_range("--n-draws", self.n_draws, 100, integer=True)
        check_range("--equivalence-margin", self.equivalence_margin, 0.0, low_open=True, optional=True)
