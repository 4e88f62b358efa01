"""System 2 Attention (Weston & Sukhbaatar 2023, arXiv 2311.11829), two batched calls.

Call 1 rewrites the user's text into two labelled parts: the context without the user's
opinion, and the actual question. Call 2 answers from the rewritten text only (the original
text is never shown again). ``n`` samples = ``n`` rewrites, each answered once (seed + j).

A rewrite without the question label falls back to the original text's last question
sentence; one without the context label uses an empty context; one with neither uses the
original text. The fallback is recorded in the sample's ``meta["s2a_fallback"]``.
"""
from __future__ import annotations

import re

from ..types import Call, GenRequest, Sample, Trace
from . import Method, method_options, per_sample_step
from .prompts import Prompt, prompts_of

REWRITE = ("Given the following text by a user, extract the part that is unbiased and not their opinion, so that "
           "using that text alone would be good context for providing an unbiased answer to the question portion of "
           "the text. Please include the actual question or query that the user is asking. Separate this into two "
           'categories labeled with "Unbiased text context (includes all content except user\'s bias):" and '
           '"Question/Query (does not include user bias/preference):".\n\nText by User: {text}')
ANSWER = ('{context}Answer in an unbiased way.\nQuestion: {question}\nFinish with "The answer is {hint}."')

# method.options.prompts.<step>; {context} is "Context: <rewritten context>\n\n" or empty
PROMPTS = {"rewrite": Prompt(REWRITE, ("text",)), "answer": Prompt(ANSWER, ("question",), ("context", "hint"))}
OPTIONS = ("prompts",)

_CONTEXT = re.compile(r"unbiased text context[^:\n]*:\s*(.*?)(?=question\s*/\s*query[^:\n]*:|\Z)", re.IGNORECASE | re.DOTALL)
_QUESTION = re.compile(r"question\s*/\s*query[^:\n]*:\s*(.*)", re.IGNORECASE | re.DOTALL)
_QSENT = re.compile(r"[^.?!]*\?")


def parse_rewrite(text: str, original: str) -> tuple[str, str, str | None]:
    """(context, question, fallback) from a rewrite; ``fallback`` names what was missing, else None."""
    c = _CONTEXT.search(text or "")
    q = _QUESTION.search(text or "")
    context = c.group(1).strip().strip('"').strip() if c else ""
    question = q.group(1).strip().split("\n\n")[0].strip().strip('"').strip() if q else ""
    if question and context:
        return context, question, None
    if question:
        return "", question, "no_context_label"
    sents = _QSENT.findall(original)
    if c and context:
        return context, (sents[-1].strip() if sents else original), "no_question_label"
    return "", original, "no_labels"


def run(task, examples, backend, params, cfg=None) -> list[Trace]:
    method_options(cfg, "s2a", OPTIONS)
    prompts = prompts_of(cfg, "s2a", PROMPTS)
    REWRITE, ANSWER = prompts["rewrite"], prompts["answer"]  # noqa: N806
    first = [GenRequest(({"role": "user", "content": REWRITE.format(text=e.question)},), params) for e in examples]
    rewrites = backend.generate(first)
    parsed = [[parse_rewrite(c.text, ex.question) for c in comps] for ex, comps in zip(examples, rewrites)]
    finals = per_sample_step(backend, params, [
        [({"role": "user", "content": ANSWER.format(context=f"Context: {ctx}\n\n" if ctx else "", question=q,
                                                    hint=task.answer_hint)},) for ctx, q, _ in ps]
        for ps in parsed])
    traces = []
    for ex, req, comps, ps, fin in zip(examples, first, rewrites, parsed, finals):
        samples = [Sample(response=final.text, answer=task.extract(final.text),
                          calls=(Call("rewrite", req.messages, c), Call("answer", req2.messages, final)),
                          meta={"s2a_fallback": fallback} if fallback else {})
                   for c, (_, _, fallback), (req2, final) in zip(comps, ps, fin)]
        traces.append(Trace(example_id=ex.id, method="s2a", samples=tuple(samples)))
    return traces


def steps_of(cfg) -> int:
    return 2


METHOD = Method("s2a", run, PROMPTS, OPTIONS, steps=steps_of)
