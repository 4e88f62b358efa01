"""Plain, frozen data types that flow between stages, with JSON round-trips.

Everything here is importable without heavy dependencies.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


def _asdict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


def stable_hash(obj: Any, length: int = 16) -> str:
    """Deterministic short hash of any JSON-serialisable object."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


@dataclass(frozen=True)
class Example:
    """One task input. ``gold`` is None for unlabeled data; curators never read it."""

    id: str
    question: str
    gold: str | None = None
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return _asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Example":
        return cls(id=str(d["id"]), question=d["question"], gold=d.get("gold"), meta=d.get("meta") or {})

    def unlabeled(self) -> "Example":
        return dataclasses.replace(self, gold=None)


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0
    stop: tuple[str, ...] = ()
    logprobs: bool = False  # ask the engine for each generated token's log probability (System 1's confidence)

    def to_json(self) -> dict:
        d = _asdict(self)
        d["stop"] = list(self.stop)
        if not self.logprobs:  # absent at its default: the sample keys of runs made before it are unchanged
            d.pop("logprobs")
        return d

    @classmethod
    def from_json(cls, d: dict) -> "SamplingParams":
        d = dict(d)
        d["stop"] = tuple(d.get("stop") or ())
        return cls(**d)


@dataclass(frozen=True)
class GenRequest:
    """A chat request asking for ``params.n`` independent samples."""

    messages: tuple[Message, ...]
    params: SamplingParams = SamplingParams()

    def __post_init__(self) -> None:
        if not isinstance(self.messages, tuple):
            object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))

    def sample_key(self, i: int, model: str = "") -> str:
        """Identity of the i-th sample of this request (used by the resume cache)."""
        p = self.params.to_json()
        p.pop("n")
        return stable_hash({"m": list(self.messages), "p": p, "i": i, "model": model}, 24)


@dataclass(frozen=True)
class Completion:
    text: str
    completion_tokens: int
    prompt_tokens: int = 0
    finish_reason: str = "stop"
    latency_s: float = 0.0
    token_logprobs: tuple[float, ...] | None = None  # per generated token, when the request asked for logprobs

    def to_json(self) -> dict:
        d = _asdict(self)
        if self.token_logprobs is None:
            d.pop("token_logprobs")
        else:
            d["token_logprobs"] = list(self.token_logprobs)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Completion":
        kw = {k: d[k] for k in ("text", "completion_tokens", "prompt_tokens", "finish_reason", "latency_s") if k in d}
        if d.get("token_logprobs") is not None:
            kw["token_logprobs"] = tuple(float(x) for x in d["token_logprobs"])
        return cls(**kw)

    @property
    def probability(self) -> float | None:
        """The probability of the whole completion (product of its tokens'), or None without logprobs."""
        if not self.token_logprobs:
            return None
        import math

        return math.exp(sum(self.token_logprobs))


@dataclass(frozen=True)
class Call:
    """One model call that contributed to a sample (a step of a method)."""

    step: str
    messages: tuple[Message, ...]
    completion: Completion

    def to_json(self) -> dict:
        return {"step": self.step, "messages": list(self.messages), "completion": self.completion.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> "Call":
        return cls(step=d["step"], messages=tuple(d["messages"]), completion=Completion.from_json(d["completion"]))


@dataclass(frozen=True)
class Sample:
    """One full run of a method on one example: its calls, final response, extracted answer."""

    response: str
    answer: str | None
    calls: tuple[Call, ...]
    meta: dict = field(default_factory=dict)  # e.g. parse fallbacks of a multi-step method

    @property
    def generated_tokens(self) -> int:
        return sum(c.completion.completion_tokens for c in self.calls)

    @property
    def latency_s(self) -> float:
        return sum(c.completion.latency_s for c in self.calls)

    def to_json(self) -> dict:
        d = {"response": self.response, "answer": self.answer, "calls": [c.to_json() for c in self.calls]}
        return {**d, "meta": self.meta} if self.meta else d

    @classmethod
    def from_json(cls, d: dict) -> "Sample":
        return cls(response=d["response"], answer=d.get("answer"), calls=tuple(Call.from_json(c) for c in d["calls"]),
                   meta=d.get("meta") or {})


@dataclass(frozen=True)
class Trace:
    """All samples of one method on one example."""

    example_id: str
    method: str
    samples: tuple[Sample, ...]

    def to_json(self) -> dict:
        return {"example_id": self.example_id, "method": self.method, "samples": [s.to_json() for s in self.samples]}

    @classmethod
    def from_json(cls, d: dict) -> "Trace":
        return cls(example_id=str(d["example_id"]), method=d["method"], samples=tuple(Sample.from_json(s) for s in d["samples"]))


@dataclass(frozen=True)
class TrainPair:
    """A distillation target: the System 1 prompt and the curated final answer (no reasoning)."""

    example_id: str
    messages: tuple[Message, ...]
    target: str
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"example_id": self.example_id, "messages": list(self.messages), "target": self.target, "meta": self.meta}

    @classmethod
    def from_json(cls, d: dict) -> "TrainPair":
        return cls(example_id=str(d["example_id"]), messages=tuple(d["messages"]), target=d["target"], meta=d.get("meta") or {})

    def to_chat(self) -> dict:
        """Chat-format record readable as-is by TRL / LLaMA-Factory / axolotl."""
        return {"messages": list(self.messages) + [{"role": "assistant", "content": self.target}]}


@dataclass(frozen=True)
class Rejected:
    example_id: str
    reason: str
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return _asdict(self)


@dataclass(frozen=True)
class EvalRecord:
    system: str
    example_id: str
    prediction: str | None
    gold: str | None
    correct: bool | None  # None: unlabeled input (no gold), no accuracy
    generated_tokens: int
    calls: int
    latency_s: float
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return _asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "EvalRecord":
        return cls(**d)
