"""The strategy registry and what every strategy shares (its generic shape, facts, router and bias init)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar, get_args, get_origin

import torch
from torch import nn

from src.models.moe import MoEBlock
from src.models.upcycling.config import CONFIGS, UpcycleConfig
from src.utils.extension import TrainerExtension


@dataclass
class Calibration:
    """What `Strategy.fit` may read, gathered on the still-dense model before any MoE layer is installed."""

    model: nn.Module
    layers: list[tuple[str, nn.Module]]  # (name, dense layer) of the layers to upcycle
    batches: list[dict]  # the calibration batches (empty when none were drawn)
    inputs: dict[str, torch.Tensor]  # each layer's captured FFN inputs (a seeded token sample)
    num_experts: int


@dataclass(frozen=True)
class StrategyFacts:
    """What the upcycling and the builders read about a strategy before running it."""

    is_moe: bool = True  # false: the dense baseline (no MoE layer installed, no calibration batches drawn)
    needs_calibration: bool = False  # its fit reads the calibration batches (none given: an error up front)


Cfg = TypeVar("Cfg", bound=UpcycleConfig)
State = TypeVar("State")


class Strategy(Generic[Cfg, State]):
    """Turns one dense FFN (fc1, fc2) into an initialised MoEBlock: `fit` once per upcycling (per-layer
    ``State``: an SVD, a clustering; None for a `DataFree` strategy), then `init_experts` per block (again for
    every value an `auto` knob tries); `extensions` are the trainer extensions its schedule needs.

    A subclass is declared as ``Strategy[ItsConfig, ItsState]``: ``config`` is read from that parameter, and the
    strategy's name from the config (`register_strategy`)."""

    config: type[Cfg]
    facts: ClassVar[StrategyFacts] = StrategyFacts()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__dict__.get("__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, Strategy):
                configs = [a for a in get_args(base) if isinstance(a, type) and issubclass(a, UpcycleConfig)]
                if configs:
                    cls.config = configs[0]

    @property
    def name(self) -> str:
        return self.config.name

    def auto_knob(self, cfg: Cfg) -> str | None:
        """The knob set to `auto`, chosen in [0, 1] by bisection on the init's disruption (apply.search_knob)."""
        return None

    def fit(self, calibration: Calibration, cfg: Cfg) -> dict[str, State]:
        """{layer name: the state init_experts receives for it}."""
        raise NotImplementedError

    def init_experts(self, moe: MoEBlock, fc1: nn.Linear, fc2: nn.Linear, cfg: Cfg, gen: torch.Generator,
                     state: State) -> dict:
        """Fill moe's experts and router from the layer's ``state`` (may be called again on the same moe: it must
        overwrite everything); returns extra report fields (e.g. reconstruction_error)."""
        raise NotImplementedError

    def extensions(self, cfg: Cfg, fit: dict[str, State]) -> list[TrainerExtension]:
        """The trainer extensions this strategy's training needs, given the final ``cfg`` (an `auto` knob
        resolved) and the fit (SPRI: its residual-spectrum stage 1, handed P's subspaces)."""
        return []


class DataFree(Strategy[Cfg, None]):
    """A strategy whose init reads only the dense FFN and the generator: nothing to fit."""

    def fit(self, calibration: Calibration, cfg: Cfg) -> dict[str, None]:
        return {name: None for name, _ in calibration.layers}


STRATEGIES: dict[str, Strategy] = {}
S = TypeVar("S", bound=type[Strategy])


def register_strategy(cls: S) -> S:
    """Register one instance of ``cls`` (strategies are stateless) under its config's name: the config must be
    the one CONFIGS holds for that name, and no other strategy may have taken it."""
    config = getattr(cls, "config", None)
    name = getattr(config, "name", "")
    if config is None or CONFIGS.get(name) is not config:
        raise TypeError(f"{cls.__name__}: declare it as Strategy[<config>, <state>] with a config registered in "
                        f"src/models/upcycling/config.py (got {getattr(config, '__name__', None)})")
    if name in STRATEGIES:
        raise ValueError(f"{cls.__name__}: strategy '{name}' (its config {config.__name__}) is already "
                         f"{type(STRATEGIES[name]).__name__}")
    STRATEGIES[name] = cls()
    return cls


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
