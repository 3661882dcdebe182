"""Registries of names: methods, data sets, model families, topology engines.

A leaf module (it imports nothing of the project but its errors), after torchdistill's
``losses/registry.py``: the modules that define the entries import a registry and register into
it, never the other way round. A registry may also hold *lazy* entries, ``"module:attribute"``
strings loaded on first lookup, so that its names are known without importing what is behind
them (the topology engines' numba kernels, for one). A lazy entry ``"module"`` without an
attribute names a module that registers the entry itself when imported (the distillation
methods, one file each: a stage that trains with one method imports no other method's file).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Iterator, Mapping

from pipeline.errors import ParamsError


class Registry(Mapping[str, Any]):
    """Name -> entry. ``@REGISTRY.register("name")`` adds a definition; ``REGISTRY[name]``
    looks one up (loading a lazy entry); ``REGISTRY.lookup(name, key)`` does the same and
    fails as one line naming the params key and the known names."""

    def __init__(self, kind: str, lazy: Mapping[str, str] | None = None):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._lazy: dict[str, str] = dict(lazy or {})

    def register(self, name: str) -> Callable[[Any], Any]:
        def deco(entry: Any) -> Any:
            # a lazy "module" entry is filled by that module's own registration
            fills_lazy = self._lazy.get(name) == getattr(entry, "__module__", None)
            if name in self._entries or (name in self._lazy and not fills_lazy):
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = entry
            return entry
        return deco

    def unregister(self, name: str) -> None:
        """Remove an entry (tests register throw-away methods and data sets)."""
        self._entries.pop(name, None)
        self._lazy.pop(name, None)

    # item assignment replaces an entry without the twice-registered check (pytest's
    # monkeypatch.setitem swaps an engine or a loader for one test and restores it)
    def __setitem__(self, name: str, entry: Any) -> None:
        self._lazy.pop(name, None)
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self.unregister(name)

    def names(self) -> list[str]:
        return sorted({*self._entries, *self._lazy})

    def lookup(self, name: Any, key: str | None = None) -> Any:
        if not isinstance(name, str) or name not in self:
            where = f"{key}={name!r}: " if key else ""
            raise ParamsError(f"{where}unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self[name]

    def __getitem__(self, name: str) -> Any:
        if name not in self._entries and name in self._lazy:
            module, _, attribute = self._lazy[name].partition(":")
            loaded = importlib.import_module(module)
            if attribute:
                self._entries[name] = getattr(loaded, attribute)
            elif name not in self._entries:
                raise LookupError(f"{module} registers no {self.kind} named {name!r} "
                                  f"(a file's name must be the name it registers)")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
