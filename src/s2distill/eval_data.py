"""``s2distill eval RUN_DIR --data FILE``: score a finished run's systems on new inputs.

System 1, System 2 (greedy and maj@k) and the distilled model of RUN_DIR answer the inputs of
FILE; results go to ``RUN_DIR/evals/<name>/`` (its own ``eval/*.jsonl``, ``report.json``/``.md``
with the label-free metrics and the verdict). It resumes like a run: the same stages and
fingerprints, and the run's own sample cache, so an input the run already answered costs nothing.

Input: a task may define ``load_file(path) -> list[Example]`` (the generic ``dataset`` task maps
the user's own fields that way); otherwise FILE is JSONL in the Example shape, one object per line:
``{"id": ..., "question": ..., "gold": ...}`` (``id`` optional: a hash of the question;
``gold`` optional: without it the row is unlabeled, accuracy shows '-', the label-free columns stay).
The run's field mapping (``task.options``) applies to FILE; ``answer_field`` names FILE's gold field
instead of the run's ``task.options.answer_field`` (for FILE only, recorded in the eval's config.yaml).

Inputs of FILE that were among the run's training inputs (``RUN_DIR/data/train.jsonl``: the same question
text, or the same id where the task maps FILE's ids itself) are counted in ``data/training_inputs.json``:
a warning names how many, and the report calls them training inputs, not held-out ones.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from . import fingerprints
from .checks import load_checked
from .errors import ConfigError, DataError
from .tasks.base import FileInputs
from .tasks.common import JsonlWording, jsonl_objects
from .systems import BASE, ON_TRAINED, TABLE, TEACHER_S1
from .types import Example, stable_hash

EXAMPLE_LINE = '{"id": "q1", "question": "Tom has 3 apples ... How many apples does Tom have now?", "gold": "5"}'
_EXAMPLE = EXAMPLE_LINE.replace("{", "{{").replace("}", "}}")  # literal braces in the str.format wording below
WORDING = JsonlWording(
    invalid_json="{path}, line {line}: not valid JSON ({msg}); fix: one JSON object per line, e.g. " + _EXAMPLE,
    not_an_object="{path}, line {line}: expected a JSON object, got {type}; fix: one object per line, e.g. " + _EXAMPLE)


def read_examples(path: Path) -> list[Example]:
    """Example-shaped JSONL; every error names the file, the line and the fix."""
    out: list[Example] = []
    seen: dict[str, int] = {}
    for i, row in jsonl_objects(path, WORDING):
        q = row.get("question")
        if not isinstance(q, str) or not q.strip():
            raise DataError(f"{path}, line {i}: no 'question' text (fields present: "
                            f"{', '.join(row) or 'none'}); fix: rename the field holding the input to "
                            f"'question', e.g. {EXAMPLE_LINE}")
        eid = str(row["id"]) if row.get("id") is not None else stable_hash(q, 12)
        if eid in seen:
            raise DataError(f"{path}, line {i}: duplicate id '{eid}' (also on line {seen[eid]}); fix: give "
                            "every row its own id (rows without an id get a hash of their question)")
        seen[eid] = i
        gold = row.get("gold")
        meta = row.get("meta") or {}
        if not isinstance(meta, dict):
            raise DataError(f"{path}, line {i}: 'meta' must be an object, got {meta!r}")
        out.append(Example(id=eid, question=q, gold=None if gold is None else str(gold), meta=meta))
    if not out:
        raise DataError(f"{path} has no rows; fix: one JSON object per line, e.g. {EXAMPLE_LINE}")
    return out


def load_inputs(task, path: Path) -> list[Example]:
    """The task's own ``load_file(path)`` hook if it has one, else Example-shaped JSONL."""
    exs = list(task.load_file(path)) if isinstance(task, FileInputs) else read_examples(path)
    if not exs:
        raise DataError(f"{path}: no inputs to evaluate")
    return exs


def default_name(path: Path) -> str:
    """``<file stem>-<8 hex of its content>``: a changed file gets a new folder, the same file resumes."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)[:40] or "data"
    return f"{stem}-{digest}"


def answer_field_override(cfg, field: str) -> str:
    """``--answer-field NAME``: the override of the run's ``task.options.answer_field`` (a task whose options
    have one, e.g. ``dataset``); else an error naming the fix."""
    from .tasks import TASKS

    opts = TASKS.get(cfg.task.name).Options
    if not (dataclasses.is_dataclass(opts) and "answer_field" in {f.name for f in dataclasses.fields(opts)}):
        raise ConfigError(f"--answer-field: task '{cfg.task.name}' of this run has no task.options.answer_field; "
                          "fix: drop --answer-field and give FILE's gold the name that task reads (\"gold\" in "
                          f"Example JSONL, e.g. {EXAMPLE_LINE})")
    if not field.strip():
        raise ConfigError("--answer-field is empty; fix: name the field of FILE that holds the gold answer")
    return f"task.options.answer_field={json.dumps(field)}"  # JSON-quoted: YAML reads 'yes' / '1' as a string


def training_inputs(task, run_dir: Path, exs: Sequence[Example]) -> list[str]:
    """Ids of ``exs`` that were among the run's training inputs (``data/train.jsonl``, the inputs System 2
    ran on and the distilled model was trained from): the same question text, or the same id when the task
    maps FILE's ids itself (``load_file``, e.g. ``dataset``'s ``id_field``)."""
    from .rundir import read_jsonl

    path = run_dir / "data" / "train.jsonl"
    if not path.is_file():
        return []
    train = read_jsonl(path)
    questions = {str(d.get("question", "")).strip() for d in train}
    ids = {str(d.get("id")) for d in train} if isinstance(task, FileInputs) else set()
    return [e.id for e in exs if e.question.strip() in questions or e.id in ids]


def _file_config(run_dir: Path, base_cfg, trained: bool, answer_field: str | None, overrides: Sequence[str]):
    """The run's config for a file of new inputs: every system the run has (label-free needs maj@k; the distilled
    model once trained, the teacher's System 1 with a teacher), no rewordings, FILE's gold field."""
    systems = [s.name for s in TABLE if (s.weights != "distilled" or trained)
               and (s.name != TEACHER_S1 or base_cfg.teacher is not None)]
    gold_field = [answer_field_override(base_cfg, answer_field)] if answer_field is not None else []
    return load_checked(run_dir / "config.yaml", [f"eval.systems=[{','.join(systems)}]", "eval.rewordings=0",
                                                 *gold_field, *overrides])


def _run_stages(pipe, run, data: Path, content: str, exs: list, seen: list, train: dict) -> dict:
    """The file's data stage, each system's evaluation (the run's own stages, on the file), the report."""
    from .report import build_report
    from .rundir import write_json, write_jsonl
    from .stages import Stage

    def write_data(p):
        write_jsonl(p.rd / "data" / "eval.jsonl", exs)
        n_lab = sum(e.gold is not None for e in exs)
        p.log(f"[data] {len(exs)} inputs from {data} ({n_lab} labeled)")
        return ["data/eval.jsonl"], {"n_eval": len(exs), "n_labeled": n_lab, "source": str(data)}

    pipe.execute(Stage("data", "data", (), lambda p: fingerprints.data_file(p.cfg, content), write_data))
    # every time (the run's train inputs may have changed since): the report's wording reads it
    write_json(pipe.rd / "data" / "training_inputs.json",
               {"n": len(seen), "of": len(exs), "ids": seen, "train_inputs": str(run.path / "data" / "train.jsonl")})
    # the run's own evaluation stages on the file; the distilled model's includes the run's train fingerprint
    pipe.fp["train"] = train.get("fingerprint", "")
    stages = [st for s in BASE if s in pipe.cfg.eval.systems for st in pipe.eval_stages(s)]
    stages += [st for s in ON_TRAINED if s in pipe.cfg.eval.systems
               for st in pipe.eval_stages(s, run.path / "model", upstream="train")]
    for stage in stages:
        pipe.execute(stage)
    return build_report(pipe.rd, pipe.cfg, pipe.task)


def eval_on_file(run_dir: str | Path, data: str | Path, name: str | None = None,
                 overrides: Sequence[str] = (), backend_factory: Callable | None = None,
                 log: Callable[[str], None] | None = None, progress: bool = True,
                 answer_field: str | None = None) -> tuple[dict, Path]:
    """Evaluate RUN_DIR's systems on FILE (``answer_field``: FILE's gold field, for this file only);
    returns (report, output folder)."""
    from .pipeline import Pipeline, default_backend_factory
    from .report import to_markdown
    from .rundir import RunDir, write_json, write_text
    from .tasks import make_task

    run_dir, data = Path(run_dir), Path(data)
    if not data.is_file():
        raise DataError(f"--data {data}: file not found; fix: pass a JSONL of inputs, one per line, e.g. {EXAMPLE_LINE}")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir / 'config.yaml'} not found; fix: pass a run directory made by `s2distill run`")
    run = RunDir(run_dir)
    base_cfg = load_checked(run_dir / "config.yaml")
    train = run.stage_info("train")
    trained = bool(train.get("done"))
    cfg = _file_config(run_dir, base_cfg, trained, answer_field, overrides)
    task = make_task(cfg.task)
    exs = load_inputs(task, data)  # checked before anything is written
    seen = training_inputs(task, run_dir, exs)
    out = run_dir / "evals" / (name or default_name(data))
    pipe = Pipeline(cfg, run_dir=out, backend_factory=backend_factory or default_backend_factory, log=log,
                    progress=progress)
    pipe.cache_path = run.path / "cache" / "samples.jsonl"  # the run's cache: what it answered is reused
    if not trained and "distilled" in base_cfg.eval.systems:
        pipe.log(f"[eval] {run_dir} has no trained model (train stage not done): evaluating without 'distilled'")
    if seen:
        pipe.log(f"[eval] warning: {len(seen)} of {len(exs)} inputs were training inputs; their scores are not "
                 f"held-out (System 2 ran on them and the distilled model learnt its answers); fix: evaluate on "
                 f"inputs outside {run_dir / 'data' / 'train.jsonl'}")
    content = hashlib.sha256(data.read_bytes()).hexdigest()
    pipe.write_meta()
    try:
        report = _run_stages(pipe, run, data, content, exs, seen, train)
    finally:
        pipe.close()
    report["evaluated"] = {"data": str(data), "sha256": content, "of_run": str(run.path.resolve()),
                           "training_inputs": len(seen)}
    write_json(out / "report.json", report)
    write_text(out / "report.md", to_markdown(report))
    return report, out
