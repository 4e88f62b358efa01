"""vLLM: the toolkit starts its own ``vllm serve`` on loopback (a GPU machine) and talks to
it through the OpenAI backend, like the llama.cpp launcher (shared code in ``server.py``).

The executable is ``$S2DISTILL_VLLM`` or ``vllm`` on PATH (``pip install vllm`` on a CUDA
machine). The model is an HF id or a local HF model directory. The distilled model is the
run's PEFT adapter served as the LoRA module ``distilled`` on top of its base model (after
full fine-tuning: ``model/merged`` served under that name). Requests name the served model.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..errors import BackendError, ConfigError
from .server import LaunchedBackend, find_executable, free_port, path_id

LORA_NAME = "distilled"  # the served name of the distilled adapter / merged model
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the values vLLM accepts for --max-lora-rank


def find_vllm() -> str:
    return find_executable("S2DISTILL_VLLM", ["vllm"],
                           fix="pip install vllm on a machine with an NVIDIA GPU (CUDA), or set S2DISTILL_VLLM=/path/to/vllm")


def check_settings(tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                   startup_timeout_s: float | None = None) -> None:
    """Range checks of the vLLM settings (shared by config validation and the backend)."""
    if tensor_parallel_size < 1:
        raise ConfigError(f"backend.tensor_parallel_size={tensor_parallel_size}; fix: set it to the number of GPUs "
                          "to shard the model over (>= 1)")
    if not 0.0 < gpu_memory_utilization <= 1.0:
        raise ConfigError(f"backend.gpu_memory_utilization={gpu_memory_utilization}; fix: a fraction in (0, 1], "
                          "e.g. 0.9")
    if max_model_len is not None and max_model_len < 1:
        raise ConfigError(f"backend.max_model_len={max_model_len}; fix: a positive token count, or null for the "
                          "model's own context length")
    if startup_timeout_s is not None and startup_timeout_s <= 0:
        raise ConfigError(f"backend.startup_timeout_s={startup_timeout_s}; fix: seconds > 0, or null for the default")


def check_model(model: str) -> None:
    from ..models import is_embedded

    if is_embedded(model):
        raise ConfigError(f"backend.name=vllm serves Hugging Face models, not the embedded GGUF '{model}'; fix: set "
                          "model to an HF id or a local HF model directory (e.g. model=Qwen/Qwen2.5-Coder-0.5B-Instruct)"
                          " or use backend.name=llamacpp")


def max_lora_rank(adapter_dir: str | Path) -> int:
    """The smallest accepted ``--max-lora-rank`` that holds the adapter's rank (``r`` in adapter_config.json)."""
    cfg = Path(adapter_dir) / "adapter_config.json"
    try:
        r = int(json.loads(cfg.read_text())["r"])
    except (OSError, ValueError, KeyError, TypeError):
        raise BackendError(f"cannot read the LoRA rank 'r' from {cfg}; fix: point at a PEFT adapter directory "
                           "(RUN/model/adapter)") from None
    for k in LORA_RANKS:
        if r <= k:
            return k
    raise BackendError(f"LoRA rank {r} is above vLLM's largest --max-lora-rank {LORA_RANKS[-1]}; fix: train with a "
                       "smaller train.lora_r")


def serve_argv(executable: str, model: str, port: int, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
               max_model_len: int | None = None, served_model_name: str | None = None, seed: int | None = None,
               adapter: str | Path | None = None, lora_name: str = LORA_NAME, lora_rank: int = 16,
               server_args: Sequence[str] = ()) -> list[str]:
    """The ``vllm serve`` command line (pure); ``server_args``: the free-form flags of ``backend.server_args``."""
    argv = [executable, "serve", str(model), "--host", "127.0.0.1", "--port", str(port),
            "--tensor-parallel-size", str(tensor_parallel_size), "--gpu-memory-utilization", str(gpu_memory_utilization)]
    if max_model_len is not None:
        argv += ["--max-model-len", str(max_model_len)]
    if served_model_name:
        argv += ["--served-model-name", served_model_name]
    if seed is not None:
        argv += ["--seed", str(seed)]
    if adapter is not None:
        argv += ["--enable-lora", "--lora-modules", f"{lora_name}={adapter}", "--max-lora-rank", str(lora_rank)]
    return argv + [str(a) for a in server_args]


def weights_id(model: str, adapter: str | Path | None = None, server_args: Sequence[str] = ()) -> str:
    """Cache identity: the files of a local model dir (or the hub id and any --revision) + the adapter's files."""
    if Path(model).exists():
        mid = path_id(model)
    else:
        mid = f"hf:{model}"
        args = [str(a) for a in server_args]
        for i, a in enumerate(args):
            if a == "--revision" and i + 1 < len(args):
                mid += f"@{args[i + 1]}"
            elif a.startswith("--revision="):
                mid += f"@{a.split('=', 1)[1]}"
    return mid + (f"+lora:{path_id(adapter)}" if adapter is not None else "")


class VLLMBackend(LaunchedBackend):
    """``vllm serve MODEL`` on loopback; with ``adapter``, requests go to the LoRA module ``distilled``."""

    name = "vllm"

    @classmethod
    def check_config(cls, cfg) -> None:
        b = cfg.backend
        check_settings(b.tensor_parallel_size, b.gpu_memory_utilization, b.max_model_len, b.startup_timeout_s)
        check_model(cfg.model)

    @classmethod
    def config_kwargs(cls, cfg, weights: str, trained: dict) -> dict:
        from .base import client_kwargs

        b = cfg.backend
        model = cfg.model
        vkw: dict = {"served_model": b.served_model}
        if weights == "distilled":  # the run's adapter as LoRA module "distilled", or the merged model under that name
            if trained.get("adapter"):
                model, vkw["adapter"] = cfg.train.base_model or cfg.model, trained["adapter"]
            elif trained.get("merged") and Path(trained["merged"]).is_dir():
                model, vkw = trained["merged"], {"served_model": LORA_NAME}
            else:
                raise ConfigError("backend 'vllm' found no distilled model (neither model/adapter nor model/merged); "
                                  "fix: run the train stage first (train.enabled=true)")
        if b.startup_timeout_s:
            vkw["startup_timeout_s"] = b.startup_timeout_s
        return dict(model=model, tensor_parallel_size=b.tensor_parallel_size,
                    gpu_memory_utilization=b.gpu_memory_utilization, max_model_len=b.max_model_len,
                    seed=cfg.seed, server_args=b.server_args, **vkw, **client_kwargs(cfg))

    @classmethod
    def model_id_of(cls, model: str, adapter: str | Path | None = None, server_args: Sequence[str] = (),
                    **_: object) -> str:
        return weights_id(model, adapter, server_args)

    def __init__(self, model: str, adapter: str | Path | None = None, served_model: str | None = None,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                 seed: int | None = None, server_args: Sequence[str] = (), concurrency: int = 16,
                 startup_timeout_s: float = 1200.0, **kw: object):
        check_settings(tensor_parallel_size, gpu_memory_utilization, max_model_len, startup_timeout_s)
        check_model(model)
        rank = 16
        if adapter is not None:
            if not Path(adapter).is_dir():
                raise BackendError(f"LoRA adapter directory not found: {adapter}; fix: train first (RUN/model/adapter) "
                                   "or serve a merged model without an adapter")
            rank = max_lora_rank(adapter)
        self.model = model
        self.adapter = str(adapter) if adapter is not None else None
        port = free_port()
        argv = serve_argv(find_vllm(), model, port, tensor_parallel_size, gpu_memory_utilization, max_model_len,
                          served_model, seed, self.adapter, LORA_NAME, rank, server_args)
        request_model = LORA_NAME if adapter is not None else (served_model or model)
        self._launch(argv, port, name="vllm", model_id=self.model_id_of(model, adapter, server_args), served_model=request_model,
                     concurrency=concurrency, startup_timeout_s=startup_timeout_s, kw=kw)
