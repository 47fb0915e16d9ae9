"""Every loss the service computes, one module each, found by importing the package.

``load()`` imports all submodules once so that their ``@register`` decorators run; the HTTP
layer and the tests reach losses only through ``service.losses.registry``.
"""

from __future__ import annotations

import importlib
import pkgutil

_INFRASTRUCTURE = {"base", "registry", "reduction", "common", "broadcasting", "distances"}
_loaded = False


def is_loaded() -> bool:
    """Whether ``load`` has imported every loss module."""
    return _loaded


def load() -> None:
    """Import every loss module of this package (idempotent)."""
    global _loaded
    if _loaded:
        return
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name not in _INFRASTRUCTURE and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True
