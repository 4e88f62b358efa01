"""``dataset``: your own questions, from a local file or an HF dataset, labeled or not.

Source: ``path`` (JSONL, JSON list, CSV or Parquet, by extension) or ``hf_id`` + ``split`` +
``config`` (through ``datasets``). Eval inputs come from ``eval_path`` if given, else from the same
rows: a row is held out when a hash of (``task.seed``, its id) falls below ``eval_fraction``, so the
split depends on the id only, never on the row's position, and adding rows never moves an existing
row to the other side. ``task.n_train`` / ``task.n_eval`` take the first n of each side in a fixed
pseudo-random order of the same hash (n < 0: all).

Fields: ``id_field`` (else the id is a stable hash of the question), ``question_field`` (default
``question``) or a ``template`` with ``{field}`` placeholders; a ``choices_field`` list renders as
lettered lines ("A. ...") and is appended to the question when there is no template.
``answer_field`` is the gold label, optional: used for scoring only, never shown to a curator.

``answer_format`` (see ``tasks.answers``): number | yes_no | choice (``choices_field`` letters, or
``letters``) | short_text (the gold may be a list of aliases) | regex (``pattern`` with one group) |
exact. ``instruction`` replaces the format's System 1 instruction. ``exemplars_path``: a file of
worked examples for few-shot CoT/RaR: each row has ``question`` (or the task's question field(s))
and ``worked`` (a worked solution ending "The answer is X."), optionally ``rephrased`` (few-shot RaR).

A bad row (missing field, unparseable gold, duplicate id) stops the data stage with the file and
line; the sample cache keeps every sample already generated, so a rerun after the fix regenerates
nothing that was done.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..types import Example, stable_hash
from .answers import AnswerFormat, answer_format, lettered
from .base import FileInputs, Formatted, LocalData, RephraseFewShot, SourceFingerprint
from .common import hub_rows, jsonl_objects
from .splits import check_split, split_indices

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass(frozen=True)
class DatasetOptions:
    path: str | None = None  # local .jsonl / .json / .csv / .parquet
    hf_id: str | None = None  # or an HF dataset id (needs `datasets` and internet, or a local copy of one)
    split: str = "train"  # hf_id: the split to read
    config: str | None = None  # hf_id: the dataset config
    eval_path: str | None = None  # held-out inputs in a file of their own (else split by eval_fraction)
    eval_fraction: float = 0.2  # share of rows held out for eval, by a hash of the row id
    id_field: str | None = None  # None: the id is a stable hash of the question
    question_field: str | None = None  # default "question"; or use template
    template: str | None = None  # e.g. "{question}\n{choices}": placeholders are field names
    answer_field: str | None = None  # gold (for scoring only); None = unlabeled
    answer_format: str = "short_text"  # number | yes_no | choice | short_text | regex | exact
    choices_field: str | None = None  # choice: a list field, lettered A, B, C, ...
    letters: str = "ABCD"  # choice without choices_field: the allowed letters
    pattern: str | None = None  # regex: the answer is its one group
    instruction: str | None = None  # replaces the format's System 1 instruction
    exemplars_path: str | None = None  # worked examples for few-shot CoT / RaR


@dataclass(frozen=True)
class Row:
    where: str  # "FILE line N": for error messages
    data: dict


def _where(path: Path, kind: str, i: int) -> str:
    return f"{path} {kind} {i}"


def read_rows(path: Path) -> list[Row]:
    """Rows of a local JSONL / JSON / CSV / Parquet file; errors name the file and line."""
    if not path.is_file():
        raise DataError(f"{path} not found; fix: point task.options.path (or eval_path / exemplars_path) at your file")
    suffix = path.suffix.lower()
    rows: list[Row] = []
    if suffix == ".jsonl":
        rows = [Row(_where(path, "line", lineno), obj) for lineno, obj in jsonl_objects(path)]
    elif suffix == ".json":
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
        if isinstance(obj, dict):
            lists = [v for k, v in obj.items() if isinstance(v, list) and k in ("data", "rows", "examples")]
            obj = lists[0] if lists else obj
        if not isinstance(obj, list):
            raise DataError(f"{path}: expected a JSON list of objects (or {{\"data\": [...]}})")
        for i, item in enumerate(obj):
            if not isinstance(item, dict):
                raise DataError(f"{path} item {i}: expected a JSON object, got {type(item).__name__}")
            rows.append(Row(_where(path, "item", i), item))
    elif suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                rows.append(Row(_where(path, "line", reader.line_num), {k: v for k, v in row.items() if k is not None}))
    elif suffix == ".parquet":
        try:
            import pandas as pd
        except ImportError:
            raise ConfigError(f"reading {path} needs pandas and pyarrow: pip install pandas pyarrow "
                              "(or convert it to JSONL / CSV)") from None
        try:
            frame = pd.read_parquet(path)
        except ImportError as e:
            raise ConfigError(f"reading {path} needs a Parquet engine ({e}): pip install pyarrow") from None
        for i, rec in enumerate(frame.to_dict(orient="records")):
            rows.append(Row(_where(path, "row", i), {k: _plain(v) for k, v in rec.items()}))
    else:
        raise ConfigError(f"{path}: unknown file type '{path.suffix}'; task.options.path takes "
                          f"{', '.join(SUFFIXES)}")
    if not rows:
        raise DataError(f"{path} has no rows; fix: point task.options.path at a file with your questions")
    return rows


def _plain(v: Any) -> Any:
    """numpy scalars / arrays from pandas -> Python values."""
    if hasattr(v, "tolist"):
        return v.tolist()
    return v


class DatasetTask(Formatted, RephraseFewShot, LocalData, FileInputs, SourceFingerprint):
    name = "dataset"
    Options = DatasetOptions

    def __init__(self, options: DatasetOptions | None = None):
        o = self.options = options or DatasetOptions()
        if bool(o.path) == bool(o.hf_id):
            raise ConfigError("task 'dataset' needs exactly one source: task.options.path=FILE (.jsonl/.json/.csv/"
                              ".parquet) or task.options.hf_id=NAME")
        if o.template and o.question_field:
            raise ConfigError("set task.options.question_field or task.options.template, not both")
        if not 0 <= o.eval_fraction < 1:
            raise ConfigError(f"task.options.eval_fraction must be in [0, 1), got {o.eval_fraction}")
        if o.template:
            try:
                self.template_fields = sorted({f for _, f, _, _ in string.Formatter().parse(o.template) if f})
            except ValueError as e:
                raise ConfigError(f"task.options.template is not a valid template ({e}); write a literal brace "
                                  "as '{{' or '}}'") from None
            if not self.template_fields or any(not f.isidentifier() for f in self.template_fields):
                raise ConfigError(f"task.options.template needs {{field}} placeholders naming fields of your rows, "
                                  f"got {o.template!r}")
        self.question_field = o.question_field or ("" if o.template else "question")
        self.answer_format: AnswerFormat = answer_format(o.answer_format, letters=o.letters, pattern=o.pattern)
        if o.answer_format == "choice" and o.choices_field:  # letters A, B, ... as many as a row has choices
            self.answer_format = dataclasses.replace(answer_format("choice", letters=string.ascii_uppercase),
                                                     instruction="Answer with only the letter of the correct choice.")
        self._examples: dict[int, dict[str, list[Example]]] = {}  # seed -> split -> examples
        self._exemplars: list[tuple[str, str, str | None]] | None = None

    # -- rows -> examples ------------------------------------------------------------------
    def _field(self, row: Row, name: str, what: str) -> Any:
        if name not in row.data:
            fixes = {"template": "use only these fields in task.options.template",
                     "exemplars_path": f"give every row of task.options.exemplars_path a \"{name}\" field (a "
                                       "worked solution ending \"The answer is X.\")"}
            fix = fixes.get(what, f"set task.options.{what} to one of them")
            raise DataError(f"{row.where}: missing field \"{name}\" ({what}); fields there: "
                            f"{', '.join(map(str, row.data)) or 'none'}; fix: {fix}")
        return row.data[name]

    def question_of(self, row: Row) -> str:
        o = self.options
        if o.template:
            values = {}
            for f in self.template_fields:
                v = self._field(row, f, "template")
                values[f] = lettered(v, self.format_letters(len(v))) if f == o.choices_field and isinstance(
                    v, (list, tuple)) else v
            text = o.template.format(**values)
        else:
            text = self._field(row, self.question_field, "question_field")
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{row.where}: field \"{self.question_field}\" is {text!r}, not a question")
            if o.choices_field:
                text = f"{text.strip()}\n{lettered(self._choices(row), self.format_letters(len(self._choices(row))))}"
        return str(text).strip()

    def format_letters(self, n: int) -> str:
        if n > 26:
            raise DataError(f"more than 26 choices in task.options.choices_field '{self.options.choices_field}'")
        return string.ascii_uppercase[:n]

    def _choices(self, row: Row) -> list:
        v = self._field(row, self.options.choices_field or "", "choices_field")
        if isinstance(v, str) and v.strip().startswith("["):  # a CSV cell holding a JSON list
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                pass
        if not isinstance(v, (list, tuple)) or not v:
            raise DataError(f"{row.where}: field \"{self.options.choices_field}\" must be a non-empty list of "
                            f"choices, got {v!r}")
        return list(v)

    def _gold(self, row: Row, question_id: str) -> str | None:
        o = self.options
        if not o.answer_field:
            return None
        raw = self._field(row, o.answer_field, "answer_field")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None  # an unlabeled row in a labeled file
        if o.answer_format == "choice" and o.choices_field:
            choices = self._choices(row)
            letters = self.format_letters(len(choices))
            if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(choices):
                return letters[raw]  # an index into the choices
            hits = [letters[i] for i, c in enumerate(choices) if str(c).strip() == str(raw).strip()]
            gold = hits[0] if hits else self.answer_format.parse_gold(raw)
            gold = gold if gold in letters else None
        else:
            gold = self.answer_format.parse_gold(raw)
        if gold is None:
            raise DataError(f"{row.where} (id {question_id}): gold answer {raw!r} in field \"{o.answer_field}\" does "
                            f"not parse as answer_format={o.answer_format}; fix the label, or change "
                            "task.options.answer_format / answer_field")
        return gold

    def _to_examples(self, rows: list[Row]) -> list[Example]:
        out, seen = [], {}
        for row in rows:
            q = self.question_of(row)
            if self.options.id_field:
                rid = str(self._field(row, self.options.id_field, "id_field")).strip()
            else:
                rid = stable_hash(q, 12)
            if rid in seen:
                how = (f"id {rid!r} (field \"{self.options.id_field}\")" if self.options.id_field
                       else "the same question (ids are a hash of the question)")
                raise DataError(f"{row.where}: duplicate of {seen[rid]}: {how}; fix: remove the duplicate"
                                + ("" if self.options.id_field else " or set task.options.id_field"))
            seen[rid] = row.where
            meta: dict = {}
            if self.options.answer_format == "choice" and self.options.choices_field:
                meta["letters"] = self.format_letters(len(self._choices(row)))
            out.append(Example(id=rid, question=q, gold=self._gold(row, rid), meta=meta))
        return out

    def _source_rows(self) -> list[Row]:
        o = self.options
        if o.path:
            return read_rows(Path(o.path).expanduser())
        data = hub_rows(o.hf_id or "", o.split, o.config,
                        offline_fix="set task.options.path to a local .jsonl/.json/.csv/.parquet file")
        if not data:
            raise DataError(f"HF dataset '{o.hf_id}' split '{o.split}' has no rows")
        return [Row(f"{o.hf_id} ({o.split}) row {i}", r) for i, r in enumerate(data)]

    def _splits(self, seed: int) -> dict[str, list[Example]]:
        if seed in self._examples:
            return self._examples[seed]
        o = self.options
        main = self._to_examples(self._source_rows())
        if o.eval_path:
            evals = self._to_examples(read_rows(Path(o.eval_path).expanduser()))
            overlap = {e.id for e in main} & {e.id for e in evals}
            if overlap:
                raise DataError(f"{len(overlap)} id(s) are in both task.options.path and eval_path (e.g. "
                                f"{sorted(overlap)[0]!r}); fix: remove them from one file (eval must be held out)")
            parts = {"train": (main, 0.0), "eval": (evals, 1.0)}  # every row of each file, in the hash order
        else:
            parts = {"train": (main, o.eval_fraction), "eval": (main, o.eval_fraction)}
        self._examples[seed] = {split: [exs[i] for i in split_indices(split, -1, scheme="seeded_id_hash", seed=seed,
                                                                      ids=[e.id for e in exs], eval_fraction=frac)]
                                for split, (exs, frac) in parts.items()}
        return self._examples[seed]

    def load(self, split: str, n: int, seed: int = 0) -> list[Example]:
        check_split(split, "dataset")
        exs = self._splits(seed)[split]
        if split == "eval" and n and not exs:
            raise DataError("no eval inputs: eval_fraction held out no row; fix: raise task.options.eval_fraction, "
                            "give task.options.eval_path, or set task.n_eval=0")
        return exs[: n if n >= 0 else None]

    def load_file(self, path: str | Path) -> list[Example]:
        """New inputs for ``s2distill eval RUN --data FILE``: ``path`` read with this task's field mapping
        (question field or template, id field, optional answer field), in file order."""
        exs = self._to_examples(read_rows(Path(path).expanduser()))
        if not exs:
            raise DataError(f"{path} has no rows; fix: one input per row, with the field(s) of task.options")
        return exs

    def remote_source(self) -> str | None:
        """The HF dataset the rows come from (``hf_id``); None for a local file (``s2distill validate`` reads it)."""
        return self.options.hf_id or None

    def check_files(self) -> None:
        """``s2distill validate``: the local files ``load`` does not read: ``exemplars_path`` (also with
        method.few_shot=0; the errors few-shot would raise), and ``eval_path`` next to an ``hf_id``."""
        if self.options.hf_id and self.options.eval_path:
            self._to_examples(read_rows(Path(self.options.eval_path).expanduser()))
        if self.options.exemplars_path:
            self._shots()

    def source_fingerprint(self) -> dict:
        """Content hashes of the local files read: an edited file (rows added or fixed) reruns the data stage."""
        o, out = self.options, {}
        for key in ("path", "eval_path", "exemplars_path"):
            p = Path(getattr(o, key) or "").expanduser()
            if getattr(o, key) and p.is_file():
                h = hashlib.sha256()
                with open(p, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                out[key] = h.hexdigest()[:16]
        return out

    # -- answers: the configured format (Formatted), with the file's own System 1 instruction if it has one ----
    @property
    def direct_instruction(self) -> str:  # type: ignore[override]
        o = self.options
        return o.instruction if o.instruction is not None else self.answer_format.instruction

    # -- few-shot ----------------------------------------------------------------------------
    def _shots(self) -> list[tuple[str, str, str | None]]:
        if self._exemplars is None:
            if not self.options.exemplars_path:
                raise ConfigError("few-shot with task 'dataset' needs worked examples: task.options.exemplars_path="
                                  "FILE (rows with your question field(s) and 'worked'); or set method.few_shot=0")
            shots = []
            for row in read_rows(Path(self.options.exemplars_path).expanduser()):
                worked = self._field(row, "worked", "exemplars_path")
                reph = row.data.get("rephrased")
                q = row.data["question"].strip() if isinstance(row.data.get("question"), str) else self.question_of(row)
                shots.append((q, str(worked).strip(), str(reph).strip() if reph else None))
            self._exemplars = shots
        return self._exemplars

    def exemplars(self, k: int) -> list[tuple[str, str]]:
        shots = self._shots()
        if k > len(shots):
            raise ConfigError(f"method.few_shot={k} but {self.options.exemplars_path} has {len(shots)} worked "
                              f"examples; set method.few_shot to at most {len(shots)}")
        return [(q, w) for q, w, _ in shots[:k]]

    def rephrase_exemplar(self, question: str) -> str:
        for q, _, r in self._shots():
            if q == question:
                if not r:
                    break
                return r
        raise ConfigError(f"few-shot RaR needs a 'rephrased' field in every row of {self.options.exemplars_path}")
