"""The `upcycle` group's dataclasses, one per strategy: torch-free, so validating a config imports no torch
(src/config.py). Each declares its strategy's name (`name`), the one place it is written: CONFIGS is keyed by it,
and a `Strategy[Cfg, State]` (base.py) is registered under its config's name."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from src.utils.errors import UserError
from src.utils.ranges import check_range
from src.utils.structured import to_dataclass

log = logging.getLogger(__name__)

CALIBRATION_TASKS = ("auto", "translate", "transcribe")
MIN_RESIDUAL_SCALE = 1e-3  # below it SPRI's residual is too small to matter: warned (1e-30 gave identical experts)
AUTO_MEASURES = ("kl", "ce_ratio")
DENSE = "dense"  # the strategy of a config that names none: no upcycling


@dataclass
class UpcycleConfig:
    """Options common to every strategy; each strategy extends it with its own knobs."""

    name: ClassVar[str] = ""  # the strategy this dataclass configures (each registered subclass sets its own)
    strategy: str = ""  # set from `name` (the base class: dense); a registered dataclass naming another is an error
    # Training-time methods that are part of the strategy's own recipe (the comparison's row label leaves them out).
    includes: ClassVar[tuple[str, ...]] = ()
    # Knobs whose value, when it is not the default, makes another comparison row: the row label reads
    # `spri[max_init_kl=0.3]` (src/evaluation/records.py MethodLabel), so two budgets never merge as seeds.
    variant_knobs: ClassVar[tuple[str, ...]] = ()
    stage1_trainable: list[str] = field(default_factory=lambda: ["router", "experts"])
    router_std: float = 0.02
    calibration_examples: int = 64  # training examples for the upcycling report (and data-aware strategies)
    calibration_tokens: int = 16384  # FFN inputs kept per layer (a seeded subsample; bounds memory)
    heldout_fraction: float = 0.25  # of the calibration examples: the report's deviations and init loss
    # The targets of the calibration batches: translate (the training task), transcribe (English transcripts of
    # the same clips: a task a pretrained Whisper already does), auto = transcribe for an English-only model.
    calibration_task: str = "auto"
    # The targets an `auto` knob's budget and the report's init_loss are measured on (the same clips as the
    # calibration batches): the budget should bound the disruption of what the dense model already predicts.
    # auto = transcribe for a pretrained Whisper checkpoint (model.name_or_path: Whisper never learned En->X,
    # and on targets it does not know its next-token distributions are so flat that any residual reads as
    # disruption: whisper-base at energy 0.999 moves them by 0.05 nats on toy translation targets), else the
    # calibration task (the toy model is pretrained on its own translation task).
    budget_task: str = "auto"
    # An `auto` knob (SPRI's energy) is the smallest value in [0, 1] whose init stays within a disruption budget
    # on the calibration batches (apply.search_knob): kl = mean KL(dense || upcycled) of the teacher-forced
    # next-token distributions, nats per target token (max_init_kl); ce_ratio = upcycled / dense
    # cross-entropy of the labels (max_init_loss_ratio). The report records both for every strategy.
    auto_measure: str = "kl"
    max_init_kl: float = 0.05
    max_init_loss_ratio: float = 1.05

    def __post_init__(self) -> None:
        own = type(self).name
        if not self.strategy:
            self.strategy = own or DENSE
        elif own and self.strategy != own:  # SPRIConfig(strategy="dense") would upcycle as dense
            raise UserError(f"upcycle.strategy: '{self.strategy}', but {type(self).__name__} configures '{own}'")

    def check(self) -> None:
        """Raise UserError naming the bad knob (called when the config is validated)."""
        if self.calibration_examples < 0 or self.calibration_tokens < 1:
            raise UserError("upcycle.calibration_examples must be >= 0 and upcycle.calibration_tokens >= 1")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise UserError(f"upcycle.heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
        if self.calibration_task not in CALIBRATION_TASKS:
            raise UserError(f"upcycle.calibration_task must be one of {CALIBRATION_TASKS}, "
                            f"got '{self.calibration_task}'")
        if self.budget_task not in CALIBRATION_TASKS:
            raise UserError(f"upcycle.budget_task must be one of {CALIBRATION_TASKS}, got '{self.budget_task}'")
        if self.budget_task == "translate" and self.calibration_task == "transcribe":
            raise UserError("upcycle.budget_task=translate needs translation calibration batches: "
                            "set upcycle.calibration_task=translate (or auto)")
        if self.auto_measure not in AUTO_MEASURES:
            raise UserError(f"upcycle.auto_measure must be one of {AUTO_MEASURES}, got '{self.auto_measure}'")
        if not self.max_init_kl > 0.0:
            raise UserError(f"upcycle.max_init_kl must be > 0 (nats per target token), got {self.max_init_kl}")
        if self.max_init_loss_ratio < 1.0:
            raise UserError(f"upcycle.max_init_loss_ratio must be >= 1 (1 = the dense model's loss), "
                            f"got {self.max_init_loss_ratio}")

    @property
    def auto_budget(self) -> float:
        """The budget of `auto_measure`."""
        return self.max_init_kl if self.auto_measure == "kl" else self.max_init_loss_ratio


CONFIGS: dict[str, type[UpcycleConfig]] = {}
C = TypeVar("C", bound=type[UpcycleConfig])


def register_config(cls: C) -> C:
    """Register a strategy's dataclass under its `name` (set on the class itself, not inherited, and not taken)."""
    name = cls.__dict__.get("name")
    if not name:
        raise TypeError(f"{cls.__name__} names no strategy: set name: ClassVar[str] = '<strategy>' on it")
    if name in CONFIGS:
        raise ValueError(f"{cls.__name__}: strategy '{name}' is already configured by {CONFIGS[name].__name__}")
    CONFIGS[name] = cls
    return cls


@register_config
@dataclass
class DenseConfig(UpcycleConfig):
    name: ClassVar[str] = "dense"


@register_config
@dataclass
class VanillaConfig(UpcycleConfig):
    name: ClassVar[str] = "vanilla"


def strategy_config(node) -> UpcycleConfig:
    """The `upcycle` group as its strategy's dataclass (unknown knobs are errors)."""
    name = node.get("strategy") if hasattr(node, "get") else node["strategy"]
    if name is None:
        raise UserError(f"upcycle.strategy: not set; choose upcycle=<one of {sorted(CONFIGS)}>")
    if name not in CONFIGS:
        raise UserError(f"upcycle.strategy: unknown strategy '{name}'; known: {sorted(CONFIGS)}")
    schema = CONFIGS[name]
    return to_dataclass(schema, node)


PARTITIONS = ("interleaved", "contiguous", "random")
STAGE1_UPDATES = ("projected", "left", "right", "full")


@register_config
@dataclass
class SPRIConfig(UpcycleConfig):
    name: ClassVar[str] = "spri"
    variant_knobs: ClassVar[tuple[str, ...]] = ("rank", "energy", "auto_measure", "max_init_kl", "max_init_loss_ratio",
                                                "residual_scale", "partition", "stage1_update")
    stage1_trainable: list[str] = field(default_factory=lambda: ["residual", "router"])
    rank: int | None = None  # an int overrides energy
    energy: Any = "auto"  # a float in [0, 1], or auto: the smallest within the budget (auto_measure, base)
    partition: str = "interleaved"
    residual_scale: float = 1.0  # at init only: W_e = P + residual_scale * R_e
    stage1_update: str = "projected"  # projected | left | right | full (stages that train `residual`)

    def check(self) -> None:
        super().check()
        if self.partition not in PARTITIONS:
            raise UserError(f"upcycle.partition must be one of {PARTITIONS}, got '{self.partition}'")
        if self.stage1_update not in STAGE1_UPDATES:
            raise UserError(f"upcycle.stage1_update must be one of {STAGE1_UPDATES}, got '{self.stage1_update}'")
        if self.rank is None and self.energy != "auto" and (
                not isinstance(self.energy, (int, float)) or not 0.0 <= float(self.energy) <= 1.0):
            raise UserError(f"upcycle.energy must be auto or a number in [0, 1] (or set upcycle.rank), "
                             f"got {self.energy!r}")
        if self.rank is not None and self.rank < 0:
            raise UserError(f"upcycle.rank must be >= 0, got {self.rank}")
        if not self.residual_scale > 0.0:
            raise UserError(f"upcycle.residual_scale must be > 0 (at 0 every expert equals P), "
                            f"got {self.residual_scale}")
        if self.residual_scale < MIN_RESIDUAL_SCALE:
            log.warning("upcycle.residual_scale=%g: every expert starts within %g of P times the residual, so "
                        "the experts are identical to float precision (vanilla upcycling in effect)",
                        self.residual_scale, self.residual_scale)
        if self.energy == "auto" and self.rank is None and self.calibration_examples < 1:
            raise UserError("upcycle.energy=auto measures the init loss on calibration batches: set "
                             "upcycle.calibration_examples >= 1, or a fixed upcycle.energy / upcycle.rank")


SVD_MODES = ("weighted", "projected")


@register_config
@dataclass
class ClusterConfig(UpcycleConfig):
    name: ClassVar[str] = "cluster"
    includes: ClassVar[tuple[str, ...]] = ("distill",)  # self-distillation is part of the method (moe=self_distill)
    calibration_examples: int = 512
    kmeans_iters: int = 50
    svd_mode: str = "weighted"
    rank: int | None = None  # an int overrides energy
    energy: float | None = 0.95  # 1.0: every expert is the dense FFN
    shrinkage: float = 0.1  # C_e' = (1 - s) C_e + s C_pool
    ridge: float = 1e-6  # + ridge * (mean eigenvalue) * I: C_e' stays invertible if C_pool is singular
    router_temperature: float = 1.0  # logits = T * cos(x, centroid) * ||x|| / mean ||x||
    min_cluster_tokens: int | None = None  # null: min_cluster_factor * the FFN input dimension
    min_cluster_factor: float = 1.0
    hidden_gram_gib: float = 16.0  # float64 hidden-activation Grams held by one pass-2 pass

    def check(self) -> None:
        super().check()
        if self.svd_mode not in SVD_MODES:
            raise UserError(f"upcycle.svd_mode: '{self.svd_mode}' is not one of {SVD_MODES}")
        if self.calibration_examples < 1:
            raise UserError("upcycle.calibration_examples: cluster upcycling needs at least one example")
        if self.router_temperature <= 0 or self.kmeans_iters < 1:
            raise UserError("upcycle.router_temperature must be > 0 and upcycle.kmeans_iters >= 1")
        if self.rank is None and (self.energy is None or not 0.0 <= float(self.energy) <= 1.0):
            raise UserError(f"upcycle.energy must be in [0, 1] (or set upcycle.rank), got {self.energy!r}")
        if self.rank is not None and self.rank < 0:
            raise UserError(f"upcycle.rank must be >= 0, got {self.rank}")
        if not 0.0 <= self.shrinkage <= 1.0 or self.ridge <= 0:
            raise UserError("upcycle.shrinkage must be in [0, 1] and upcycle.ridge > 0")
        if self.min_cluster_factor < 0 or (self.min_cluster_tokens is not None and self.min_cluster_tokens < 0):
            raise UserError("upcycle.min_cluster_factor and upcycle.min_cluster_tokens must be >= 0")
        if self.hidden_gram_gib <= 0:
            raise UserError("upcycle.hidden_gram_gib must be > 0")


@register_config
@dataclass
class DropConfig(UpcycleConfig):
    name: ClassVar[str] = "drop"
    ratio: float = 0.5
    # One index set per expert shared by W1 rows, b1 and W2 columns (the paper's description);
    # false samples each matrix's indices separately (as the reference code does).
    shared_indices: bool = True
    stats: str = "slice"  # N(mean, std) of the dropped slice's original values, or of the whole "matrix"

    def check(self) -> None:
        """At start-up (config validation), before any model loads."""
        super().check()
        if self.stats not in ("slice", "matrix"):
            raise UserError(f"upcycle.stats must be 'slice' or 'matrix', got '{self.stats}'")
        check_range("upcycle.ratio", self.ratio, 0, 1)


@register_config
@dataclass
class RandomConfig(UpcycleConfig):
    name: ClassVar[str] = "random"
    ratio: float = 0.5  # fraction of intermediate neurons perturbed per expert
    sigma: float = 0.02
    relative_sigma: bool = False  # true: sigma times each weight's std
