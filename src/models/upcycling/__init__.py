"""Upcycling strategies: one module each, registered by name (`upcycle.strategy`)."""

from src.models.upcycling import cluster, dense, drop, random, spri, vanilla  # noqa: F401,E402  (registration)
from src.models.upcycling.base import (  # noqa: F401
    STRATEGIES,
    Strategy,
    UpcycleConfig,
    register_strategy,
    strategy_config,
)
