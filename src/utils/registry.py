"""Registries of pluggable things: a dict and a decorator that adds to it by name. (Upcycling strategies and
their dataclasses register by the name the dataclass declares: models/upcycling/base.py, config.py.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def make_register(table: dict[str, T]) -> Callable[[str], Callable[[T], T]]:
    def register(name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            table[name] = obj
            return obj

        return deco

    return register


C = TypeVar("C", bound=type)


def make_instance_register(table: dict[str, object]) -> Callable[[str], Callable[[C], C]]:
    """For classes of stateless plug-ins (metrics): the decorator sets ``cls.name`` and registers
    one instance under it; the class itself is returned unchanged. Registration order is kept."""
    def register(name: str) -> Callable[[C], C]:
        def deco(cls: C) -> C:
            cls.name = name
            table[name] = cls()
            return cls

        return deco

    return register

