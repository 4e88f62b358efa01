"""Synthetic arithmetic word problems with an exactly computed answer.

A problem starts with a quantity and applies ``depth`` operations (add, subtract,
multiply, divide) told as a short story; intermediate values stay non-negative
integers and divisions are exact. Same seed, same problems.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..types import Example
from .base import FewShot, LocalData
from .numeric import NumericTask
from .splits import check_split, stream_split

NAMES = ["Tom", "Anna", "Liam", "Maya", "Noah", "Emma", "Omar", "Sofia", "Ravi", "Chloe", "Ben", "Lucy"]
ITEMS = ["apples", "marbles", "stickers", "books", "cookies", "pencils", "coins", "shells", "cards", "stamps"]
OPS = ("add", "sub", "mul", "div")


@dataclass(frozen=True)
class ArithmeticOptions:
    depth: int = 1  # number of operations, 1..5
    min_value: int = 2
    max_value: int = 20
    ops: list[str] = field(default_factory=lambda: ["add", "sub", "mul"])


def _step(rng: random.Random, value: int, ops: list[str], o: ArithmeticOptions, name: str, item: str):
    """Pick an applicable operation; return (sentence, new_value, worked_step)."""
    choices = list(ops)
    rng.shuffle(choices)
    for op in choices:
        if op == "add":
            x = rng.randint(o.min_value, o.max_value)
            return f"Then {name} buys {x} more {item}.", value + x, f"{value} + {x} = {value + x}"
        if op == "sub" and value - o.min_value >= 1:
            x = rng.randint(min(o.min_value, value - 1), min(o.max_value, value - 1))
            return f"Then {name} gives {x} {item} to a friend.", value - x, f"{value} - {x} = {value - x}"
        if op == "mul":
            x = rng.randint(2, 5)
            return (f"Then {name}'s number of {item} is multiplied by {x}.", value * x,
                    f"{value} * {x} = {value * x}")
        if op == "div":
            divisors = [d for d in range(2, 6) if value % d == 0 and value // d >= 1]
            if divisors:
                x = rng.choice(divisors)
                return (f"Then {name} shares the {item} equally among {x} bags and keeps one bag.", value // x,
                        f"{value} / {x} = {value // x}")
    x = rng.randint(o.min_value, o.max_value)  # fallback: addition always applies
    return f"Then {name} buys {x} more {item}.", value + x, f"{value} + {x} = {value + x}"


def make_problem(rng: random.Random, o: ArithmeticOptions) -> tuple[str, int, list[str]]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    value = rng.randint(o.min_value, o.max_value)
    sentences = [f"{name} has {value} {item}."]
    steps = []
    for _ in range(o.depth):
        sent, value, step = _step(rng, value, o.ops, o, name, item)
        sentences.append(sent)
        steps.append(step)
    sentences.append(f"How many {item} does {name} have now?")
    return " ".join(sentences), value, steps


class ArithmeticTask(NumericTask, FewShot, LocalData):
    name = "arithmetic"
    Options = ArithmeticOptions

    def __init__(self, options: ArithmeticOptions | None = None):
        o = options or ArithmeticOptions()
        if not 1 <= o.depth <= 5:
            raise ConfigError(f"task.options.depth must be in 1..5, got {o.depth}")
        if not 1 <= o.min_value <= o.max_value:
            raise ConfigError("task.options needs 1 <= min_value <= max_value")
        bad = [op for op in o.ops if op not in OPS]
        if bad or not o.ops:
            raise ConfigError(f"task.options.ops must be a non-empty subset of {list(OPS)}, got {o.ops}")
        self.options = o

    def _generate(self, rng: random.Random, n: int, exclude: set[str], prefix: str) -> list[Example]:
        out, seen, tries = [], set(exclude), 0
        while len(out) < n:
            q, ans, steps = make_problem(rng, self.options)
            tries += 1
            if q in seen and tries < 50 * n:
                continue
            seen.add(q)
            out.append(Example(id=f"{prefix}{len(out)}", question=q, gold=str(ans),
                               meta={"depth": self.options.depth, "steps": steps}))
        return out

    def load(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """``train`` and ``eval`` come from separate seeded streams and never share a question."""
        check_split(split, "arithmetic")
        return stream_split(self._generate, lambda e: e.question, split, n, "arith", seed)

    def remote_source(self) -> None:
        """Generated items: ``s2distill validate`` draws them."""
        return None

    def exemplars(self, k: int) -> list[tuple[str, str]]:
        """Worked examples for few-shot CoT, from a stream disjoint from train/eval."""
        rng = random.Random("arith-exemplars")
        shots = []
        for _ in range(k):
            q, ans, steps = make_problem(rng, self.options)
            shots.append((q, " ".join(f"{s}." for s in steps) + f" The answer is {ans}."))
        return shots
