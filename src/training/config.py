"""The `trainer` and `pretrain` groups' dataclasses and their start-up checks: torch-free, so validating a
config imports no torch (src/config.py). The names they accept (schedules, parameter groups, selection rules,
parallel modes) are listed here; the modules that implement them import the lists."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from src.utils.errors import UserError
from src.utils.ranges import check_range

PARALLEL_MODES = ("ddp", "fsdp")  # several processes: replicas or sharded (src/training/distributed.py)
RULES = ("last", "best_dev_loss")  # which weights a run ends with (src/training/selection.py)
# The parameter groups stages name in `trainable` (src/training/param_groups.py registers one predicate each).
PARAM_GROUP_NAMES = ("all", "attention", "embeddings", "layer_norm", "encoder", "decoder", "cross_kv", "ffn",
                     "router", "experts", "residual", "shared_expert")


def check_groups(groups: Iterable[str], where: str = "trainable") -> None:
    unknown = [g for g in groups if g not in PARAM_GROUP_NAMES]
    if unknown:
        raise UserError(f"{where}: unknown parameter group(s) {unknown}; known: {sorted(PARAM_GROUP_NAMES)}")


SCHEDULES = ("constant", "linear", "cosine")


@dataclass
class StageConfig:
    name: str = "train"
    steps: int | None = None
    epochs: float | None = None
    lr: float = 1e-3
    schedule: str = "linear"
    warmup_steps: int = 0
    trainable: list[str] = field(default_factory=lambda: ["all"])


@dataclass
class TrainerConfig:
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig()])
    # The optimizer-step budget the stage configs divide (${trainer.total_steps}): every schedule divides the same
    # budget, so strategies compare at equal steps.
    total_steps: int | None = 600
    lr: float = 1e-3  # the peak learning rate the stage configs refer to (${trainer.lr}); a stage may set its own
    warmup_steps: int = 50  # the linear warmup the stage configs refer to (${trainer.warmup_steps})
    # Two-stage schedules (trainer=two_stage): stage 1's share of total_steps and its peak learning rate (the
    # stage configs refer to them); null in one-stage schedules, where setting them is an error.
    stage1_fraction: float | None = None
    stage1_lr: float | None = None
    grad_accum: int = 1
    clip_norm: float | None = 1.0
    weight_decay: float = 0.01
    beta2: float = 0.98
    precision: str = "auto"  # auto: bf16 autocast on a GPU that supports it, fp32 on the CPU | fp32 | bf16
    device: str = "auto"
    log_every: int = 20
    eval_every: int | None = None  # global steps between dev-loss evaluations (None: at the end of each stage)
    max_eval_batches: int | None = 50  # the dev loss reads this many batches (a fixed random subset)
    save_every: int | None = None  # global steps between resumable checkpoints (checkpoints/latest)
    keep_checkpoints: int = 2  # mid-stage step-N checkpoints kept (the older ones are deleted)
    max_nonfinite_steps: int = 10  # skipped steps (non-finite loss or gradient norm) before the run stops
    max_nonfinite_fraction: float = 0.5  # ... or more than this share of a stage's steps skipped
    # Parameter groups never trained, whatever a stage's `trainable` names (e.g. [encoder]: a frozen-encoder
    # fine-tune; model.cached_encoder needs it).
    frozen: list[str] = field(default_factory=list)
    # auto: a rerun of the same command (or a requeued job) continues the unfinished run in its dir, and starts
    # from the beginning when there is none; true: the same, warning when there is nothing to resume; false:
    # start from the beginning, refusing a dir that holds checkpoints (src/training/resume.py Checkpointer.start_point).
    resume: str = "auto"
    progress: bool = True  # tqdm bars (the yaml: ${progress})
    parallel: str = "ddp"  # with several processes (torchrun): ddp (replicas) or fsdp (sharded, FSDP2)
    gradient_checkpointing: bool = False  # recompute activations in the backward pass (memory for time)
    compile: bool = False  # torch.compile the forward (GPU runs; the first steps pay for compilation)
    compile_backend: str = "inductor"  # aot_eager: trace without code generation (to debug a compile problem)
    # Exact reproduction: one CPU thread and deterministic kernels (CPU results otherwise differ at ~1e-7
    # between thread counts, and some CUDA kernels are non-deterministic). Slower.
    deterministic: bool = False
    tune_cpu_malloc: bool = True  # CPU on Linux/glibc: keep freed blocks instead of page-faulting them back each step
    # Which weights the run ends with (src/training/selection.py): `last`, or `best_dev_loss` (dev loss every
    # eval_every steps and at each stage end, over all stages; each improvement saved as checkpoints/best-N/).
    select: str = "last"
    # Average the final weights with the N-1 newest step checkpoints of the last stage (fairseq's
    # average_checkpoints.py) into checkpoints/averaged/; needs save_every, keep_checkpoints >= N-1, select=last.
    average_last: int | None = None
    # Early stopping: stop after P evaluations of the LAST stage without a better dev loss (earlier stages
    # always run their whole budget, or a method would lose the rest of its schedule); needs eval_every.
    patience: int | None = None


def check_trainer_config(cfg: TrainerConfig) -> None:
    """Raise UserError naming the first bad `trainer` key (called when the config is validated)."""
    if not cfg.stages:
        raise UserError("trainer.stages: at least one stage is required")
    for key in ("stage1_fraction", "stage1_lr"):
        if getattr(cfg, key) is not None and len(cfg.stages) < 2:
            raise UserError(f"trainer.{key}={getattr(cfg, key)} applies to a two-stage schedule (trainer=two_stage); "
                            f"this one has {len(cfg.stages)} stage: drop the override")
    names = [s.name for s in cfg.stages]
    if len(set(names)) != len(names):
        raise UserError(f"trainer.stages: stage names must be unique, got {names}")
    _check_ranges(cfg)
    check_range("trainer.beta2", cfg.beta2, 0, 1, low_open=True, high_open=True)
    for i, stage in enumerate(cfg.stages):
        check_stage(stage, f"trainer.stages[{i}]")
    if cfg.precision == "fp16":
        raise UserError("trainer.precision=fp16 is not supported (no loss scaling); use bf16")
    if cfg.precision not in ("auto", "fp32", "bf16"):
        raise UserError(f"trainer.precision: '{cfg.precision}' is not one of auto, fp32, bf16")
    if cfg.grad_accum < 1:
        raise UserError("trainer.grad_accum must be >= 1")
    if cfg.parallel not in PARALLEL_MODES:
        raise UserError(f"trainer.parallel: '{cfg.parallel}' is not one of {PARALLEL_MODES}")
    resume_mode(cfg)
    check_groups(cfg.frozen, "trainer.frozen")
    check_selection(cfg)


RESUME_MODES = ("auto", "true", "false")


def resume_mode(cfg: TrainerConfig) -> str:
    """trainer.resume as one of RESUME_MODES (yaml and Python give booleans; the key is a string)."""
    mode = str(cfg.resume).lower()
    if mode not in RESUME_MODES:
        raise UserError(f"trainer.resume: '{cfg.resume}' is not one of {', '.join(RESUME_MODES)}")
    return mode


def _check_ranges(cfg: TrainerConfig) -> None:
    """The numeric keys' bounds (a table)."""
    check_range("trainer.stage1_fraction", cfg.stage1_fraction, 0, 1, low_open=True, high_open=True, optional=True)
    check_range("trainer.stage1_lr", cfg.stage1_lr, 0, low_open=True, optional=True)
    for key, value, low, kw in (
        ("trainer.total_steps", cfg.total_steps, 1, {"optional": True, "integer": True}),
        ("trainer.lr", cfg.lr, 0, {"low_open": True}),
        ("trainer.warmup_steps", cfg.warmup_steps, 0, {"integer": True}),
        ("trainer.clip_norm", cfg.clip_norm, 0, {"low_open": True, "optional": True}),
        ("trainer.weight_decay", cfg.weight_decay, 0, {}),
        ("trainer.log_every", cfg.log_every, 1, {"integer": True}),
        ("trainer.eval_every", cfg.eval_every, 1, {"optional": True, "integer": True}),
        ("trainer.max_eval_batches", cfg.max_eval_batches, 1, {"optional": True, "integer": True}),
        ("trainer.save_every", cfg.save_every, 1, {"optional": True, "integer": True}),
        ("trainer.keep_checkpoints", cfg.keep_checkpoints, 1, {"integer": True}),
        ("trainer.max_nonfinite_steps", cfg.max_nonfinite_steps, 0, {"integer": True}),
        ("trainer.max_nonfinite_fraction", cfg.max_nonfinite_fraction, 0, {"high": 1}),
        ("trainer.average_last", cfg.average_last, 1, {"optional": True, "integer": True}),
        ("trainer.patience", cfg.patience, 1, {"optional": True, "integer": True}),
    ):
        check_range(key, value, low, **kw)


def check_stage(s: StageConfig, where: str) -> None:
    """One stage's keys: exactly one of steps / epochs, positive lr, a known schedule and parameter groups."""
    if (s.steps is None) == (s.epochs is None):
        raise UserError(f"{where}: set exactly one of steps or epochs")
    check_range(f"{where}.steps", s.steps, 1, optional=True, integer=True)
    check_range(f"{where}.epochs", s.epochs, 0, low_open=True, optional=True)
    check_range(f"{where}.lr", s.lr, 0, low_open=True)
    check_range(f"{where}.warmup_steps", s.warmup_steps, 0, integer=True)
    if s.schedule not in SCHEDULES:
        raise UserError(f"{where}.schedule: '{s.schedule}' is not one of {SCHEDULES}")
    check_groups(s.trainable, f"{where}.trainable")


def check_selection(cfg) -> None:
    """One-line UserErrors naming the key (called by check_trainer_config)."""
    if cfg.select not in RULES:
        raise UserError(f"trainer.select: '{cfg.select}' is not one of {RULES}")
    if cfg.patience is not None and not cfg.eval_every:
        raise UserError(f"trainer.patience={cfg.patience} needs trainer.eval_every (the steps between the "
                        "dev-loss evaluations it counts)")
    n = cfg.average_last
    if n is None or n <= 1:
        return
    if cfg.select != "last":
        raise UserError(f"trainer.average_last={n} and trainer.select={cfg.select} are exclusive (one selection "
                        "rule per run); set trainer.select=last or trainer.average_last=null")
    if not cfg.save_every:
        raise UserError(f"trainer.average_last={n} needs trainer.save_every (the step checkpoints it averages)")
    if n > cfg.keep_checkpoints + 1:
        raise UserError(f"trainer.average_last={n} averages the final weights and {n - 1} step checkpoints, but "
                        f"trainer.keep_checkpoints={cfg.keep_checkpoints} keeps only {cfg.keep_checkpoints}; "
                        f"set trainer.keep_checkpoints>={n - 1}")


@dataclass
class PretrainRecipe:
    """How the toy dense model is pretrained (English ASR on the toy corpus)."""

    steps: int = 1000
    lr: float = 3e-3
    warmup_steps: int = 100
    vocab_size: int = 2000
    max_batch_frames: int = 10240
    max_batch_size: int = 32
    seed: int = 0  # conf/pretrain/toy.yaml sets ${seed}: each run seed pretrains (once, then cached) its own model
    device: str = "auto"
    ctc_weight: float = 0.5  # encoder CTC auxiliary loss during pretraining only (alignment is learned much sooner)
    # CPU threads per process while pretraining on the CPU. 1: bit-reproducible (two 2-thread runs of the same
    # seed on one machine differed at ~1e-7 after 60 steps, 2.4e-7 without the CTC head: intra-op reductions).
    # null: torch's default.
    cpu_threads: int | None = 1
    # Data-parallel processes on the CPU (gloo; ignored on a GPU and inside a torchrun job): each takes half of
    # every batch (the caps above are the global batch's), so the steps and batch sizes stay the recipe's.
    # Bit-reproducible like one process (two ranks' all-reduce is a single commutative sum) and 1.63x faster on 2
    # cores (docs/benchmarks.md), where one one-thread process leaves a core idle; the model differs from a
    # 1-process one (other batch halves, other float sums), so the count is part of the cache key.
    processes: int = 2

    def check(self) -> None:
        for key, low in (("steps", 1), ("vocab_size", 1), ("max_batch_frames", 1), ("max_batch_size", 1),
                         ("processes", 1), ("warmup_steps", 0)):
            check_range(f"pretrain.{key}", getattr(self, key), low, integer=True)
        check_range("pretrain.lr", self.lr, 0, low_open=True)
        check_range("pretrain.ctc_weight", self.ctc_weight, 0)
