"""Methods: one short file each, ``run(task, examples, backend, cfg) -> list[Trace]``.

Every step of a method builds all its requests first and makes one batched
``backend.generate`` call; a multi-step method is a short sequence of such steps.
"""
from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence

from ..keys import check_keys
from ..types import Call, Completion, Example, GenRequest, Message, Sample, SamplingParams, Trace


def calls_per_sample(method_cfg) -> int:
    """Model calls one sample of a method makes (a method module may define ``steps_of(cfg)``)."""
    from ..registry import METHODS

    module = importlib.import_module(METHODS.target(method_cfg.name).partition(":")[0])
    steps_of = getattr(module, "steps_of", None)
    return steps_of(method_cfg) if steps_of else 1


def check_config(cfg) -> None:
    """The method's options: its steps and its prompt overrides (asked by ``config.validate``)."""
    from .prompts import check_prompts

    calls_per_sample(cfg.method)
    check_prompts(cfg.method)  # method.options.prompts.<step>: placeholders checked before any model call


def method_options(cfg, method: str, allowed: Sequence[str]) -> dict:
    """``cfg.options`` checked against a method's allowed option names."""
    opts = dict(getattr(cfg, "options", None) or {})
    check_keys(opts, allowed, lambda k: f"unknown option method.options.{k} for method '{method}'")
    return opts


def per_sample_step(backend, params: SamplingParams,
                    messages: Sequence[Sequence[tuple[Message, ...]]]) -> list[list[tuple[GenRequest, Completion]]]:
    """A step that follows each sample of the previous one, as one batched call: ``messages[i][j]``
    is the request for sample j of example i, sampled once with seed ``params.seed + j`` (so every
    sample has its own cache identity). Returns (request, completion) in the same nesting."""
    reqs = [[GenRequest(m, dataclasses.replace(params, n=1, seed=params.seed + j)) for j, m in enumerate(row)]
            for row in messages]
    results = iter(backend.generate([r for row in reqs for r in row]))
    return [[(req, next(results)[0]) for req in row] for row in reqs]


def params_from(cfg, *, n: int | None = None, temperature: float | None = None, max_tokens: int | None = None,
                seed: int = 0) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens if max_tokens is not None else cfg.max_tokens,
                          temperature=cfg.temperature if temperature is None else temperature,
                          top_p=cfg.top_p, n=cfg.n if n is None else n, seed=seed)


def single_step(method: str, step: str, task, examples: Sequence[Example], backend,
                messages: Sequence[list[Message]], params: SamplingParams) -> list[Trace]:
    """Run one batched call per example (n samples each) and wrap the results as traces."""
    requests = [GenRequest(tuple(m), params) for m in messages]
    results = backend.generate(requests)
    traces = []
    for ex, req, comps in zip(examples, requests, results):
        samples = tuple(Sample(response=c.text, answer=task.extract(c.text), calls=(Call(step, req.messages, c),))
                        for c in comps)
        traces.append(Trace(example_id=ex.id, method=method, samples=samples))
    return traces
