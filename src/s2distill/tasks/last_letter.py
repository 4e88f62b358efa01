"""Last-letter concatenation (Kojima et al. 2022; RaR, Deng et al. 2023).

"Take the last letters of the words in "Elon Musk" and concatenate them." -> "nk".
Generated items follow the RaR / Kojima scheme: the name pool is shuffled with a seed and
cut into consecutive chunks (no name repeats within an item), reshuffled when used up.
Train, eval and few-shot items fall in disjoint parts of the item space (a hash of the
names), so they never share a question whatever the seeds. A published file
(``source``) is split instead by a fixed shuffle into disjoint train/eval parts.

Also the shared helpers of the symbolic tasks: partitioning, name streams, published files.
"""
from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..errors import ConfigError, DataError
from ..types import Example, stable_hash
from .answers import extract_letters, normalize_letters  # noqa: F401 - re-exported
from .base import Task
from .names import checked_name_pool

T = TypeVar("T")

TEMPLATES = (
    'Take the last letters of the words in "{names}" and concatenate them.',  # RaR
    'Take the last letters of each words in "{names}" and concatenate them.',  # Kojima (sic)
    'Concatenate the last letters of the words in "{names}".',
    'Write down the last letter of each word in "{names}", in order, and join them together.',
    'What string do you get by joining the final letter of every word in "{names}", in order?',
)
DIRECT_INSTRUCTION = "Answer with only the letters, nothing else."
_PHRASE = re.compile(r'"([^"]+)"')


# --- shared by the symbolic tasks ----------------------------------------------------------------

def partition(key: str) -> str:
    """Which part of the item space an item belongs to: 'train' (5/8), 'eval' (2/8) or 'shots' (1/8)."""
    b = int(stable_hash(key), 16) % 8
    return "shots" if b == 0 else "eval" if b <= 2 else "train"


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


def check_split(split: str, task: str) -> None:
    if split not in ("train", "eval"):
        raise ConfigError(f"{task} split must be 'train' or 'eval', got '{split}'")


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
    """A fixed shuffle cuts the file into eval (first part) and train; ``seed`` samples within a part."""
    idx = list(range(len(items)))
    random.Random(f"{task}-split").shuffle(idx)
    cut = round(len(idx) * eval_fraction)
    part = idx[:cut] if split == "eval" else idx[cut:]
    random.Random(f"{task}-{split}-{seed}").shuffle(part)
    return [dataclasses.replace(items[i], id=f"{split}-{i}") for i in part[: n if n >= 0 else None]]


# --- the task ------------------------------------------------------------------------------------

def last_letters(words: Sequence[str]) -> str:
    """The gold answer: last characters concatenated, case kept."""
    return "".join(w[-1] for w in words)


@dataclass(frozen=True)
class LastLetterOptions:
    n_names: int = 2  # RaR: 2 or 4; Kojima: 4
    source: str | None = None  # published file (RaR list or Kojima {"examples"}) instead of generating
    names_file: str | None = None  # JSON list of names or {"M": [...], "F": [...]}; default: built-in list
    top_n: int = 220  # names per gender taken from an M/F names_file
    instruction: int = 0  # wording: 0 RaR, 1 Kojima, 2-4 rewordings
    eval_fraction: float = 0.5  # with source: share of the file held out for eval


class LastLetterTask(Task):
    direct_instruction = DIRECT_INSTRUCTION
    name = "last_letter"
    Options = LastLetterOptions
    answer_kind = "letters"
    answer_hint = "<letters>"
    n_perturbations = len(TEMPLATES) - 1  # the other wordings; the names and their order stay

    def __init__(self, options: LastLetterOptions | None = None):
        self.options = options or LastLetterOptions()
        self.pool = checked_name_pool(self.options, len(TEMPLATES), "n_names")

    def question(self, names: Sequence[str], instruction: int | None = None) -> str:
        i = self.options.instruction if instruction is None else instruction
        return TEMPLATES[i].format(names=" ".join(names))

    def _generated(self, split: str, n: int, seed: int) -> list[Example]:
        stream = name_stream(random.Random(f"last_letter-{split}-{seed}"), self.pool, self.options.n_names)
        items = sample_part(lambda i: next(stream), "|".join, split, n, "last_letter")
        return [Example(id=f"{split}-{i}", question=self.question(names), gold=last_letters(names),
                        meta={"names": list(names)}) for i, names in enumerate(items)]

    def _published(self) -> list[Example]:
        path, rows = read_published(self.options.source)  # type: ignore[arg-type]
        out = []
        for i, r in rows:
            q, a = text_field(path, i, r, "question").strip(), text_field(path, i, r, "answer").strip()
            m = _PHRASE.search(q)
            if not m:
                raise DataError(f"{path} record {i}: no quoted \"names\" in the question; is this a last-letter file?")
            out.append(published_example(path, i, r, q, a, {"phrase": m.group(1)}))
        return out

    def load(self, split: str, n: int, seed: int = 0) -> list[Example]:
        check_split(split, self.name)
        if self.options.source:
            return split_published(self._published(), split, n, seed, self.options.eval_fraction, self.name)
        return self._generated(split, n, seed)

    def extract(self, text: str) -> str | None:
        return extract_letters(text)

    def normalize(self, answer: str) -> str | None:
        return normalize_letters(answer) or None

    def exemplars(self, k: int) -> list[tuple[str, str]]:
        """Worked examples for few-shot CoT, from the 'shots' part (disjoint from train/eval)."""
        stream = name_stream(random.Random("last_letter-shots"), self.pool, self.options.n_names)
        shots = []
        for names in sample_part(lambda i: next(stream), "|".join, "shots", k, "last_letter exemplars"):
            # spelled out: a small model cannot see the letters inside a multi-letter token
            steps = " ".join(f'"{w}" is spelled {"-".join(w)}, so its last letter is "{w[-1]}".' for w in names)
            ans = last_letters(names)
            shots.append((self.question(names), f'{steps} Concatenating them gives "{ans}". The answer is {ans}.'))
        return shots

    def rephrase_exemplar(self, question: str) -> str:
        """A faithful, expanded rephrasing of an exemplar question (few-shot RaR's rephrase step)."""
        m = _PHRASE.search(question)
        words = m.group(1).split() if m else []
        listed = ", ".join(f'"{w}"' for w in words)
        return (f"You are given {len(words)} words in this order: {listed}. For each word, find its last letter. "
                "Then write those letters one after another, in the same order, as one string without spaces. "
                "What is that string?")

    def perturb(self, ex: Example, i: int) -> Example:
        """The i-th rewording of the instruction around the same quoted names (same order, same answer)."""
        if not 0 <= i < self.n_perturbations:
            raise ConfigError(f"last_letter has {self.n_perturbations} perturbations; got index {i}")
        m = _PHRASE.search(ex.question)
        if not m:
            raise DataError(f"example {ex.id}: no quoted \"names\" in the question, cannot reword it")
        variants = [t.format(names=m.group(1)) for t in TEMPLATES]
        variants = [v for v in variants if v != ex.question]
        return dataclasses.replace(ex, question=variants[i], meta={**ex.meta, "perturbation": f"wording-{i}"})
