"""Name -> "module:attr" registries, imported lazily, with did-you-mean errors.

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

__all__ = ["BACKENDS", "CONFIG_CHECKS", "CURATORS", "METHODS", "TASKS", "Registry", "did_you_mean", "import_attr",
           "is_import_path", "load_plugins"]


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


BACKENDS = Registry(
    "backend",
    {
        "llamacpp": "s2distill.backends.llamacpp:LlamaCppBackend",
        "vllm": "s2distill.backends.vllm:VLLMBackend",
        "openai": "s2distill.backends.openai:OpenAIBackend",
        "transformers": "s2distill.backends.transformers:TransformersBackend",
        "fake": "s2distill.backends.fake:FakeBackend",
    },
)

TASKS = Registry(
    "task",
    {
        "arithmetic": "s2distill.tasks.arithmetic:ArithmeticTask",
        "gsm8k": "s2distill.tasks.gsm8k:GSM8KTask",
        "last_letter": "s2distill.tasks.last_letter:LastLetterTask",
        "coin_flip": "s2distill.tasks.coin_flip:CoinFlipTask",
        "judge": "s2distill.tasks.judge:JudgeTask",
        "triviaqa_opinion": "s2distill.tasks.triviaqa:TriviaQAOpinionTask",
        "dataset": "s2distill.tasks.dataset:DatasetTask",
    },
)

METHODS = Registry(
    "method",
    {
        "direct": "s2distill.methods.direct:METHOD",
        "cot": "s2distill.methods.cot:METHOD",
        "rar": "s2distill.methods.rar:METHOD",
        "bsm": "s2distill.methods.bsm:METHOD",
        "s2a": "s2distill.methods.s2a:METHOD",
    },
)

CURATORS = Registry(
    "curator",
    {
        "self_consistency": "s2distill.curate:SelfConsistency",
        "none": "s2distill.curate:NoFilter",
        "input_perturbation": "s2distill.perturb:InputPerturbation",
        "swap_consistency": "s2distill.perturb:SwapConsistency",
        "universal_self_consistency": "s2distill.curate:UniversalSelfConsistency",
    },
)

# Config checks that need a component, asked of the component: ``config.validate`` calls each
# ``check_config(cfg)`` in this order (config.py imports none of these modules).
CONFIG_CHECKS = (
    "s2distill.backends:check_config",  # the backend class's own settings (transformers, vllm)
    "s2distill.tasks:check_config",  # task options; eval.both_orders / eval.rewordings against the task
    "s2distill.methods:check_config",  # method options: steps, prompt overrides
    "s2distill.stepwise:check_config",  # train.curriculum and its stage keys
    "s2distill.teacher:check_teacher",  # the teacher section: its model and backend, teacher_system1
    "s2distill.curate:check_config",  # the curator subclasses Curator
)
