"""Backends: the only place a model is called. Import a backend module only when it is used."""
from typing import Any

from .base import Backend, make_backend

__all__ = ["Backend", "check_config", "make_backend"]


def check_config(cfg: Any) -> None:
    """The configured backend class subclasses Backend and checks its own settings (``Backend.check_config``)."""
    from ..errors import ConfigError
    from ..registry import BACKENDS

    cls = BACKENDS.get(cfg.backend.name)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ConfigError(f"backend '{cfg.backend.name}' ({cls!r}) is not a subclass of s2distill.backends.base.Backend; "
                          "fix: `class MyBackend(Backend)` with classmethod config_kwargs(cls, cfg, weights, trained)")
    cls.check_config(cfg)
