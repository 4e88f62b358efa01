"""Train/eval splits: the one place that decides which input of a task is a train input (System 2 sees it,
unlabeled) and which an eval input, and in which order a task takes them.

Which rows a split holds is part of every stage fingerprint and sample-cache key, so no scheme may change;
``tests/test_task_splits.py`` pins the examples every built-in task loads. Rows of a source (a file, a hub
dataset) are split by :func:`split_indices` with a named ``scheme``:

* ``fixed_shuffle`` (published RaR/Kojima files, ``judge``): a shuffle seeded by ``split_key`` (fixed, so
  train and eval never mix) puts the first ``eval_fraction`` into eval, the rest into train;
* ``id_hash`` (``triviaqa_opinion``): a row is eval when a hash of its id, mod 1000, is below
  ``eval_fraction * 1000``: adding rows moves no row;
* ``seeded_id_hash`` (``dataset``): a row is eval when a hash of (``seed``, id) falls below ``eval_fraction``;
  taken in the order of a second hash (``seed + 1``), so the order depends on the ids, not on the lines;
* ``source`` (``gsm8k``): the source's own split (its train / test file), after ``skip`` reserved rows.

``fixed_shuffle``, ``id_hash`` and ``source`` take the part in the order of a shuffle seeded by ``order_key``.
Generated tasks have no rows: the name-pool tasks keep an item when :func:`partition` of its key is the split's
part of the item space; ``arithmetic`` draws train and eval from separate seeded streams (:func:`stream_split`).
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..errors import ConfigError
from ..types import stable_hash

T = TypeVar("T")
SCHEMES = ("fixed_shuffle", "id_hash", "seeded_id_hash", "source")


def check_split(split: str, task: str) -> None:
    if split not in ("train", "eval"):
        raise ConfigError(f"{task} split must be 'train' or 'eval', got '{split}'")


def split_value(seed: int, row_id: str) -> float:
    """Where a row falls in [0, 1) under ``seeded_id_hash``: depends on the seed and the id only."""
    h = hashlib.sha256(f"s2distill-dataset:{seed}:{row_id}".encode()).hexdigest()
    return int(h[:15], 16) / 16 ** 15


def split_indices(split: str, n: int, *, scheme: str, ids: Sequence[str] = (), n_rows: int | None = None,
                  eval_fraction: float = 0.5, split_key: str = "", order_key: str = "", seed: int = 0,
                  skip: int = 0) -> list[int]:
    """Indices of the rows of ``split`` ('train' or 'eval'), in the order the task takes them; the first ``n``
    (all when ``n < 0``). The hash schemes read the rows' ``ids``; the others need only their number
    (``n_rows``, default ``len(ids)``)."""
    count = len(ids) if n_rows is None else n_rows
    evals = split == "eval"
    if scheme == "fixed_shuffle":
        idx = list(range(count))
        random.Random(split_key).shuffle(idx)
        cut = round(count * eval_fraction)
        part = idx[:cut] if evals else idx[cut:]
    elif scheme == "id_hash":
        cut = int(eval_fraction * 1000)
        part = [i for i, rid in enumerate(ids) if (int(stable_hash(rid), 16) % 1000 < cut) == evals]
    elif scheme == "seeded_id_hash":
        part = sorted((i for i, rid in enumerate(ids) if (split_value(seed, rid) < eval_fraction) == evals),
                      key=lambda i: (split_value(seed + 1, ids[i]), ids[i]))
    elif scheme == "source":
        part = list(range(skip, count))
    else:
        raise ConfigError(f"unknown split scheme '{scheme}'; schemes: {', '.join(SCHEMES)}")
    if scheme != "seeded_id_hash":
        random.Random(order_key).shuffle(part)
    return part[: n if n >= 0 else None]


def partition(key: str) -> str:
    """Which part of a generated item space an item belongs to: 'train' (5/8), 'eval' (2/8) or 'shots' (1/8)."""
    b = int(stable_hash(key), 16) % 8
    return "shots" if b == 0 else "eval" if b <= 2 else "train"


def stream_split(generate: Callable[[random.Random, int, set[str], str], list[T]], question: Callable[[T], str],
                 split: str, n: int, key: str, seed: int, reserve: int = 2000) -> list[T]:
    """Train and eval items from separate seeded streams (``{key}-train-{seed}``, ``{key}-eval-{seed}``); eval
    skips every question among the first ``reserve`` train items. ``generate(rng, n, exclude, id_prefix)``."""
    if split == "train":
        return generate(random.Random(f"{key}-train-{seed}"), n, set(), "train-")
    pool = {question(e) for e in generate(random.Random(f"{key}-train-{seed}"), reserve, set(), "x")}
    return generate(random.Random(f"{key}-eval-{seed}"), n, pool, "eval-")
