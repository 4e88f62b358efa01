"""Tasks: load examples, build the System 1 prompt, extract and score answers.

A task is a small class with ``load(split, n, seed)``, ``system1_messages(example)``,
``extract(text)`` and ``score(prediction, gold)``. Task-specific options come from
``task.options`` in the config and are validated by the task's ``Options`` dataclass.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any

from ..errors import ConfigError, DataError
from ..registry import TASKS, did_you_mean


def parse_options(cls: Any, options: dict, task: str) -> Any:
    hints = typing.get_type_hints(cls)
    for k in options:
        if k not in hints:
            raise ConfigError(f"unknown option task.options.{k} for task '{task}'{did_you_mean(k, hints)} "
                              f"(allowed: {', '.join(hints)})")
    from ..config import _coerce

    return cls(**{k: _coerce(v, hints[k], f"task.options.{k}") for k, v in options.items()})


def make_task(task_cfg: Any) -> Any:
    cls = TASKS.get(task_cfg.name)
    opts = parse_options(cls.Options, dict(task_cfg.options), task_cfg.name)
    return cls(opts)


def hub_rows(hf_id: str, split: str, config: str | None = None, *, offline_fix: str) -> list[dict]:
    """Rows of an HF ``datasets`` split (needs internet). Errors name the local-file alternative."""
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"loading '{hf_id}' from the HF hub needs `pip install datasets` (s2distill[hub]); "
                          f"or {offline_fix}") from None
    try:
        ds = datasets.load_dataset(hf_id, config, split=split)
    except Exception as e:  # network, unknown id or split, ...
        raise DataError(f"cannot load HF dataset '{hf_id}' split '{split}' ({type(e).__name__}: {e}); "
                        f"offline? {offline_fix}") from None
    return [dict(r) for r in ds]


__all__ = ["hub_rows", "make_task", "parse_options", "dataclasses"]
