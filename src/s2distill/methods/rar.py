"""Rephrase and Respond (Deng et al. 2023, arXiv 2311.04205), one- or two-step.

``method.options.steps`` (default 2):

* 1: one call per sample: the model rephrases, expands and answers in one response.
* 2: call 1 rephrases the question (``n`` samples, one batched generate); call 2 answers
  the original question given each rephrasing (``n=1`` per step-1 sample, all pairs in one
  batched generate; same temperature, seed ``params.seed + j`` for the j-th rephrasing so
  every sample has its own identity). Each sample keeps both calls ("rephrase", "respond");
  the answer is extracted from the final response.

``method.few_shot`` = k > 0 prepends k worked exemplars (the task's ``exemplars`` with its
``rephrase_exemplar`` as the rephrasing) as chat turns: the 1-step response shows the
rephrasing and the worked answer; in 2 steps, the rephrase call sees exemplar rephrasings
and the respond call sees worked answers. Exemplars come from a part of the item space
disjoint from train and eval.

``run(..., rephrase_backend=B)`` takes the rephrasings from another model ``B`` (RaR's
"stronger model rephrases" variant); by default the same backend does both steps.
"""
from __future__ import annotations

from ..errors import ConfigError
from ..tasks.base import RephraseFewShot
from ..types import Call, GenRequest, Message, Sample, Trace
from . import Method, method_options, per_sample_step, single_step
from .prompts import Prompt, prompts_of

ONE_STEP = '"{question}"\nRephrase and expand the question, and respond. Finish with "The answer is {hint}."'
REPHRASE = ('"{question}"\nGiven the above question, rephrase and expand it to help you do better answering. '
            "Maintain all information in the original question.")
RESPOND = ("(original) {question}\n(rephrased) {rephrased}\nUse your answer for the rephrased question to answer "
           'the original question. Finish with "The answer is {hint}."')
PROMPTS = {"one_step": Prompt(ONE_STEP, ("question",), ("hint",)),  # method.options.prompts.<step>
           "rephrase": Prompt(REPHRASE, ("question",)),
           "respond": Prompt(RESPOND, ("question", "rephrased"), ("hint",))}
OPTIONS = ("steps", "prompts")


def steps_of(cfg) -> int:
    steps = method_options(cfg, "rar", OPTIONS).get("steps", 2)
    if steps not in (1, 2) or isinstance(steps, bool):
        raise ConfigError(f"method.options.steps must be 1 or 2, got {steps!r}")
    return steps


def _user(text: str) -> tuple[Message, ...]:
    return ({"role": "user", "content": text},)


def _turns(user: str, assistant: str) -> tuple[Message, ...]:
    return ({"role": "user", "content": user}, {"role": "assistant", "content": assistant})


def shots(task, k: int) -> list[tuple[str, str, str]]:
    """k (question, rephrasing, worked answer) exemplars."""
    if k <= 0:
        return []
    if not isinstance(task, RephraseFewShot):
        raise ConfigError(f"method 'rar' with few_shot={k} needs a task with exemplars and rephrase_exemplar "
                          f"(last_letter, coin_flip); task '{task.name}' has none: set method.few_shot=0")
    return [(q, task.rephrase_exemplar(q), worked) for q, worked in task.exemplars(k)]


def run(task, examples, backend, params, cfg=None, *, rephrase_backend=None) -> list[Trace]:
    hint = task.answer_hint
    prompts = prompts_of(cfg, "rar", PROMPTS)
    ONE_STEP, REPHRASE, RESPOND = prompts["one_step"], prompts["rephrase"], prompts["respond"]  # noqa: N806
    ex_shots = shots(task, cfg.few_shot if cfg is not None else 0)
    if steps_of(cfg) == 1:
        prefix = [m for q, r, w in ex_shots
                  for m in _turns(ONE_STEP.format(question=q, hint=hint), f"Rephrased question: {r}\n{w}")]
        return single_step("rar", "respond", task, examples, backend,
                           [prefix + list(_user(ONE_STEP.format(question=e.question, hint=hint))) for e in examples],
                           params)

    pre1 = tuple(m for q, r, _ in ex_shots for m in _turns(REPHRASE.format(question=q), r))
    pre2 = tuple(m for q, r, w in ex_shots for m in _turns(RESPOND.format(question=q, rephrased=r, hint=hint), w))
    first = [GenRequest(pre1 + _user(REPHRASE.format(question=e.question)), params) for e in examples]
    rephrasings = (rephrase_backend or backend).generate(first)
    finals = per_sample_step(backend, params, [
        [pre2 + _user(RESPOND.format(question=ex.question, rephrased=c.text.strip(), hint=hint)) for c in comps]
        for ex, comps in zip(examples, rephrasings)])
    traces = []
    for ex, req, comps, fin in zip(examples, first, rephrasings, finals):
        samples = [Sample(response=final.text, answer=task.extract(final.text),
                          calls=(Call("rephrase", req.messages, c), Call("respond", req2.messages, final)))
                   for c, (req2, final) in zip(comps, fin)]
        traces.append(Trace(example_id=ex.id, method="rar", samples=tuple(samples)))
    return traces


METHOD = Method("rar", run, PROMPTS, OPTIONS, steps=steps_of, shots=shots)
