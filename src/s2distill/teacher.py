"""A stronger System 2 teacher distilled into a smaller student.

The ``teacher:`` config section (``model`` and ``backend``, the shape of the top-level ones)
runs System 2: generation on the unlabeled inputs, model-based curation (e.g. universal
self-consistency) and the System 2 evaluations (greedy, maj@k), plus ``teacher_system1`` (the
teacher answering directly) when ``eval.systems`` asks for it. The top-level ``model`` stays the
student: System 1, training and the distilled model. Without the section nothing changes.

Keys of ``teacher.backend`` that are not given are the run's own ``backend`` keys, so
``teacher: {model: qwen2.5-coder-1.5b}`` serves the teacher exactly like the student.

Stage fingerprints gain a ``teacher`` part only where the teacher's output flows (generation,
curation, training and the distilled model through them, the teacher's evaluations); runs
without a teacher keep every fingerprint. Samples are keyed by the backend's ``model_id``
(the weights), so the teacher's and the student's samples never share a cache entry.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from . import systems

TEACHER_SYSTEMS = systems.ON_TEACHER  # evaluated on the teacher when there is one


def teacher_config(cfg: Any) -> Any:
    """The run config the teacher's backend is built from: the teacher's model and backend in the
    places of the run's (so every backend's ``config_kwargs`` serves it unchanged)."""
    t = cfg.teacher
    if t is None:
        return cfg
    return dataclasses.replace(cfg, model=t.model, backend=t.backend)


def key(cfg: Any) -> dict:
    """The fingerprint part of the teacher ({} without one: fingerprints as before the section)."""
    t = cfg.teacher
    return {} if t is None else {"teacher": {"model": t.model, "backend": t.backend.name}}


def system2_weights(cfg: Any) -> str:
    """The weights ('base' or 'teacher') that run System 2 (generation, model-based curation)."""
    return "teacher" if cfg.teacher is not None else "base"


def eval_weights(cfg: Any, system: str, weights: str) -> str:
    """The weights an evaluation of ``system`` runs on: the teacher's for System 2 systems."""
    return "teacher" if weights == "base" and system in TEACHER_SYSTEMS and cfg.teacher is not None else weights


def eval_order(cfg: Any) -> tuple[str, ...]:
    """The base systems in evaluation order: with a teacher its systems first, right after generation
    (the teacher's engine is still up: one start fewer), then the student's System 1."""
    return systems.eval_order(cfg.teacher is not None)


def model_of(cfg: Any, system: str) -> str:
    """The model a report row of ``system`` used."""
    return cfg.teacher.model if cfg.teacher is not None and system in TEACHER_SYSTEMS else cfg.model


def report_part(rd: Any, cfg: Any, rows: list[dict]) -> dict:
    """With a teacher: the model of every report row (in place) and the tokens each model generated
    (System 2 generation on the train inputs, and the evaluations); {} without a teacher."""
    if cfg.teacher is None:
        return {}
    from .rundir import read_jsonl

    tokens: dict[str, dict] = {}

    def add(model: str, what: str, n: float) -> None:
        d = tokens.setdefault(model, {"generate_train": 0, "eval": 0})
        d[what] += int(round(n))

    for r in rows:
        r["model"] = model_of(cfg, r["role"])
        add(r["model"], "eval", r["mean_generated_tokens"] * r["n"])
    traces = rd / "traces" / "train.jsonl"
    if traces.is_file():
        add(cfg.teacher.model, "generate_train", sum(c["completion"].get("completion_tokens", 0) for t in
                                                     read_jsonl(traces) for s in t["samples"] for c in s.get("calls", [])))
    for d in tokens.values():
        d["total"] = d["generate_train"] + d["eval"]
    return {"teacher": cfg.teacher.model, "student": cfg.model, "tokens_per_model": tokens}
