"""The strategy registry and what every strategy shares (config base, router and bias init)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from src.models.moe import MoEBlock
from src.utils.errors import UserError
from src.utils.extension import TrainerExtension
from src.utils.registry import make_instance_register
from src.utils.structured import to_dataclass

CALIBRATION_TASKS = ("auto", "translate", "transcribe")
AUTO_MEASURES = ("kl", "ce_ratio")


@dataclass
class UpcycleConfig:
    """Options common to every strategy; each strategy extends it with its own knobs."""

    strategy: str = "dense"
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


@dataclass
class Calibration:
    """What `Strategy.fit` may read, gathered on the still-dense model before any MoE layer is installed."""

    model: nn.Module
    layers: list[tuple[str, nn.Module]]  # (name, dense layer) of the layers to upcycle
    batches: list[dict]  # the calibration batches (empty when none were drawn)
    inputs: dict[str, torch.Tensor]  # each layer's captured FFN inputs (a seeded token sample)
    num_experts: int


class Strategy:
    """Turns one dense FFN (fc1, fc2) into an initialised MoEBlock: `fit` once per upcycling (per-layer state:
    an SVD, a clustering; None for data-free strategies), then `init_experts` per block (again for every value
    an `auto` knob tries); `extensions` are the trainer extensions its schedule needs."""

    name: str = ""
    config: type[UpcycleConfig] = UpcycleConfig
    is_moe: bool = True
    needs_calibration: bool = False  # fit reads the calibration data

    def auto_knob(self, cfg: UpcycleConfig) -> str | None:
        """The knob set to `auto`, chosen in [0, 1] by bisection on the init's disruption (apply.search_knob)."""
        return None

    def fit(self, calibration: Calibration, cfg: UpcycleConfig) -> dict[str, Any]:
        """{layer name: state init_experts receives}; default: none (a data-free strategy)."""
        return {name: None for name, _ in calibration.layers}

    def init_experts(self, moe: MoEBlock, fc1: nn.Linear, fc2: nn.Linear, cfg: UpcycleConfig,
                     gen: torch.Generator, state: Any = None) -> dict:
        """Fill moe's experts and router from the layer's ``state`` (may be called again on the same moe: it must
        overwrite everything); returns extra report fields (e.g. reconstruction_error)."""
        raise NotImplementedError

    def extensions(self, cfg: UpcycleConfig) -> list[TrainerExtension]:
        """The trainer extensions this strategy's training needs (SPRI: its residual-spectrum stage 1)."""
        return []


STRATEGIES: dict[str, Strategy] = {}


register_strategy = make_instance_register(STRATEGIES)  # one instance per class: strategies are stateless


def strategy_config(node) -> UpcycleConfig:
    """The `upcycle` group as its strategy's dataclass (unknown knobs are errors)."""
    name = node.get("strategy") if hasattr(node, "get") else node["strategy"]
    if name is None:
        raise UserError(f"upcycle.strategy: not set; conf/upcycle/base.yaml holds the shared defaults, not a strategy: "
                        f"choose upcycle=<one of {sorted(STRATEGIES)}>")
    if name not in STRATEGIES:
        raise UserError(f"upcycle.strategy: unknown strategy '{name}'; known: {sorted(STRATEGIES)}")
    schema = STRATEGIES[name].config
    return to_dataclass(schema, node)


def normal_on(like: torch.Tensor, shape: torch.Size | tuple[int, ...], gen: torch.Generator, std: float = 1.0,
              mean: float = 0.0) -> torch.Tensor:
    """N(mean, std^2) noise of ``shape`` drawn from ``gen`` (a CPU generator: the same numbers on every device),
    computed in float32 and moved to ``like``'s device, so a bank already on a GPU can take it."""
    noise = torch.randn(shape, generator=gen) * std
    return (noise + mean if mean else noise).to(like.device)


@torch.no_grad()
def init_router(moe: MoEBlock, std: float, gen: torch.Generator) -> None:
    w = moe.router.weight
    w.copy_(normal_on(w, w.shape, gen, std))


@torch.no_grad()
def copy_dense(moe: MoEBlock, fc1: nn.Linear, fc2: nn.Linear) -> None:
    """Every expert (and the biases) an exact copy of the dense FFN; shared expert too."""
    bank = moe.experts
    bank.b1.copy_(fc1.bias.expand_as(bank.b1))
    bank.b2.copy_(fc2.bias.expand_as(bank.b2))
    bank.w1.copy_(fc1.weight.expand_as(bank.w1))
    bank.w2.copy_(fc2.weight.expand_as(bank.w2))
    if moe.shared_expert is not None:
        moe.shared_expert[0].load_state_dict(fc1.state_dict())
        moe.shared_expert[2].load_state_dict(fc2.state_dict())
