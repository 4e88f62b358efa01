"""The report as types: :class:`Report` and its :class:`SystemRow` rows, serialised to (and read from) the same
``report.json`` that ``report.build_report`` writes.

    from s2distill.report_types import Report
    r = Report.load("runs/demo")
    r.row("distilled").accuracy, r.verdict["decision"], [x.role for x in r.rows]

``Report.from_json(d).to_json() == d`` for every report (a test replays the committed runs' reports): the
typed fields are the parts every run has; what only some runs have (a teacher's parts, a continued round's
``rounds``, a spot-check, a curriculum's ``stepwise``, ``training_inputs``) stays in ``parts`` under its key.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

__all__ = ["Report", "SystemRow"]


@dataclass(frozen=True)
class SystemRow:
    """One evaluated system: what ``evaluate.summarize`` measured, the System table's role and the report label."""
    system: str  # the report's label (``cot``, ``cot_maj@4``, ``distilled``)
    role: str  # the System table's name (``system2``)
    n: int
    correct: int | None
    accuracy: float | None  # None when no input has gold
    ci95: tuple[float, float] | None  # 95% Wilson interval
    mean_generated_tokens: float
    calls_per_answer: float
    unparsed: int
    wall_s_per_answer: float | None
    cache_hits: int = 0
    n_labeled: int | None = None  # present when some inputs have no gold
    judge: dict | None = None  # pairwise judges: agreement without ties, position inconsistency
    groups: dict | None = None  # per input group (opinion type) and the sycophancy rate

    @classmethod
    def from_json(cls, d: dict) -> "SystemRow":
        known = {f.name for f in fields(cls)}
        if unknown := set(d) - known:
            raise ValueError(f"report row has unknown keys {sorted(unknown)}")
        return cls(**{**d, "ci95": tuple(d["ci95"]) if d.get("ci95") is not None else None})

    def to_json(self) -> dict:
        out: dict = {"system": self.system, "role": self.role, "n": self.n}
        if self.n_labeled is not None:
            out["n_labeled"] = self.n_labeled
        out.update(correct=self.correct, accuracy=self.accuracy, ci95=list(self.ci95) if self.ci95 is not None else None,
                   mean_generated_tokens=self.mean_generated_tokens, calls_per_answer=self.calls_per_answer,
                   unparsed=self.unparsed, wall_s_per_answer=self.wall_s_per_answer)
        out.update({k: v for k, v in (("judge", self.judge), ("groups", self.groups)) if v is not None})
        out["cache_hits"] = self.cache_hits
        return out


_TYPED = ("run_dir", "task", "task_options", "model", "backend", "method", "method_samples", "rows", "label_free",
          "cascade", "verdict", "robustness", "retention", "curation", "generation", "train", "stages_wall_s")


@dataclass(frozen=True)
class Report:
    run_dir: str
    task: str
    task_options: dict
    model: str
    backend: str
    method: str
    method_samples: int
    rows: tuple[SystemRow, ...]
    label_free: dict | None  # agreement with System 2's majority per system, vote shares (label_free.py)
    cascade: dict | None  # the calibrated System 1 -> System 2 cascade per signal (cascade.py)
    verdict: dict  # ship distilled / ship cascade / keep System 2 / no label-free answer
    robustness: dict  # accuracy per wording of the direct systems
    retention: dict | None  # System 1 on other tasks and KL, base vs distilled (retention.py)
    curation: dict
    generation: dict
    train: dict | None  # the train summary
    stages_wall_s: dict
    parts: dict = field(default_factory=dict)  # what only some runs have, by its report.json key
    order: tuple[str, ...] = ()  # report.json's key order, kept for to_json

    @classmethod
    def from_json(cls, d: dict) -> "Report":
        missing = [k for k in _TYPED if k not in d]
        if missing:
            raise ValueError(f"not a report: no {', '.join(missing)}")
        return cls(**{k: d[k] for k in _TYPED if k != "rows"}, rows=tuple(SystemRow.from_json(r) for r in d["rows"]),
                   parts={k: v for k, v in d.items() if k not in _TYPED}, order=tuple(d))

    @classmethod
    def load(cls, run_dir: str | Path) -> "Report":
        from .errors import S2DistillError
        from .rundir import read_json

        p = Path(run_dir) / "report.json"
        if not p.is_file():
            raise S2DistillError(f"no report in {run_dir}; run `s2distill run CONFIG` first (it resumes where it stopped)")
        return cls.from_json(read_json(p))

    def to_json(self) -> dict:
        vals = {**{k: getattr(self, k) for k in _TYPED if k != "rows"}, "rows": [r.to_json() for r in self.rows],
                **self.parts}
        keys = [k for k in self.order if k in vals] + [k for k in vals if k not in self.order]
        return {k: vals[k] for k in keys}

    def row(self, system: str) -> SystemRow | None:
        """The row of ``system`` (a System table name: its ``role``), or None when it was not evaluated."""
        return next((r for r in self.rows if r.role == system), None)
