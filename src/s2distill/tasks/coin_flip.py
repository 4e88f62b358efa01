"""Coin flip (Kojima et al. 2022; RaR, Deng et al. 2023).

"A coin is heads up. Ann flips the coin. Bob does not flip the coin. Is the coin still heads
up? Note that "flip" here means "reverse"." -> "no" (yes when the number of flips is even).
Each person flips with p = 0.5 given the item's label, and labels come in seeded yes/no
pairs, so every split is exactly balanced (an odd n has one extra random label). Splits are
disjoint as in ``last_letter``; a published file (RaR list, Kojima ``{"examples"}``, or the
raw ``{inputs, targets}`` set) can be loaded instead with ``source``.
"""
from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError, DataError
from ..types import Example
from .answers import YES_NO_INSTRUCTION as DIRECT_INSTRUCTION  # noqa: F401 - re-exported
from .answers import answer_format
from .answers import extract_yes_no  # noqa: F401 - re-exported
from .base import Formatted, LocalData, Perturbable, RephraseFewShot
from .common import NamesPoolOptions, name_stream, published_example, read_published, sample_part, split_published, text_field
from .splits import check_split
from .names import checked_name_pool

Person = tuple[str, bool]  # (name, flips)

ENDINGS = (
    'Is the coin still heads up? Note that "flip" here means "reverse".',  # Kojima
    ' Is the coin still heads up? Flip means reverse.',  # RaR (double space before "Is", as in the data)
    'Is the coin still showing heads? Here "flip" means "turn over".',
    'Is heads still facing up now? Note that "flip" here means "reverse".',
    'After all of this, is the coin still heads up? ("Flip" means "reverse".)',
)
ORDERS = ("reverse", "same", "rotate", "reverse")  # people order of perturbation i (parity ignores order)

_QUESTION = re.compile(r"^\s*(?:Q:\s*)?A coin is heads up\.((?:\s*[^.]+? (?:flips|does not flip) the coin\.)+)"
                       r"\s*(.*?)\s*$", re.DOTALL)
_ACT = re.compile(r"\s*([^.]+?) (flips|does not flip) the coin\.")


def coin_answer(flips: Sequence[bool]) -> str:
    """The gold answer: heads up again iff the number of flips is even."""
    return "yes" if sum(flips) % 2 == 0 else "no"


def render(people: Sequence[Person], ending: str) -> str:
    acts = " ".join(f"{n} flips the coin." if f else f"{n} does not flip the coin." for n, f in people)
    return f"A coin is heads up. {acts} {ending}"


def parse_question(question: str) -> tuple[list[Person], str] | None:
    """(people in order, final question) of a coin-flip question; None if it is not one."""
    m = _QUESTION.match(question)
    if not m:
        return None
    return [(n.strip(), act == "flips") for n, act in _ACT.findall(m.group(1))], m.group(2)


def _key(people: Sequence[Person]) -> str:
    """Split key: independent of order, so a reordered item stays in its part."""
    return "|".join(sorted(f"{n}:{int(f)}" for n, f in people))


@dataclass(frozen=True)
class CoinFlipOptions(NamesPoolOptions):
    """``instruction`` (the final question): 0 Kojima, 1 RaR, 2-4 rewordings; ``source``: a RaR list, Kojima
    {"examples"} or the raw {inputs, targets} file."""

    n_people: int = 2  # RaR: 2; Kojima: 4


class CoinFlipTask(Formatted, RephraseFewShot, Perturbable, LocalData):
    """Yes/no answers (the shared ``yes_no`` format; a model's answer normalised by extraction)."""

    name = "coin_flip"
    Options = CoinFlipOptions
    answer_format = answer_format("yes_no")
    n_perturbations = len(ORDERS)  # each: another final question, and the people reordered or not

    def __init__(self, options: CoinFlipOptions | None = None):
        self.options = options or CoinFlipOptions()
        self.pool = checked_name_pool(self.options, len(ENDINGS), "n_people")

    def question(self, people: Sequence[Person]) -> str:
        return render(people, ENDINGS[self.options.instruction])

    def _items(self, part: str, n: int, seed: str) -> list[list[Person]]:
        rng = random.Random(f"coin_flip-{part}-{seed}")
        labels: list[str] = []
        while len(labels) < n:  # yes/no pairs in random order: every even prefix is balanced
            labels += ["yes", "no"] if rng.random() < 0.5 else ["no", "yes"]
        stream = name_stream(rng, self.pool, self.options.n_people)

        def draw(i: int) -> list[Person]:
            flips = [rng.random() < 0.5 for _ in range(self.options.n_people - 1)]
            flips.append(coin_answer(flips) != labels[i])  # the last flip sets the parity
            return list(zip(next(stream), flips))

        return sample_part(draw, _key, part, n, "coin_flip")

    def _published(self) -> list[Example]:
        path, rows = read_published(self.options.source)  # type: ignore[arg-type]
        out = []
        for i, r in rows:
            if "inputs" in r:  # raw skrishna/coin_flip items, turned into questions as RaR did
                q = re.sub(r"^\s*Q:\s*", "", text_field(path, i, r, "inputs")).strip() + " Flip means reverse."
                a = text_field(path, i, r, "targets")
            else:
                q, a = text_field(path, i, r, "question").strip(), text_field(path, i, r, "answer")
            a = a.strip().lower()
            parsed = parse_question(q)
            if parsed is None or a not in ("yes", "no"):
                raise DataError(f"{path} record {i}: not a coin-flip question with a yes/no answer")
            out.append(published_example(path, i, r, q, a, {"people": [list(p) for p in parsed[0]]}))
        return out

    def remote_source(self) -> None:
        """Generated items, or a local ``source`` file: ``s2distill validate`` reads them."""
        return None

    def load(self, split: str, n: int, seed: int = 0) -> list[Example]:
        check_split(split, self.name)
        if self.options.source:
            return split_published(self._published(), split, n, seed, self.options.eval_fraction, self.name)
        return [Example(id=f"{split}-{i}", question=self.question(p), gold=coin_answer([f for _, f in p]),
                        meta={"people": [list(x) for x in p]})
                for i, p in enumerate(self._items(split, n, str(seed)))]

    def normalize(self, answer: str) -> str | None:  # a free-text answer too (the format's reads labels only)
        return extract_yes_no(answer) or None

    def exemplars(self, k: int) -> list[tuple[str, str]]:
        """Worked examples for few-shot CoT, from the 'shots' part (disjoint from train/eval)."""
        shots = []
        for people in self._items("shots", k, "fixed"):
            state, steps = "heads", []
            for name, f in people:
                if f:
                    state = "tails" if state == "heads" else "heads"
                    steps.append(f"{name} flips the coin, so it is now {state} up.")
                else:
                    steps.append(f"{name} does not flip the coin, so it stays {state} up.")
            ans = coin_answer([f for _, f in people])
            verdict = "it is still heads up" if ans == "yes" else "it is not heads up"
            shots.append((self.question(people),
                          f"The coin starts heads up. {' '.join(steps)} The coin ends {state} up, so {verdict}. "
                          f"The answer is {ans}."))
        return shots

    def rephrase_exemplar(self, question: str) -> str:
        """A faithful, expanded rephrasing of an exemplar question (few-shot RaR's rephrase step)."""
        parsed = parse_question(question)
        people = parsed[0] if parsed else []
        acts = "; ".join(f"{n} {'flips it over' if f else 'leaves it as it is'}" for n, f in people)
        return (f"A coin starts with heads facing up. Then {len(people)} people act on it, one after another: "
                f"{acts}. Each flip reverses the coin, turning heads to tails or tails to heads. After all of "
                "them have acted, is heads still facing up? Answer yes or no.")

    def perturb(self, ex: Example, i: int) -> Example:
        """The i-th variant: another final question, people reordered per ``ORDERS[i]`` (same answer)."""
        if not 0 <= i < self.n_perturbations:
            raise ConfigError(f"coin_flip has {self.n_perturbations} perturbations; got index {i}")
        parsed = parse_question(ex.question)
        if parsed is None:
            raise DataError(f"example {ex.id}: not a coin-flip question, cannot perturb it")
        people, own = parsed
        order = ORDERS[i]
        if order == "reverse":
            people = people[::-1]
        elif order == "rotate":
            people = people[1:] + people[:1]
        ending = [e for e in ENDINGS if e.strip() != own.strip()][i]
        return dataclasses.replace(ex, question=render(people, ending),
                                   meta={**ex.meta, "people": [list(p) for p in people],
                                         "perturbation": f"wording-{i},{order}"})
