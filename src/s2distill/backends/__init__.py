"""Backends: the only place a model is called. Import a backend module only when it is used."""
from typing import Any

from .base import BACKENDS, Backend, backend_class, make_backend

__all__ = ["BACKENDS", "Backend", "backend_class", "check_config", "make_backend"]


def check_config(cfg: Any) -> None:
    """The configured backend class subclasses Backend and checks its own settings (``Backend.check_config``)."""
    backend_class(cfg.backend.name).check_config(cfg)
