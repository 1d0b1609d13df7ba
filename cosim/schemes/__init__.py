"""Training schemes, one module each, registered by name (see `base.scheme`)."""
from . import fedavg, split  # noqa: F401  (registration)
from .base import SCHEMES, LoraConfig, SchemeConfig, scheme

__all__ = ["SCHEMES", "LoraConfig", "SchemeConfig", "scheme"]
