"""Backends: the only place a model is called. Import a backend module only when it is used."""
from .base import Backend, make_backend

__all__ = ["Backend", "make_backend"]
