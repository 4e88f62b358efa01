"""What the built-in tasks share: reading rows (JSONL files, HF datasets or local copies of them), resolving
a data option (local file, directory, hub id), published RaR/Kojima files, and the name-pool options and item
sampling of the symbolic tasks (``last_letter``, ``coin_flip``). Train/eval splits: ``splits.py``."""
from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..errors import ConfigError, DataError
from ..types import Example
from .splits import partition, split_indices

T = TypeVar("T")


# -- rows --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JsonlWording:
    """How a JSONL reader words its two line errors; ``str.format`` fields: path, line, msg (the JSON
    error), type (what the line holds instead of an object)."""

    invalid_json: str = "{path} line {line}: invalid JSON ({msg}); fix or remove that line"
    not_an_object: str = "{path} line {line}: expected a JSON object, got {type}"


def jsonl_objects(path: Path, wording: JsonlWording = JsonlWording()) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank JSONL line; a malformed line is an error naming the file and line."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(wording.invalid_json.format(path=path, line=lineno, msg=e.msg)) from None
            if not isinstance(row, dict):
                raise DataError(wording.not_an_object.format(path=path, line=lineno, type=type(row).__name__))
            yield lineno, row


def read_jsonl_rows(path: Path, required: tuple[str, ...]) -> list[dict]:
    """Read JSONL; a malformed line or a missing required field is an error naming the file and line."""
    rows = []
    for lineno, row in jsonl_objects(path):
        for f in required:
            if f not in row:
                raise DataError(f"{path} line {lineno}: missing field \"{f}\"")
        rows.append(row)
    return rows


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


def resolve_source(source: str, *, option: str, not_found: str, split_file: str | None = None) -> Path | str:
    """Where a task's data option (``option``, e.g. ``task.options.path``) points: a local file (a ``Path``),
    or an HF dataset for :func:`hub_rows` (a ``str``: a hub id, or a local copy of one).

    A directory gives its ``split_file`` (e.g. ``test.jsonl``) when it holds one, else it is read as a local
    dataset copy (without a ``split_file``, always). A name that does not exist is a hub id unless it looks like
    a path (a ``.jsonl``/``.json`` suffix, or a leading ``/``, ``.`` or ``~``): then it is an error, ``not_found``
    with ``{path}`` filled in.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        if split_file is None:
            return source
        if (path / split_file).is_file():
            return path / split_file
        if is_dataset_dir(path):
            return source
        raise DataError(f"{path / split_file} not found; {option} must hold {split_file}")
    if path.is_file():
        return path
    if path.suffix in (".jsonl", ".json") or source.startswith(("/", ".", "~")):
        raise DataError(not_found.format(path=path))
    return source


def _declares_config(repo: Path, config: str) -> bool:
    readme = repo / "README.md"
    return readme.is_file() and f"config_name: {config}" in readme.read_text(encoding="utf-8", errors="replace")


# -- generated items and published files ----------------------------------------------------------------------

def name_stream(rng: random.Random, pool: Sequence[str], k: int) -> Iterator[tuple[str, ...]]:
    """Consecutive k-name chunks of a seeded shuffle of the pool, reshuffled when used up."""
    while True:
        order = rng.sample(list(pool), len(pool))
        for i in range(0, len(order) - k + 1, k):
            yield tuple(order[i:i + k])


def sample_part(draw: Callable[[int], T], key: Callable[[T], str], part: str, n: int, what: str) -> list[T]:
    """n items from ``draw(i)`` that fall in ``part``; distinct while the item space allows."""
    out: list[T] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n:
        item, tries = draw(len(out)), tries + 1
        if tries > 1000 * (n + 10):
            raise DataError(f"{what}: cannot draw {n} '{part}' items from this name pool; give more names "
                            "(task.options.names_file / top_n) or fewer per item")
        k = key(item)
        if partition(k) != part or (k in seen and tries < 50 * (n + 10)):
            continue
        seen.add(k)
        out.append(item)
    return out


def published_example(path: Path, i: int, row: dict, question: str, gold: str, meta: dict) -> Example:
    """An Example from record ``i`` of a published file, keeping its source and any RaR rephrasing."""
    meta = {**meta, "source": str(path)}
    if isinstance(row.get("refined_question"), str):
        meta["refined_question"] = row["refined_question"]
    return Example(id=str(i), question=question, gold=gold, meta=meta)


def read_published(path_str: str) -> tuple[Path, list[tuple[int, dict]]]:
    """Records of a published file: a JSON list (RaR) or ``{"examples": [...]}`` (Kojima)."""
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise DataError(f"task.options.source file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON ({e.msg}); task.options.source must be a RaR JSON list or a "
                        "Kojima {\"examples\": [...]} file") from None
    rows = data.get("examples") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not rows:
        raise DataError(f"{path}: expected a non-empty JSON list of records (RaR) or {{\"examples\": [...]}} "
                        "(Kojima)")
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise DataError(f"{path} record {i}: expected a JSON object, got {type(r).__name__}")
    return path, list(enumerate(rows))


def text_field(path: Path, i: int, row: dict, name: str) -> str:
    v = row.get(name)
    if not isinstance(v, str) or not v.strip():
        raise DataError(f"{path} record {i}: missing or empty string field \"{name}\"; fix or remove the record")
    return v


def split_published(items: list[Example], split: str, n: int, seed: int, eval_fraction: float,
                    task: str) -> list[Example]:
    """A fixed shuffle cuts the file into eval (first part) and train (``splits.split_indices``, scheme
    ``fixed_shuffle``); ``seed`` orders a part."""
    return [dataclasses.replace(items[i], id=f"{split}-{i}")
            for i in split_indices(split, n, scheme="fixed_shuffle", n_rows=len(items), eval_fraction=eval_fraction,
                                   split_key=f"{task}-split", order_key=f"{task}-{split}-{seed}")]


# -- the symbolic tasks' options ---------------------------------------------------------------------

@dataclass(frozen=True)
class NamesPoolOptions:
    """Options of the tasks whose items are built from a pool of first names."""

    source: str | None = None  # published file (RaR list, Kojima {"examples"}, ...) instead of generating
    names_file: str | None = None  # JSON list of names or {"M": [...], "F": [...]}; default: built-in list
    top_n: int = 220  # names per gender taken from an M/F names_file
    instruction: int = 0  # wording of the question (the task lists them)
    eval_fraction: float = 0.5  # with source: share of the file held out for eval
