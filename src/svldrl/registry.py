"""Explicit name -> object registries (methods, backbones, noise kinds).

Explicit registration keeps the list of valid names in one place, so a typo on the command line
gets the list and the nearest name instead of a KeyError deep inside the trainer.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that is not in a registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """A named collection of objects with aliases and did-you-mean lookups."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name`` (and its aliases)."""

        def decorate(obj: T) -> T:
            self.add(name, obj, aliases=aliases)
            return obj

        return decorate

    def add(self, name: str, obj: T, *, aliases: tuple[str, ...] = ()) -> None:
        if name in self._items or name in self._aliases:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj
        for alias in aliases:
            self._aliases[alias] = name

    def canonical(self, name: str) -> str:
        """The registered spelling of ``name`` (resolving aliases); raises with suggestions."""
        key = name.strip().lower().replace("_", "-")
        if key in self._items:
            return key
        if key in self._aliases:
            return self._aliases[key]
        valid = sorted(self._items)
        close = difflib.get_close_matches(key, valid + sorted(self._aliases), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"unknown {self.kind} {name!r}.{hint} Valid: {', '.join(valid)}")

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        try:
            self.canonical(str(name))
        except UnknownNameError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
