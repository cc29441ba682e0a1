"""The strategy registry and what every strategy shares (config base, router and bias init)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from src.models.moe import MoEBlock
from src.models.upcycling.config import UpcycleConfig
from src.utils.extension import TrainerExtension
from src.utils.registry import make_instance_register


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

    def extensions(self, cfg: UpcycleConfig, fit: dict[str, Any]) -> list[TrainerExtension]:
        """The trainer extensions this strategy's training needs, given the final ``cfg`` (an `auto` knob
        resolved) and the fit (SPRI: its residual-spectrum stage 1, handed P's subspaces)."""
        return []


STRATEGIES: dict[str, Strategy] = {}


register_strategy = make_instance_register(STRATEGIES)  # one instance per class: strategies are stateless


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
