"""Tasks: load examples, build the System 1 prompt, extract and score answers.

A task is a small class with ``load(split, n, seed)``, ``system1_messages(example)``,
``extract(text)`` and ``score(prediction, gold)``; the contract, with its optional hooks, is
``tasks.base.Task``. Task-specific options come from ``task.options`` in the config and are
validated by the task's ``Options`` dataclass.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import ConfigError
from ..keys import build
from ..registry import Registry
from .base import LocalData, Pairwise, Perturbable, Task

# the registered tasks (plug-ins add theirs: ``TASKS.register("mine", MyTask)``; modules imported on use)
TASKS = Registry("task", {
    "arithmetic": "s2distill.tasks.arithmetic:ArithmeticTask",
    "gsm8k": "s2distill.tasks.gsm8k:GSM8KTask",
    "last_letter": "s2distill.tasks.last_letter:LastLetterTask",
    "coin_flip": "s2distill.tasks.coin_flip:CoinFlipTask",
    "judge": "s2distill.tasks.judge:JudgeTask",
    "triviaqa_opinion": "s2distill.tasks.triviaqa:TriviaQAOpinionTask",
    "dataset": "s2distill.tasks.dataset:DatasetTask",
})


def parse_options(cls: Any, options: dict, task: str) -> Any:
    return build(cls, options, "task.options", unknown=lambda k: f"unknown option task.options.{k} for task '{task}'")


def make_task(task_cfg: Any) -> Any:
    cls = TASKS.subclass(task_cfg.name, Task, "`class MyTask(Task)` with load, extract and an Options dataclass "
                                              "(optional abilities are mixins there: FewShot, Perturbable, ...)")
    missing = sorted(cls.__abstractmethods__) + ([] if dataclasses.is_dataclass(cls.Options) else ["Options dataclass"])
    if missing:
        raise ConfigError(f"task '{task_cfg.name}' ({cls.__name__}) does not meet the Task contract: it needs "
                          f"{', '.join(missing)}; see s2distill.tasks.base.Task")
    opts = parse_options(cls.Options, dict(task_cfg.options), task_cfg.name)
    task = cls(opts)
    task.system_prompt = task_cfg.system_prompt  # one System 1 system turn for training and inference
    return task


def check_config(cfg: Any) -> None:
    """The task's options, and what ``eval`` asks of the task (asked by ``s2distill.checks``)."""
    task = make_task(cfg.task)
    if cfg.eval.both_orders and not isinstance(task, Pairwise):
        raise ConfigError(f"eval.both_orders needs a pairwise judge task (task.name=judge); task '{cfg.task.name}' "
                          "cannot swap its inputs: set eval.both_orders=false")
    if cfg.eval.rewordings:
        n_max = task.n_perturbations if isinstance(task, Perturbable) else 0
        if cfg.eval.rewordings > n_max:
            raise ConfigError(f"eval.rewordings={cfg.eval.rewordings} but task '{cfg.task.name}' has "
                              f"{n_max} rewordings of its input; set eval.rewordings to at most {n_max}")


def check_data(cfg: Any) -> str:
    """``s2distill validate``: read the task's data the way a run does, before any engine starts, so a missing
    field, an empty file, a bad exemplar file or an unparseable gold fails here with the run's own message:
    both splits as the data stage loads them (``task.load``), the few-shot exemplars as the method takes them
    (a built-in method module's ``shots(task, k)``, when ``method.few_shot`` > 0), and the files ``load``
    leaves for later (the task's ``check_files()``, e.g. the dataset task's ``exemplars_path``). A task opts
    in with ``remote_source()``: None (local files or generated items) reads; a name (an HF dataset) is not
    fetched. Returns what was read, in one line."""
    from ..methods import method_of

    task = make_task(cfg.task)
    if not isinstance(task, LocalData):
        return (f"data not read: task '{cfg.task.name}' is not LocalData (s2distill.tasks.base); "
                "the run's data stage reads it")
    hub = task.remote_source()
    if hub is not None:
        task.check_files()
        return f"data not read: '{hub}' is an HF dataset, fetched by the run's data stage"
    t = cfg.task
    train, evals = task.load("train", t.n_train, t.seed), task.load("eval", t.n_eval, t.seed)
    task.check_files()
    line = (f"data: {len(train)} train inputs, {len(evals)} eval inputs "
            f"({sum(e.gold is not None for e in evals)} labeled)")
    k, shots = cfg.method.few_shot, method_of(cfg.method.name).shots
    if k > 0 and shots is not None:  # cot, rar: the exemplars (and rar's rephrasings) their run would take
        shots(task, k)  # raises as the run's generate stage would (too few, a bad row, no rephrasing)
        line += f", {k} few-shot exemplars"
    return line


from .common import hub_rows, is_dataset_dir  # noqa: E402 - re-exported

__all__ = ["TASKS", "check_config", "check_data", "hub_rows", "is_dataset_dir", "make_task", "parse_options", "dataclasses"]
