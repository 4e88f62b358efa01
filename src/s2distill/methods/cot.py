"""Chain-of-Thought: zero-shot ("step by step") or few-shot with worked exemplars.

Few-shot exemplars are identical leading chat turns for every request, so a
server with prompt caching reuses their KV cache across requests.
"""
from __future__ import annotations

from . import single_step

ZERO_SHOT = "{question}\nLet's think step by step, then write the final line as \"The answer is {hint}.\""
FEW_SHOT_USER = "{question}\nThink step by step, then finish with \"The answer is {hint}.\""


def shots(task, few_shot: int) -> list[dict]:
    msgs: list[dict] = []
    for q, worked in task.exemplars(few_shot) if few_shot > 0 else []:
        msgs += [{"role": "user", "content": FEW_SHOT_USER.format(question=q, hint=task.answer_hint)},
                 {"role": "assistant", "content": worked}]
    return msgs


def messages(task, prefix: list[dict], question: str) -> list[dict]:
    template = FEW_SHOT_USER if prefix else ZERO_SHOT
    return prefix + [{"role": "user", "content": template.format(question=question, hint=task.answer_hint)}]


def run(task, examples, backend, params, cfg=None):
    prefix = shots(task, cfg.few_shot if cfg is not None else 0)
    return single_step("cot", "reason", task, examples, backend,
                       [messages(task, prefix, e.question) for e in examples], params)
