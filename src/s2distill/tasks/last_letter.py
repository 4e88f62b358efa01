"""Last-letter concatenation (Kojima et al. 2022; RaR, Deng et al. 2023).

"Take the last letters of the words in "Elon Musk" and concatenate them." -> "nk".
Generated items follow the RaR / Kojima scheme: the name pool is shuffled with a seed and
cut into consecutive chunks (no name repeats within an item), reshuffled when used up.
Train, eval and few-shot items fall in disjoint parts of the item space (a hash of the
names), so they never share a question whatever the seeds. A published file
(``source``) is split instead by a fixed shuffle into disjoint train/eval parts.
"""
from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError, DataError
from ..types import Example
from .answers import extract_letters, normalize_letters  # noqa: F401 - re-exported
from .base import LocalData, Perturbable, RephraseFewShot, Task
from .common import NamesPoolOptions, name_stream, published_example, read_published, sample_part, split_published, text_field
from .splits import check_split
from .names import checked_name_pool

TEMPLATES = (
    'Take the last letters of the words in "{names}" and concatenate them.',  # RaR
    'Take the last letters of each words in "{names}" and concatenate them.',  # Kojima (sic)
    'Concatenate the last letters of the words in "{names}".',
    'Write down the last letter of each word in "{names}", in order, and join them together.',
    'What string do you get by joining the final letter of every word in "{names}", in order?',
)
DIRECT_INSTRUCTION = "Answer with only the letters, nothing else."
_PHRASE = re.compile(r'"([^"]+)"')


# --- the task ------------------------------------------------------------------------------------

def last_letters(words: Sequence[str]) -> str:
    """The gold answer: last characters concatenated, case kept."""
    return "".join(w[-1] for w in words)


@dataclass(frozen=True)
class LastLetterOptions(NamesPoolOptions):
    """``instruction``: 0 RaR, 1 Kojima, 2-4 rewordings; ``source``: a RaR list or Kojima {"examples"} file."""

    n_names: int = 2  # RaR: 2 or 4; Kojima: 4


class LastLetterTask(Task, RephraseFewShot, Perturbable, LocalData):
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

    def remote_source(self) -> None:
        """Generated items, or a local ``source`` file: ``s2distill validate`` reads them."""
        return None

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
