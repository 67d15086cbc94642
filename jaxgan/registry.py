"""Name -> implementation tables, so configs pick parts by string and typos fail early."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from jaxgan.errors import ConfigError

T = TypeVar("T")


class UnknownNameError(ConfigError):
  """A config named something that no registry knows."""


class Registry(Generic[T]):
  """A small, explicit table of named implementations (models, losses, ...)."""

  def __init__(self, kind: str):
    self.kind = kind
    self._items: dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    def decorator(item: T) -> T:
      if name in self._items:
        raise ValueError(f"{self.kind} {name!r} is registered twice")
      self._items[name] = item
      return item

    return decorator

  def get(self, name: str) -> T:
    if name not in self._items:
      raise UnknownNameError(self.unknown_message(name))
    return self._items[name]

  def unknown_message(self, name: str) -> str:
    valid = ", ".join(sorted(self._items))
    close = difflib.get_close_matches(str(name), self._items, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {self.kind} {name!r}.{hint} Valid choices: {valid}."

  def names(self) -> list[str]:
    return sorted(self._items)

  def __contains__(self, name: object) -> bool:
    return name in self._items

  def __iter__(self) -> Iterator[str]:
    return iter(sorted(self._items))
