"""Backends: the only place a model is called. Import a backend module only when it is used."""
from typing import Any

from .base import Backend, make_backend

__all__ = ["Backend", "check_config", "make_backend"]


def check_config(cfg: Any) -> None:
    """The configured backend class checks its own settings (its optional ``check_config(cfg)`` classmethod)."""
    from ..registry import BACKENDS

    check = getattr(BACKENDS.get(cfg.backend.name), "check_config", None)
    if callable(check):
        check(cfg)
