"""The systems a run evaluates: one declared entry each, read by evaluation, the report, the label-free
metrics, the spot-check, the HTML report, serving and the teacher's ordering.

A system is a prompt (the direct System 1 prompt, or the run's System 2 method), a sampling (greedy, or
``eval.k`` samples and their majority), the weights it runs on (the base model, the teacher when the run
has one, or the distilled model) and how the report labels it. Adding a system is one entry here plus the
code that runs it; every consumer iterates this table instead of naming systems.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BASE", "BY_NAME", "DEFAULT", "DIRECT", "DISTILLED", "MAJ", "NAMES", "ON_TEACHER", "ON_TRAINED", "PALETTE", "S1", "S2", "SYSTEMS",
           "System", "TABLE", "TEACHER_S1", "eval_order", "get", "label", "reference"]


@dataclass(frozen=True)
class System:
    name: str  # the report's role, the eval file's stem (eval/<name>.jsonl) and the stage's (eval_<name>)
    prompt: str  # "direct": the System 1 prompt (answer logprobs recorded) | "method": the run's System 2 method
    sampling: str  # "greedy" | "maj": eval.k samples at eval.temperature, scored by their majority
    weights: str  # "base" | "distilled" (a trained model)
    on_teacher: bool  # runs on the teacher when the run has a teacher section
    default: bool  # in eval.systems when the config does not list them
    color: str | None  # its colour in the report's plots (None: one of the other colours, by position)

    @property
    def direct(self) -> bool:
        return self.prompt == "direct"

    @property
    def votes(self) -> bool:
        return self.sampling == "maj"

    def label(self, method: str, k: int) -> str:
        """The report's label: the method's name for System 2 (``cot``), ``cot_maj@4`` for maj@k; a method system
        on the trained model is ``distilled_cot``."""
        if self.prompt == "direct":
            return self.name
        name = f"{method}_maj@{k}" if self.votes else method
        return f"distilled_{name}" if self.weights == "distilled" else name


# report order
TABLE: tuple[System, ...] = (
    System("system1", "direct", "greedy", "base", False, True, "#1f77b4"),
    System("system2", "method", "greedy", "base", True, True, "#d62728"),
    System("system2_maj", "method", "maj", "base", True, True, "#ff7f0e"),
    System("teacher_system1", "direct", "greedy", "base", True, False, None),
    System("distilled", "direct", "greedy", "distilled", False, True, "#2ca02c"),
)
BY_NAME = {s.name: s for s in TABLE}
S1, S2, MAJ, TEACHER_S1, DISTILLED = (s.name for s in TABLE[:5])  # the entries the code refers to by role
NAMES = SYSTEMS = tuple(BY_NAME)
DEFAULT = tuple(s.name for s in TABLE if s.default)  # eval.systems when not given
BASE = tuple(s.name for s in TABLE if s.weights == "base")  # the base models' (the run's, the teacher's)
ON_TRAINED = tuple(s.name for s in TABLE if s.weights == "distilled")  # evaluated after training
DIRECT = tuple(s.name for s in TABLE if s.direct)  # answer with the direct System 1 prompt
ON_TEACHER = tuple(s.name for s in TABLE if s.on_teacher)  # on the teacher when there is one
PALETTE = {s.name: s.color for s in TABLE if s.color}


def get(name: str) -> System:
    return BY_NAME[name]


def label(name: str, method: str, k: int) -> str:
    return BY_NAME[name].label(method, k)


def eval_order(has_teacher: bool) -> tuple[str, ...]:
    """The base systems in evaluation order: with a teacher its systems first, right after generation (the
    teacher's engine is still up: one start fewer), then the student's."""
    if not has_teacher:
        return BASE
    return tuple(s for s in BASE if s in ON_TEACHER) + tuple(s for s in BASE if s not in ON_TEACHER)


def reference(fallback: str) -> str:
    """The System 2 system that answers for ``eval.cascade_fallback`` (``maj`` or ``greedy``)."""
    return MAJ if fallback == "maj" else S2


def add_fix(name: str) -> str:
    """The fix for a run that lacks the evaluation of the system ``name``."""
    return (f"add {name} to eval.systems (e.g. eval.systems=[{','.join(n for n in NAMES if n != TEACHER_S1)}]) and "
            "rerun the run (finished stages are reused)")
