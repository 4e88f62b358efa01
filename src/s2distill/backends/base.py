"""The backend contract.

``generate(requests) -> list[list[Completion]]``: one inner list of ``request.params.n``
completions per request, in request order, token counts from the engine.

Backends may also implement ``iter_generate(requests)`` yielding ``(request_index,
sample_index, Completion)`` as soon as each sample is done; the resume cache uses it to
persist samples one by one. ``generate`` is derived from it when present.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry import Registry
from ..types import Completion, GenRequest


def client_kwargs(cfg: Any) -> dict[str, Any]:
    """The HTTP client settings of ``cfg.backend`` every server-backed backend takes."""
    b = cfg.backend
    return dict(concurrency=b.concurrency, timeout_s=b.timeout_s, max_retries=b.max_retries,
                share_samples=b.share_samples)


class Backend:
    name: str = "backend"
    model_id: str = ""  # identifies the weights; part of every cache key
    # True: a request for n samples costs less than n requests (the engine shares the prompt), so the sample
    # cache sends a request's missing samples as one request instead of n single ones
    shares_samples: bool = False
    # an in-process engine (transformers) sets the device and dtype it resolved; a run records them
    device: str | None = None
    dtype: Any = None

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Check this backend's own settings in the run config ``cfg`` (raise ConfigError naming the fix);
        asked by ``s2distill validate`` and every run before any engine starts. Default: nothing to check."""

    @classmethod
    def config_kwargs(cls, cfg: Any, weights: str, trained: dict) -> dict[str, Any]:
        """The keyword arguments this backend is built with for the ``weights`` 'base' or 'distilled' from
        the run config ``cfg``; ``trained`` holds the trained model's paths (``adapter``, ``merged``,
        ``lora_gguf``; see ``backends.pool.distilled_paths``). Every registered backend defines it:
        ``backend.name`` is looked up in the registry and built as ``cls(**cls.config_kwargs(cfg, weights, trained))``."""
        raise ConfigError(f"backend {cls.__module__}:{cls.__qualname__} does not say how to build itself from the "
                          "config; fix: define classmethod config_kwargs(cls, cfg, weights, trained) -> dict")

    @classmethod
    def prepare_distilled(cls, cfg: Any, model_dir: Path) -> list[str]:
        """After training: write what this backend needs to serve the model trained into ``model_dir``
        (e.g. llama.cpp's LoRA GGUF); returns those files, relative to ``model_dir``. Default: nothing."""
        return []

    def iter_generate(self, requests: Sequence[GenRequest]) -> Iterator[tuple[int, int, Completion]]:
        results = self.generate(requests)
        for i, comps in enumerate(results):
            for j, c in enumerate(comps):
                yield i, j, c

    def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        out: list[list[Completion | None]] = [[None] * r.params.n for r in requests]
        for i, j, c in self.iter_generate(requests):
            out[i][j] = c
        missing = [(i, j) for i, row in enumerate(out) for j, c in enumerate(row) if c is None]
        if missing:
            raise RuntimeError(f"backend {self.name} returned no completion for {len(missing)} samples")
        return out  # type: ignore[return-value]

    @classmethod
    def model_id_of(cls, **kwargs: Any) -> str:
        """The ``model_id`` an instance built with ``kwargs`` will have, without building it (no engine
        starts): the Ray driver keys its sample cache with it."""
        raise NotImplementedError(f"{cls.__name__} cannot name its weights before it starts")

    def close(self) -> None:  # pragma: no cover - trivial
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def make_backend(name: str, **kwargs: Any) -> Backend:
    """The backend registered as ``name`` built from explicit arguments (a run builds its backends from
    the config: ``backends.pool.default_backend_factory``)."""
    return BACKENDS.get(name)(**kwargs)


# the registered backends (plug-ins add theirs: ``BACKENDS.register("mine", MyBackend)``; modules imported on use)
BACKENDS = Registry("backend", {
    "llamacpp": "s2distill.backends.llamacpp:LlamaCppBackend",
    "vllm": "s2distill.backends.vllm:VLLMBackend",
    "openai": "s2distill.backends.openai:OpenAIBackend",
    "transformers": "s2distill.backends.transformers:TransformersBackend",
    "fake": "s2distill.backends.fake:FakeBackend",
})
BACKEND_FIX = "`class MyBackend(Backend)` with classmethod config_kwargs(cls, cfg, weights, trained)"


def backend_class(name: str) -> type[Backend]:
    """The backend class registered as ``name``, refused unless it subclasses :class:`Backend`."""
    return BACKENDS.subclass(name, Backend, BACKEND_FIX)
