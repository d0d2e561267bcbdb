"""Registries fill themselves when their package's modules are imported: `import_submodules` does that."""

from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package: str) -> None:
    """Import every module of `package` (e.g. "nasrun.nets"), so each runs its registration decorators."""
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{module.name}")
