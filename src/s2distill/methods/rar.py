"""Rephrase and Respond (Deng et al. 2023, arXiv 2311.04205), one- or two-step.

``method.options.steps`` (default 2):

* 1: one call per sample: the model rephrases, expands and answers in one response.
* 2: call 1 rephrases the question (``n`` samples, one batched generate); call 2 answers
  the original question given each rephrasing (``n=1`` per step-1 sample, all pairs in one
  batched generate; same temperature, seed ``params.seed + j`` for the j-th rephrasing so
  every sample has its own identity). Each sample keeps both calls ("rephrase", "respond");
  the answer is extracted from the final response.

``run(..., rephrase_backend=B)`` takes the rephrasings from another model ``B`` (RaR's
"stronger model rephrases" variant); by default the same backend does both steps.
"""
from __future__ import annotations

import dataclasses

from ..errors import ConfigError
from ..registry import did_you_mean
from ..types import Call, GenRequest, Message, Sample, Trace
from . import single_step

ONE_STEP = '"{question}"\nRephrase and expand the question, and respond. Finish with "The answer is {hint}."'
REPHRASE = ('"{question}"\nGiven the above question, rephrase and expand it to help you do better answering. '
            "Maintain all information in the original question.")
RESPOND = ("(original) {question}\n(rephrased) {rephrased}\nUse your answer for the rephrased question to answer "
           'the original question. Finish with "The answer is {hint}."')
OPTIONS = ("steps",)


def steps_of(cfg) -> int:
    opts = dict(getattr(cfg, "options", None) or {})
    for k in opts:
        if k not in OPTIONS:
            raise ConfigError(f"unknown option method.options.{k} for method 'rar'{did_you_mean(k, OPTIONS)} "
                              f"(allowed: {', '.join(OPTIONS)})")
    steps = opts.get("steps", 2)
    if steps not in (1, 2) or isinstance(steps, bool):
        raise ConfigError(f"method.options.steps must be 1 or 2, got {steps!r}")
    return steps


def _user(text: str) -> tuple[Message, ...]:
    return ({"role": "user", "content": text},)


def run(task, examples, backend, params, cfg=None, *, rephrase_backend=None) -> list[Trace]:
    hint = task.answer_hint
    if steps_of(cfg) == 1:
        return single_step("rar", "respond", task, examples, backend,
                           [list(_user(ONE_STEP.format(question=e.question, hint=hint))) for e in examples], params)

    first = [GenRequest(_user(REPHRASE.format(question=e.question)), params) for e in examples]
    rephrasings = (rephrase_backend or backend).generate(first)
    second = [GenRequest(_user(RESPOND.format(question=ex.question, rephrased=c.text.strip(), hint=hint)),
                         dataclasses.replace(params, n=1, seed=params.seed + j))
              for ex, comps in zip(examples, rephrasings) for j, c in enumerate(comps)]
    finals = iter(zip(second, backend.generate(second)))

    traces = []
    for ex, req, comps in zip(examples, first, rephrasings):
        samples = []
        for c in comps:
            req2, (final,) = next(finals)
            samples.append(Sample(response=final.text, answer=task.extract(final.text),
                                  calls=(Call("rephrase", req.messages, c), Call("respond", req2.messages, final))))
        traces.append(Trace(example_id=ex.id, method="rar", samples=tuple(samples)))
    return traces
