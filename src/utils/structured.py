"""The one way a config node becomes its typed dataclass (unknown keys and bad types are errors)."""

from __future__ import annotations

from typing import Any, TypeVar

from omegaconf import OmegaConf

T = TypeVar("T")


def to_dataclass(schema: type[T], node: Any) -> T:
    """``node`` (dict or DictConfig, interpolations resolved by the caller) merged over ``schema``'s
    defaults, nested dataclasses included, e.g. a saved model's ``config.moe`` back to MoEConfig."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node))
