"""Which device and number format training and the in-process backend use (no torch import at module level).

``auto`` means: bf16 weights (and bf16 mixed precision in training) on a CUDA device that supports
bf16, fp16 for generation on an older CUDA device (training stays fp32 there), and fp32 on the CPU,
where bf16 matmuls are slow on common server CPUs.
"""
from __future__ import annotations

from typing import Any

from .errors import ConfigError
from .keys import check_choice

DTYPES = ("auto", "bfloat16", "float16", "float32")
QUANTIZATIONS = ("none", "4bit", "8bit")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "auto")
TOO_LONG = ("truncate_prompt", "error")



def check_device(key: str, device: str) -> None:
    base, _, idx = device.partition(":")
    if base not in ("auto", "cpu", "cuda") or (idx and (base != "cuda" or not idx.isdigit())):
        raise ConfigError(f"{key} must be auto, cpu, cuda or cuda:N, got '{device}'")


def cuda_bf16() -> bool:
    """True when torch sees a CUDA device that computes in bf16 natively (Ampere or newer)."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; an explicit CUDA device must exist."""
    import torch

    check_device("device", device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        n = torch.cuda.device_count()
        idx = int(device.partition(":")[2] or 0)
        if idx >= n:
            raise ConfigError(f"device '{device}' asked for, but torch sees {n} CUDA device(s); "
                              "fix: set the device to auto or cpu (or install a CUDA build of torch)")
    return device


def resolve_dtype(dtype: str, device: str, training: bool) -> str:
    """The concrete dtype name for ``dtype`` on ``device`` ('cpu', 'cuda', 'cuda:N')."""
    check_choice("dtype", dtype, DTYPES)
    on_cuda = device.startswith("cuda")
    if dtype == "auto":
        if not on_cuda:
            return "float32"
        if cuda_bf16():
            return "bfloat16"
        return "float32" if training else "float16"
    if dtype == "float16" and training and not on_cuda:
        raise ConfigError("train.fit.dtype=float16 needs a CUDA GPU (fp16 mixed precision uses a CUDA grad scaler); "
                          "fix: use train.fit.dtype=auto (fp32 on CPU) or bfloat16")
    return dtype


def trainer_precision(dtype: str) -> dict[str, bool]:
    """SFTConfig flags for weights loaded in ``dtype``: half-precision weights train under the same autocast."""
    return {"bf16": dtype == "bfloat16", "fp16": dtype == "float16"}


def bitsandbytes_config(quantization: str, compute_dtype: str, device: str) -> Any:
    """A transformers ``BitsAndBytesConfig`` for QLoRA, or a ModelError that names the fix."""
    from .errors import ModelError

    check_choice("train.fit.quantization", quantization, QUANTIZATIONS)
    if not device.startswith("cuda"):
        raise ModelError(f"train.fit.quantization={quantization} runs through bitsandbytes on a CUDA GPU and this "
                         "machine has none; fix: set train.fit.quantization=none (LoRA on full-precision weights)")
    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:  # ImportError, or its own RuntimeError when no CUDA library matches
        raise ModelError(f"train.fit.quantization={quantization} needs bitsandbytes, which cannot load here ({e}); "
                         "fix: pip install 's2distill[qlora]' (bitsandbytes) on a CUDA machine, "
                         "or set train.fit.quantization=none") from e
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=getattr(torch, compute_dtype))
    return BitsAndBytesConfig(load_in_8bit=True)


def check_train_section(t: Any) -> None:
    """Checks of the GPU-fit keys of a TrainSection / TrainConfig (no heavy imports)."""
    check_choice("train.fit.dtype", t.dtype, DTYPES)
    check_choice("train.fit.quantization", t.quantization, QUANTIZATIONS)
    check_choice("train.fit.attn_implementation", t.attn_implementation, ATTN_IMPLEMENTATIONS)
    check_choice("train.too_long", t.too_long, TOO_LONG)
    if t.quantization != "none" and t.method != "lora":
        raise ConfigError(f"train.fit.quantization={t.quantization} trains LoRA adapters on frozen quantized weights; "
                          "fix: use train.method=lora (or train.fit.quantization=none for full fine-tuning)")
    if t.save_steps is not None and t.save_steps <= 0:
        raise ConfigError("train.save_steps must be > 0 (N steps, or a fraction < 1 of the run); null: every 10%")
    if t.save_total_limit < 1:
        raise ConfigError("train.save_total_limit must be >= 1 (checkpoints kept for resuming)")
    if t.padding_free and not t.attn_implementation.startswith("flash_attention"):
        raise ConfigError("train.fit.padding_free=true packs rows into one sequence, which only flash attention keeps "
                          "apart; fix: set train.fit.attn_implementation=flash_attention_2 (pip install flash-attn) "
                          "or leave train.fit.padding_free=false")
