"""Build pairwise-judge data from a model's own answers (``s2distill pairs``), for the
``judge`` task's ``pairs`` source (JSONL of question, response_a, response_b, label).

* ``gsm8k``: the model answers GSM8K questions with zero-shot CoT, ``samples`` times at
  temperature 0.8; a question yields a pair when at least one answer is right and one is
  wrong (checked against the reference), so the label is known. A/B order is seeded.
* ``mt_bench``: the model answers each MT-bench first-turn question under two settings
  (concise and greedy; detailed and sampled). No label: these pairs measure position
  consistency only.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from .errors import DataError
from .types import GenRequest, SamplingParams

COT = "{question}\nLet's think step by step, then write the final line as \"The answer is <number>.\""
SETTINGS = (("Answer concisely, in a few sentences.", 0.0), ("Answer in detail, covering every aspect.", 0.8))


def gsm8k_pairs(backend, rows: Sequence[dict], samples: int = 4, seed: int = 0, max_tokens: int = 320) -> list[dict]:
    from .tasks.gsm8k import GSM8KTask, gold_from_solution

    task = GSM8KTask()
    reqs = [GenRequest(({"role": "user", "content": COT.format(question=r["question"])},),
                       SamplingParams(max_tokens=max_tokens, temperature=0.8, n=samples, seed=seed)) for r in rows]
    out = []
    for i, (r, comps) in enumerate(zip(rows, backend.generate(reqs))):
        gold = gold_from_solution(r["answer"])
        right = [c.text for c in comps if task.score(task.extract(c.text), gold)]
        wrong = [c.text for c in comps if task.extract(c.text) is not None and not task.score(task.extract(c.text), gold)]
        if not right or not wrong:
            continue
        a_first = random.Random(f"pairs-{seed}-{i}").random() < 0.5
        a, b = (right[0], wrong[0]) if a_first else (wrong[0], right[0])
        out.append({"id": f"gsm8k-{i}", "question": r["question"], "response_a": a, "response_b": b,
                    "label": "A" if a_first else "B", "source": "gsm8k self-answers"})
    return out


def mt_bench_pairs(backend, questions: Sequence[dict], seed: int = 0, max_tokens: int = 320) -> list[dict]:
    reqs = [GenRequest(({"role": "system", "content": sys_prompt}, {"role": "user", "content": q["turns"][0]}),
                       SamplingParams(max_tokens=max_tokens, temperature=temp, n=1, seed=seed))
            for q in questions for sys_prompt, temp in SETTINGS]
    res = backend.generate(reqs)
    out = []
    for i, q in enumerate(questions):
        (a,), (b,) = res[2 * i], res[2 * i + 1]
        out.append({"id": f"mt-{q.get('question_id', i)}", "question": q["turns"][0], "response_a": a.text,
                    "response_b": b.text, "label": None, "category": q.get("category"),
                    "source": "mt_bench self-answers (concise vs detailed)"})
    return out


def load_rows(path: str | Path, required: tuple[str, ...]) -> list[dict]:
    from .tasks.common import read_jsonl_rows

    p = Path(path).expanduser()
    if p.is_dir():
        p = p / ("test.jsonl" if "answer" in required else "question.jsonl")
    if not p.is_file():
        raise DataError(f"--data {p} not found")
    return read_jsonl_rows(p, required)
