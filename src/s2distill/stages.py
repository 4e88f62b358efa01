"""Stages as declared objects, and the stage-runner protocol: what a stage needs of the run it belongs to.

A :class:`Stage` states its name, the ``--until`` step it belongs to, the stages whose fingerprints its own
includes, its fingerprint and its run. ``Pipeline.stages(cfg)`` declares a run's list (``s2distill run``
iterates it, ``--until`` cuts it, the log's "stage k of N" counts it); ``eval --data`` declares its own
(the file's data stage, then the run's own evaluation stages) and the stepwise curriculum its
``train_stage{k}``/``eval_stage{k}``; every one goes through :meth:`StageRunner.execute`.

The protocol: what a stage needs of the run it belongs to, and all it may use.

``Pipeline`` is one; a stage that runs inside another stage (a stepwise curriculum's ``train_stage{k}`` and
``eval_stage{k}``, run by the train stage) receives the run through this narrow interface, not the whole
``Pipeline``: its config and task, the run directory, the fingerprints of the stages before it, a log line,
running a stage (skipped when its fingerprint is unchanged), a model call behind the run's sample cache, the
run's inputs, whether to show progress bars, and freeing the engines before training takes the cores.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from dataclasses import dataclass

from .rundir import RunDir
from .types import Example

STEPS = ("data", "generate", "curate", "eval", "train", "report")  # what ``s2distill run --until`` names


@dataclass(frozen=True)
class Stage:
    """One stage of a run: skipped when its fingerprint equals the one recorded when it last finished."""
    name: str  # the manifest's key and the log's tag: data, generate, curate, eval_system1, train, ...
    step: str  # the ``--until`` step it belongs to (one of STEPS)
    upstream: tuple[str, ...]  # the stages whose fingerprints its own includes (``runner.fp[name]``)
    fingerprint: Callable[["StageRunner"], str]  # computed when the stage is reached (its upstream have run)
    run: Callable[["StageRunner"], tuple[list[str], dict]]  # -> (files written, info for the manifest)

    def __post_init__(self):
        if self.step not in STEPS:
            raise ValueError(f"stage {self.name}: step '{self.step}' is not one of {', '.join(STEPS)}")


class StageRunner(Protocol):
    cfg: Any  # the run's RunConfig
    task: Any  # the run's Task
    rd: RunDir
    fp: dict[str, str]  # stage name -> fingerprint, for the stages already run
    log: Callable[[str], None]
    progress: bool  # progress bars on

    def run_stage(self, name: str, fingerprint: str, fn: Callable[[], tuple[list[str], dict]]) -> bool:
        """Stage ``name``: ``fn()`` -> (files written, info), skipped when ``fingerprint`` is unchanged."""

    def generate(self, weights: str, desc: str, fn: Callable[[Any], list], total: int,
                 trained: dict | None = None, stage: str = "eval") -> tuple[list, float, dict]:
        """``fn(backend)`` on the ``weights``' engine behind the run's sample cache: (result, wall s, stats)."""

    def examples(self, split: str) -> list[Example]:
        """The run's ``train`` or ``eval`` inputs (train ones unlabeled)."""

    def free_engines(self) -> None:
        """Stop the run's engines (training wants the cores; the next adapter needs a new server)."""

    def execute(self, stage: Stage) -> bool:
        """Run ``stage`` (its upstream fingerprints first), skipped when its fingerprint is unchanged."""


MEMBERS = ("cfg", "task", "rd", "fp", "log", "progress", "run_stage", "generate", "examples", "free_engines", "execute")
