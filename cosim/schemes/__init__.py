"""Training schemes, one module each, registered by name (see `base.scheme`).

Every module in this package is imported here so that its `@scheme` registration runs; adding a
scheme is adding a file.
"""
import importlib
import pkgutil

from .base import SCHEMES, LoraConfig, SchemeConfig, scheme

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "common"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["SCHEMES", "LoraConfig", "SchemeConfig", "scheme"]
