"""Model format plumbing: GGUF -> HF directory (cached), merged HF model, LoRA adapter -> llama.cpp GGUF.

Heavy imports (torch, transformers, peft, gguf) happen inside functions only.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import ModelError
from .models import cache_dir, is_embedded, resolve_model

# Architectures whose llama.cpp converter permutes the q/k weights; their LoRA B would need the same permutation.
_PERMUTED_QK_ARCHS = {"llama", "deci", "granite", "granitemoe", "plamo"}


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ModelError(f"{e}; fix: pip install 's2distill[train]' (torch, transformers, peft, trl)") from e
    return transformers


def load_gguf_as_hf(gguf_path: str | Path, dtype: str = "float32") -> tuple[Any, Any]:
    """Load a GGUF into a dense (dequantized) transformers model and its tokenizer. Slow: minutes."""
    import torch

    tr = _import_transformers()
    gguf_path = Path(gguf_path)
    kw: dict[str, Any] = {"gguf_file": gguf_path.name}
    if hasattr(tr, "GgufConfig"):  # newer transformers may keep weights packed; we need plain tensors
        kw["quantization_config"] = tr.GgufConfig(gguf_file=gguf_path.name, dequantize=True)
    model = tr.AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), dtype=getattr(torch, dtype), **kw)
    tok = tr.AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    _drop_gguf_quantizer(model)
    return model, tok


def _drop_gguf_quantizer(model: Any) -> None:
    """Forget the GGUF "quantizer" so ``save_pretrained`` works; refuse if any weight is still packed."""
    packed = [n for n, m in model.named_modules() if type(m).__name__.lower().startswith("gguf")]
    if packed:
        raise ModelError(f"{len(packed)} modules are still GGUF-packed (e.g. {packed[0]}); fix: load with "
                         "GgufConfig(dequantize=True) or upgrade transformers")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)  # deletes hf_quantizer, config.quantization_config
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            delattr(model, attr)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False


def hf_model_dir(gguf_path: str | Path) -> Path:
    """A saved fp32 HF directory (model + tokenizer) for a GGUF or embedded model name, converted once into the cache.

    A directory is returned as is. The conversion is written to a temporary directory and renamed,
    so concurrent or interrupted runs never leave a half-written model behind.
    """
    src = Path(gguf_path).expanduser()
    if src.is_dir():
        return src
    if not src.is_file() and is_embedded(str(gguf_path)):
        src = resolve_model(str(gguf_path))
    if not src.is_file():
        raise ModelError(f"GGUF file not found: {src}; fix: pass an existing .gguf path or an embedded model name "
                         "(hub ids go through resolve_hf_model)")
    dest = cache_dir() / "hf" / f"{src.stem}-{src.stat().st_size}"
    if (dest / "config.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp"))
    tmp.chmod(0o755)
    try:
        t0 = time.time()
        model, tok = load_gguf_as_hf(src)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "s2distill_source.json").write_text(json.dumps(
            {"gguf": str(src), "size": src.stat().st_size, "convert_s": round(time.time() - t0, 1)}))
        del model
        for f in tmp.iterdir():
            f.chmod(0o644)
        try:
            os.rename(tmp, dest)
        except OSError:  # another process won the race
            if not (dest / "config.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def resolve_hf_model(spec: str | Path) -> str:
    """Turn a model spec into something ``from_pretrained`` loads fast.

    Embedded names/aliases and ``.gguf`` paths are converted (once) with :func:`hf_model_dir`;
    HF directories and hub ids pass through unchanged.
    """
    s = str(spec)
    if is_embedded(s):
        return str(hf_model_dir(resolve_model(s)))
    p = Path(s).expanduser()
    if p.is_dir():
        return str(p)
    if p.is_file() or s.endswith(".gguf"):
        return str(hf_model_dir(resolve_model(s)))
    return s  # hub id (may be in the local HF cache)


def export_merged(adapter_dir: str | Path, base: str | Path, out_dir: str | Path) -> Path:
    """Merge a PEFT LoRA adapter into its base model and save model + tokenizer to ``out_dir``."""
    import torch
    from peft import PeftModel

    tr = _import_transformers()
    base_dir = resolve_hf_model(base)
    model = tr.AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    out = Path(out_dir)
    merged.save_pretrained(out)
    tr.AutoTokenizer.from_pretrained(str(adapter_dir) if (Path(adapter_dir) / "tokenizer_config.json").is_file()
                                     else base_dir).save_pretrained(out)
    return out


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
    import numpy as np

    adapter_dir, out_path = Path(adapter_dir), Path(out_path)
    base_gguf = resolve_model(str(base_gguf))
    cfg, tensors = _adapter_tensors(adapter_dir)
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
    alpha_out = alpha * math.sqrt(r) if cfg.get("use_rslora") else alpha

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
    name_map = gguf.get_tensor_name_map(arch_enum, n_blocks)
    del reader

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

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".partial")
    try:
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
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path
