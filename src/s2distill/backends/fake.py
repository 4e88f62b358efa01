"""A scripted backend for unit tests only."""
from __future__ import annotations

from collections.abc import Callable, Sequence

from ..types import Completion, GenRequest
from .base import Backend


class FakeBackend(Backend):
    """Answers with ``responder(request, sample_index) -> str``; counts whitespace tokens.

    Records every request it receives in ``self.requests`` and the size of every
    ``generate`` batch in ``self.batches`` so tests can assert batching.
    """

    name = "fake"

    @classmethod
    def config_kwargs(cls, cfg, weights: str, trained: dict) -> dict:
        # a named model (e.g. a teacher's) is part of the id, so two models' samples never share a cache key
        return dict(model_id=f"fake:{weights}" if cfg.model == "default" else f"fake:{cfg.model}:{weights}")

    @classmethod
    def model_id_of(cls, model_id: str = "fake", model: str | None = None, **_: object) -> str:
        return model or model_id

    def __init__(self, responder: Callable[[GenRequest, int], str] | None = None, model_id: str = "fake",
                 model: str | None = None, **_: object):
        self.responder = responder or (lambda req, i: "The answer is 42.")
        self.model_id = self.model_id_of(model_id, model)
        self.requests: list[GenRequest] = []
        self.batches: list[int] = []

    def iter_generate(self, requests: Sequence[GenRequest]):
        self.batches.append(len(requests))
        for i, req in enumerate(requests):
            self.requests.append(req)
            for j in range(req.params.n):
                out = self.responder(req, j)
                if isinstance(out, Completion):  # a responder that states its own counts or logprobs
                    yield i, j, out
                    continue
                yield i, j, Completion(text=out, completion_tokens=max(1, len(out.split())),
                                       prompt_tokens=sum(len(m["content"].split()) for m in req.messages))
