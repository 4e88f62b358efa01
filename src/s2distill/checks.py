"""The checks that need a component, run where the components are built (``Pipeline``, ``s2distill validate``).

``config.load_config`` parses and type-checks a config and runs the checks it can make on its own; it imports
no component. This module is the next step: it imports the config's plug-ins, resolves every registered name
(an unknown one fails with suggestions) and asks each component to check its part of the config: the backend
its settings, the task its options and what ``eval`` asks of it, the method its options and prompt
overrides, the curriculum its keys, the curator the contract; then the GPU-fit keys of ``train``.
"""
from __future__ import annotations

from pathlib import Path

from . import backends, curate, methods, stepwise, tasks
from .config import RunConfig, load_config
from .train.config import TrainConfig
from .registry import is_import_path, load_plugins


def _resolve(registry, name: str) -> None:
    registry.target(name)  # an unknown name fails here, with suggestions
    if is_import_path(name):  # your own class: import it now, so a typo fails here
        registry.get(name)


def check(cfg: RunConfig) -> RunConfig:
    """Every component check of ``cfg`` (a ConfigError names the key and the fix); returns ``cfg``."""
    load_plugins(cfg.plugins)
    for registry, name in ((backends.BACKENDS, cfg.backend.name), (tasks.TASKS, cfg.task.name),
                           (methods.METHODS, cfg.method.name), (curate.CURATORS, cfg.curate.name)):
        _resolve(registry, name)
    if cfg.teacher is not None:
        _resolve(backends.BACKENDS, cfg.teacher.backend.name)
    if cfg.eval.retention:
        for t in cfg.eval.retention_tasks:
            tasks.TASKS.target(t)
    TrainConfig.from_section(cfg.train, cfg.seed)  # the trainer's settings: the fit keys, the method, the steps
    backends.check_config(cfg)  # the backend class's own settings (transformers, vllm)
    tasks.check_config(cfg)  # task options; eval.both_orders / eval.rewordings against the task
    methods.check_config(cfg)  # method options: steps, prompt overrides
    stepwise.check_config(cfg)  # train.curriculum and its stage keys
    curate.check_config(cfg)  # the curator subclasses Curator
    return cfg


def load_checked(path: str | Path | None = None, overrides: list[str] | None = None,
                 data: dict | None = None) -> RunConfig:
    """:func:`s2distill.config.load_config`, then :func:`check`: a config every component accepts."""
    return check(load_config(path, overrides, data))
