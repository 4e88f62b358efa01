"""Name -> "module:attr" registries, imported lazily, with did-you-mean errors.

Each registry lives with what it registers (``s2distill.tasks.TASKS``, ``s2distill.methods.METHODS``,
``s2distill.curate.CURATORS``, ``s2distill.backends.BACKENDS``); this module holds the mechanism only and
imports none of them.

Extension points (a task, method, curator or backend defined outside the package):

* ``package.module:attr`` wherever a registry name is accepted (``task.name: my_pkg.tasks:MyTask``);
* a module listed under the config's top-level ``plugins: [my_pkg.tasks]`` is imported before
  validation; it registers its classes with ``TASKS.register("my_task", MyTask)`` (or a
  ``"module:attr"`` string, or as a decorator ``@TASKS.register("my_task")``);
* an installed distribution's entry points in the groups ``s2distill.tasks``, ``s2distill.methods``,
  ``s2distill.curators`` and ``s2distill.backends`` (``my_task = "my_pkg.tasks:MyTask"``), read
  (not imported) the first time a registry is asked for a name it does not know.
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import ConfigError
from .keys import did_you_mean

__all__ = ["Registry", "did_you_mean", "import_attr", "is_import_path", "load_plugins"]


def is_import_path(name: str) -> bool:
    """``package.module:attr`` (a module path, a colon, an attribute path)."""
    module, sep, attr = str(name).partition(":")
    return bool(sep) and all(p.isidentifier() for p in module.split(".")) and all(
        p.isidentifier() for p in attr.split("."))


def import_attr(target: str, kind: str = "object") -> Any:
    """The object named by ``module:attr``; an error naming what is missing."""
    module, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if not e.name or not (module == e.name or module.startswith(e.name + ".")):
            raise  # the module exists but lacks a dependency: that error names the package to install
        raise ConfigError(f"{kind} '{target}': cannot import module '{module}' ({e}); fix: install it or put its "
                          "folder on PYTHONPATH") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{kind} '{target}': module '{module}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    return obj


class Registry:
    def __init__(self, kind: str, entries: dict[str, str], group: str | None = None):
        self.kind = kind
        self.group = group or f"s2distill.{kind}s"  # entry-point group
        self._entries = dict(entries)
        self._objects: dict[str, Any] = {}
        self._entry_points_read = False

    def names(self) -> list[str]:
        self._read_entry_points()
        return sorted(self._entries)

    def register(self, name: str, target: Any = None) -> Any:
        """Register ``target`` ("module:attr" or the object itself) under ``name``; without ``target``,
        a decorator that registers the decorated class or function."""
        if target is None:
            return lambda obj: self.register(name, obj) or obj
        if isinstance(target, str):
            if not is_import_path(target):
                raise ConfigError(f"{self.kind} '{name}': target '{target}' is not 'package.module:attr'")
            self._entries[name] = target
            self._objects.pop(name, None)
        else:
            self._entries[name] = f"{target.__module__}:{target.__qualname__}"
            self._objects[name] = target
        return None

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        from importlib import metadata

        for ep in metadata.entry_points(group=self.group):
            self._entries.setdefault(ep.name, ep.value)

    def target(self, name: str) -> str:
        if name not in self._entries:
            if is_import_path(name):
                return name
            self._read_entry_points()
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)} (known: {', '.join(self.names())}; "
                f"or 'package.module:attr' of your own, or a module under the config's plugins: that registers it)"
            )
        return self._entries[name]

    def get(self, name: str) -> Any:
        if name in self._objects:
            return self._objects[name]
        return import_attr(self.target(name), self.kind)

    def subclass(self, name: str, base: type, fix: str) -> type:
        """The class registered as ``name``, refused (naming ``fix``) unless it subclasses ``base``: a plug-in
        meets the contract by inheriting it, which every consumer can then rely on."""
        cls = self.get(name)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise ConfigError(f"{self.kind} '{name}' ({cls!r}) does not meet the {base.__name__} contract: it is not "
                              f"a subclass of {base.__module__}.{base.__qualname__}; fix: {fix}")
        return cls


def load_plugins(modules: list[str] | tuple[str, ...]) -> None:
    """Import each module of the config's ``plugins`` list (they register their classes on import)."""
    for m in modules or ():
        if not all(p.isidentifier() for p in str(m).split(".")):
            raise ConfigError(f"plugins: '{m}' is not a module name (e.g. my_pkg.tasks)")
        try:
            importlib.import_module(m)
        except ImportError as e:
            raise ConfigError(f"plugins: cannot import '{m}' ({e}); fix: install it or put its folder on "
                              "PYTHONPATH") from None


_MOVED = {"TASKS": "tasks", "METHODS": "methods", "CURATORS": "curate", "BACKENDS": "backends"}  # -> s2distill.<home>


def __getattr__(name: str) -> Any:
    """The four registries live with what they register (this module is below them and imports none)."""
    if name in _MOVED:
        home = f"s2distill.{_MOVED[name]}"
        raise AttributeError(f"s2distill.registry.{name} moved to {home}; fix: `from {home} import {name}`")
    raise AttributeError(f"module 's2distill.registry' has no attribute '{name}'")
