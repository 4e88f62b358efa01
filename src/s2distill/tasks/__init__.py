"""Tasks: load examples, build the System 1 prompt, extract and score answers.

A task is a small class with ``load(split, n, seed)``, ``system1_messages(example)``,
``extract(text)`` and ``score(prediction, gold)``; the contract, with its optional hooks, is
``tasks.base.Task``. Task-specific options come from ``task.options`` in the config and are
validated by the task's ``Options`` dataclass.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..keys import build
from ..registry import TASKS


def parse_options(cls: Any, options: dict, task: str) -> Any:
    return build(cls, options, "task.options", unknown=lambda k: f"unknown option task.options.{k} for task '{task}'")


def make_task(task_cfg: Any) -> Any:
    cls = TASKS.get(task_cfg.name)
    missing = [a for a in ("Options", "load", "extract") if not hasattr(cls, a)]
    if missing or not dataclasses.is_dataclass(getattr(cls, "Options", None)):
        raise ConfigError(f"task '{task_cfg.name}' ({cls!r}) does not meet the Task contract: it needs "
                          f"{', '.join(missing) or 'Options as a dataclass'}; see s2distill.tasks.base.Task")
    opts = parse_options(cls.Options, dict(task_cfg.options), task_cfg.name)
    return cls(opts)


def check_config(cfg: Any) -> None:
    """The task's options, and what ``eval`` asks of the task (asked by ``config.validate``)."""
    task = make_task(cfg.task)
    swaps = callable(getattr(task, "perturb", None)) and callable(getattr(task, "unperturb_answer", None))
    if cfg.eval.both_orders and not swaps:
        raise ConfigError(f"eval.both_orders needs a pairwise judge task (task.name=judge); task '{cfg.task.name}' "
                          "cannot swap its inputs: set eval.both_orders=false")
    if cfg.eval.rewordings:
        n_max = getattr(task, "n_perturbations", 0) if callable(getattr(task, "perturb", None)) else 0
        if cfg.eval.rewordings > n_max:
            raise ConfigError(f"eval.rewordings={cfg.eval.rewordings} but task '{cfg.task.name}' has "
                              f"{n_max} rewordings of its input; set eval.rewordings to at most {n_max}")


def is_dataset_dir(path: Path) -> bool:
    """A local copy of an HF dataset: a hub repo clone/snapshot (README.md, parquet/arrow data files)
    or a ``save_to_disk`` directory. Such directories load through :func:`hub_rows` like a hub id."""
    if not path.is_dir():
        return False
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file() or (path / "README.md").is_file():
        return True
    return any(next(path.glob(f"**/*.{ext}"), None) for ext in ("parquet", "arrow"))


def hub_rows(hf_id: str, split: str, config: str | None = None, *, offline_fix: str) -> list[dict]:
    """Rows of an HF ``datasets`` split (needs internet), or of a local dataset directory in the same format.

    Errors name the local-file alternative.
    """
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"loading '{hf_id}' from the HF hub needs `pip install datasets` (s2distill[hub]); "
                          f"or {offline_fix}") from None
    local = Path(hf_id).expanduser()
    try:
        if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():  # save_to_disk
            ds = datasets.load_from_disk(str(local))
            ds = ds[split] if isinstance(ds, datasets.DatasetDict) else ds
            return [dict(r) for r in ds]
        if local.is_dir() and config and not _declares_config(local, config):
            config = None  # a plain data folder has one default config; only a repo's README names others
        ds = datasets.load_dataset(hf_id, config, split=split)
    except Exception as e:  # network, unknown id or split, ...
        raise DataError(f"cannot load HF dataset '{hf_id}' split '{split}' ({type(e).__name__}: {e}); "
                        f"offline? {offline_fix}") from None
    return [dict(r) for r in ds]


def _declares_config(repo: Path, config: str) -> bool:
    readme = repo / "README.md"
    return readme.is_file() and f"config_name: {config}" in readme.read_text(encoding="utf-8", errors="replace")


__all__ = ["check_config", "hub_rows", "is_dataset_dir", "make_task", "parse_options", "dataclasses"]
