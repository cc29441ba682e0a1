"""The one way pluggable things are registered: a dict and a decorator that adds to it by name."""

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
