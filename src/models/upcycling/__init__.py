"""Upcycling strategies: one module each, registered by name (`upcycle.strategy`); each strategy's config
dataclass is registered in the torch-free `config.py`.

The strategy registry loads on first use (PEP 562): validating a config imports `src.models.upcycling.config`,
which must not import the strategies (they import torch)."""

from __future__ import annotations

_EXPORTS = ("STRATEGIES", "Strategy", "register_strategy")


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from src.models.upcycling import base, cluster, dense, drop, random, spri, vanilla  # noqa: F401  (registration)

    return getattr(base, name)
