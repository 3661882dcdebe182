"""Modules loaded on first use (the standard library's ``importlib.util.LazyLoader``).

The methods' files are read by the params validation of every stage, the data stages
included, which never train: they name their arithmetic (``pipeline.distill.losses``, torch)
through ``lazy_import``, so that torch loads when a method first computes, not when its
hyperparameters are checked (torch alone costs ~2 s to import here).
"""
from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """The module `name`, executed at its first attribute access (at once if already loaded).
    Its parent packages are imported now, so they must be light."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
