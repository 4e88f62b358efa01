"""Methods: one short file each, ending in its :class:`Method` (``METHOD``), registered in ``METHODS``.

A method's ``run(task, examples, backend, params, cfg) -> list[Trace]``: every step builds all its requests
first and makes one batched ``backend.generate`` call; a multi-step method is a short sequence of such steps.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..keys import check_keys
from ..registry import Registry
from ..types import Call, Completion, Example, GenRequest, Message, Sample, SamplingParams, Trace


@dataclass(frozen=True)
class Method:
    """What the toolkit knows of a method, in one object (``METHOD`` at the end of each method file).

    ``run(task, examples, backend, params, cfg=None) -> list[Trace]``; ``prompts``: step -> ``Prompt``, the
    templates ``method.options.prompts.<step>`` may override; ``options``: its ``method.options`` keys;
    ``steps(method_cfg)``: model calls per sample (None: 1); ``shots(task, k)``: the few-shot exemplars a run
    takes (``s2distill validate`` reads them before any engine starts; None: the method takes none). A plug-in
    may register a bare ``run`` function instead: it is wrapped as ``Method(name, run)``."""

    name: str
    run: Callable[..., list[Trace]]
    prompts: Mapping[str, Any] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    steps: Callable[[Any], int] | None = None
    shots: Callable[..., Any] | None = None

    def __call__(self, task, examples, backend, params, cfg=None, **kw) -> list[Trace]:
        return self.run(task, examples, backend, params, cfg, **kw)

    def calls_per_sample(self, method_cfg) -> int:
        return self.steps(method_cfg) if self.steps else 1


# the registered methods (plug-ins add theirs: ``METHODS.register("mine", METHOD)``; modules imported on use)
METHODS = Registry("method", {
    "direct": "s2distill.methods.direct:METHOD",
    "cot": "s2distill.methods.cot:METHOD",
    "rar": "s2distill.methods.rar:METHOD",
    "bsm": "s2distill.methods.bsm:METHOD",
    "s2a": "s2distill.methods.s2a:METHOD",
})


def method_of(name: str) -> Method:
    """The registered method ``name`` as a :class:`Method` (a bare run function wrapped)."""
    from ..errors import ConfigError

    obj = METHODS.get(name)
    if isinstance(obj, Method):
        return obj
    if callable(obj):
        return Method(name=name, run=obj)
    raise ConfigError(f"method '{name}' ({obj!r}) is neither a Method nor a run function; fix: register "
                      "Method(name, run, ...) from s2distill.methods, or run(task, examples, backend, params, cfg)")


def calls_per_sample(method_cfg) -> int:
    """Model calls one sample of a method makes (``Method.steps``)."""
    return method_of(method_cfg.name).calls_per_sample(method_cfg)


def check_config(cfg) -> None:
    """The method's options: its steps and its prompt overrides (asked by ``s2distill.checks``)."""
    from .prompts import check_prompts

    calls_per_sample(cfg.method)
    check_prompts(cfg.method, method_of(cfg.method.name).prompts)  # placeholders checked before any model call


def method_options(cfg, method: str, allowed: Sequence[str]) -> dict:
    """``cfg.options`` checked against a method's allowed option names."""
    opts = dict((cfg.options if cfg is not None else None) or {})
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
