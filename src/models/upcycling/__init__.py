"""Upcycling strategies: one module each, registered by name (`upcycle.strategy`)."""

from src.models.upcycling import cluster, dense, drop, random, spri, vanilla  # noqa: F401,E402  (registration)
from src.models.upcycling.base import STRATEGIES, Strategy, UpcycleConfig, register_strategy  # noqa: F401
