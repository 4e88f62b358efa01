"""Name -> "module:attr" registries, imported lazily, with did-you-mean errors."""
from __future__ import annotations

import difflib
import importlib
from typing import Any

from .errors import ConfigError


def did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


class Registry:
    def __init__(self, kind: str, entries: dict[str, str]):
        self.kind = kind
        self._entries = dict(entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def register(self, name: str, target: str) -> None:
        self._entries[name] = target

    def target(self, name: str) -> str:
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)} (known: {', '.join(self.names())})"
            )
        return self._entries[name]

    def get(self, name: str) -> Any:
        module, _, attr = self.target(name).partition(":")
        return getattr(importlib.import_module(module), attr)


BACKENDS = Registry(
    "backend",
    {
        "llamacpp": "s2distill.backends.llamacpp:LlamaCppBackend",
        "vllm": "s2distill.backends.vllm:VLLMBackend",
        "openai": "s2distill.backends.openai:OpenAIBackend",
        "transformers": "s2distill.backends.transformers:TransformersBackend",
        "fake": "s2distill.backends.fake:FakeBackend",
    },
)

TASKS = Registry(
    "task",
    {
        "arithmetic": "s2distill.tasks.arithmetic:ArithmeticTask",
        "gsm8k": "s2distill.tasks.gsm8k:GSM8KTask",
        "last_letter": "s2distill.tasks.last_letter:LastLetterTask",
        "coin_flip": "s2distill.tasks.coin_flip:CoinFlipTask",
        "judge": "s2distill.tasks.judge:JudgeTask",
        "triviaqa_opinion": "s2distill.tasks.triviaqa:TriviaQAOpinionTask",
    },
)

METHODS = Registry(
    "method",
    {
        "direct": "s2distill.methods.direct:run",
        "cot": "s2distill.methods.cot:run",
        "rar": "s2distill.methods.rar:run",
        "bsm": "s2distill.methods.bsm:run",
        "s2a": "s2distill.methods.s2a:run",
    },
)

CURATORS = Registry(
    "curator",
    {
        "self_consistency": "s2distill.curate:SelfConsistency",
        "none": "s2distill.curate:NoFilter",
        "input_perturbation": "s2distill.perturb:InputPerturbation",
        "swap_consistency": "s2distill.perturb:SwapConsistency",
        "universal_self_consistency": "s2distill.curate:UniversalSelfConsistency",
    },
)
