"""Chain-of-Thought: zero-shot ("step by step") or few-shot with worked exemplars.

Few-shot exemplars are identical leading chat turns for every request, so a
server with prompt caching reuses their KV cache across requests.
"""
from __future__ import annotations

from ..errors import ConfigError
from ..tasks.base import FewShot
from . import Method, method_options, single_step
from .prompts import Prompt, prompts_of

ZERO_SHOT = "{question}\nLet's think step by step, then write the final line as \"The answer is {hint}.\""
FEW_SHOT_USER = "{question}\nThink step by step, then finish with \"The answer is {hint}.\""
# method.options.prompts.<step>: {hint} is the task's answer placeholder, e.g. "<number>"
PROMPTS = {"zero_shot": Prompt(ZERO_SHOT, ("question",), ("hint",)),
           "few_shot": Prompt(FEW_SHOT_USER, ("question",), ("hint",))}
OPTIONS = ("prompts",)


def templates(cfg) -> dict[str, str]:
    method_options(cfg, "cot", OPTIONS)
    return prompts_of(cfg, "cot", PROMPTS)


def shots(task, few_shot: int, prompts: dict[str, str] | None = None) -> list[dict]:
    few = (prompts or {}).get("few_shot", FEW_SHOT_USER)
    if few_shot > 0 and not isinstance(task, FewShot):
        raise ConfigError(f"method 'cot' with few_shot={few_shot} needs a task with worked exemplars (FewShot in "
                          f"s2distill.tasks.base); task '{task.name}' has none: set method.few_shot=0")
    msgs: list[dict] = []
    for q, worked in task.exemplars(few_shot) if few_shot > 0 else []:
        msgs += [{"role": "user", "content": few.format(question=q, hint=task.answer_hint)},
                 {"role": "assistant", "content": worked}]
    return msgs


def messages(task, prefix: list[dict], question: str, prompts: dict[str, str] | None = None) -> list[dict]:
    prompts = prompts or {"zero_shot": ZERO_SHOT, "few_shot": FEW_SHOT_USER}
    template = prompts["few_shot"] if prefix else prompts["zero_shot"]
    return prefix + [{"role": "user", "content": template.format(question=question, hint=task.answer_hint)}]


def run(task, examples, backend, params, cfg=None):
    prompts = templates(cfg)
    prefix = shots(task, cfg.few_shot if cfg is not None else 0, prompts)
    return single_step("cot", "reason", task, examples, backend,
                       [messages(task, prefix, e.question, prompts) for e in examples], params)


METHOD = Method("cot", run, PROMPTS, OPTIONS, shots=shots)
