"""A merged HF model, and ``export_run``: a run directory's results in interchange formats
(``s2distill export``; the llama.cpp targets come from ``backends/llamacpp_export.py``).

Heavy imports (torch, transformers, peft, gguf) happen inside functions only.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .atomic import staged
from .errors import ConfigError, DataError, ModelError
from .backends.llamacpp_export import export_gguf, export_lora_gguf, find_llama_export_lora
from .models import import_transformers, resolve_hf_model, resolve_model

def default_dtype(base_dir: str | Path) -> str:
    """The dtype to save a merged model in: the base's own (bf16/fp16/fp32), else bfloat16.

    Bases converted here from a GGUF are saved as fp32 only because they were dequantized: bfloat16.
    """
    d = Path(base_dir)
    if (d / "s2distill_source.json").is_file():
        return "bfloat16"
    try:
        if (d / "config.json").is_file():
            cfg = json.loads((d / "config.json").read_text())
        else:  # hub id: the config from the local HF cache (or the hub)
            cfg = import_transformers().AutoConfig.from_pretrained(str(base_dir)).to_dict()
    except Exception:  # noqa: BLE001 - a missing/odd config only loses the hint
        return "bfloat16"
    dt = str(cfg.get("dtype") or cfg.get("torch_dtype") or "").removeprefix("torch.")
    return dt if dt in ("bfloat16", "float16", "float32") else "bfloat16"


def export_merged(adapter_dir: str | Path, base: str | Path, out_dir: str | Path,
                  dtype: str | None = "float32") -> Path:
    """Merge a PEFT LoRA adapter into its base model and save model + tokenizer to ``out_dir``.

    The merge is done in float32; the weights are then saved as ``dtype`` (``None``: :func:`default_dtype`,
    bf16 halves the disk of fp32).
    """
    import torch
    from peft import PeftModel

    tr = import_transformers()
    base_dir = resolve_hf_model(base)
    dtype = dtype or default_dtype(base_dir)
    if dtype not in ("bfloat16", "float16", "float32"):
        raise ModelError(f"unknown dtype '{dtype}'; fix: use bfloat16, float16 or float32")
    model = tr.AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    if dtype != "float32":
        merged = merged.to(getattr(torch, dtype))
    out = Path(out_dir)
    merged.save_pretrained(out)
    tr.AutoTokenizer.from_pretrained(str(adapter_dir) if (Path(adapter_dir) / "tokenizer_config.json").is_file()
                                     else base_dir).save_pretrained(out)
    return out


# -- s2distill export RUN_DIR --to TARGET --out PATH ------------------------------------------------------------

EXPORT_TARGETS = ("adapter", "merged", "gguf", "lora-gguf", "dataset")
_ROLES = ("system", "user", "assistant")


def _run_models(run_dir: Path) -> tuple[str, str]:
    """(the run's model, the model it fine-tuned) from ``config.yaml``."""
    import yaml

    cfg_file = run_dir / "config.yaml"
    if not cfg_file.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml); fix: pass the directory "
                          "`s2distill run` wrote (runs/<name> by default)")
    data = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}
    model = str(data.get("model") or "default")
    return model, str((data.get("train") or {}).get("base_model") or model)


def _not_trained(run_dir: Path, what: str) -> ModelError:
    return ModelError(f"{run_dir} has no {what} (run not trained yet?); fix: run "
                      f"`s2distill run CONFIG --run-dir {run_dir}` first")


def _base_gguf(model: str) -> Path:
    try:
        return resolve_model(model)
    except ConfigError:
        raise ModelError(f"the run's model '{model}' is not a GGUF (embedded name or .gguf path), so there is no "
                         f"llama.cpp base to export against; fix: --to merged or --to adapter") from None


def chat_rows(run_dir: str | Path) -> list[dict]:
    """The run's curated pairs as chat records ``{"messages": [{role, content}, ...]}``, checked."""
    from .rundir import read_jsonl
    from .types import TrainPair

    run_dir = Path(run_dir)
    chat, pairs = run_dir / "curate" / "chat.jsonl", run_dir / "curate" / "pairs.jsonl"
    if chat.is_file():
        rows, src = read_jsonl(chat), chat
    elif pairs.is_file():
        rows, src = [TrainPair.from_json(d).to_chat() for d in read_jsonl(pairs)], pairs
    else:
        raise DataError(f"{run_dir} has no curated data (curate/chat.jsonl); fix: run "
                        f"`s2distill run CONFIG --run-dir {run_dir} --until curate` first")
    if not rows:
        raise DataError(f"{src} is empty (curation kept no examples); fix: lower curate.min_agreement or raise "
                        "method.n, then rerun")
    out = []
    for i, r in enumerate(rows, 1):
        msgs = r.get("messages") if isinstance(r, dict) else None
        if not isinstance(msgs, list) or not msgs or not all(
                isinstance(m, dict) and m.get("role") in _ROLES and isinstance(m.get("content"), str) for m in msgs):
            raise DataError(f"{src} line {i}: expected {{\"messages\": [{{\"role\", \"content\"}}, ...]}}; fix: rerun "
                            "the curate stage")
        if msgs[-1]["role"] != "assistant":
            raise DataError(f"{src} line {i}: the last message must be the assistant's answer")
        out.append({"messages": [{"role": m["role"], "content": m["content"]} for m in msgs]})
    return out


def export_run(run_dir: str | Path, to: str, out: str | Path, *, force: bool = False,
               dtype: str | None = None) -> Path:
    """Write a run's result as ``to`` (one of :data:`EXPORT_TARGETS`) at ``out``; the run dir is only read.

    ``dtype`` (merged only): weights dtype, default the base's own or bfloat16.
    """
    run_dir, out = Path(run_dir), Path(out)
    _check_target(run_dir, to, out, force)
    model, base = _run_models(run_dir)
    adapter, merged = run_dir / "model" / "adapter", run_dir / "model" / "merged"
    if to == "dataset":
        from .rundir import write_jsonl

        write_jsonl(out, chat_rows(run_dir))  # atomic (tmp + rename), disk-full aware
    elif to == "adapter":
        _export_adapter(run_dir, adapter, merged, base, out)
    elif to == "merged":
        _export_merged_model(run_dir, adapter, merged, base, out, dtype)
    else:
        _export_llama(run_dir, to, adapter, merged, model, out)
    return out


def _check_target(run_dir: Path, to: str, out: Path, force: bool) -> None:
    """The target and the output path, refused (naming the fix) before any work."""
    if to not in EXPORT_TARGETS:
        raise ConfigError(f"unknown export target '{to}'; fix: use one of {', '.join(EXPORT_TARGETS)}")
    if not run_dir.is_dir():
        raise ConfigError(f"run directory not found: {run_dir}; fix: run `s2distill run CONFIG --run-dir {run_dir}` first")
    rd, o = run_dir.resolve(), out.resolve()
    if rd.is_relative_to(o):
        raise ConfigError(f"--out {out} holds the run directory; fix: choose a path outside {run_dir}")
    if out.exists() or out.is_symlink():
        if o.is_relative_to(rd):
            raise ConfigError(f"{out} is part of the run directory, which export never modifies; fix: choose "
                              "another --out")
        if not force:
            raise ConfigError(f"{out} already exists; fix: pass --force to replace it, or choose another --out")
        if out.is_dir() and to not in ("adapter", "merged"):
            raise ConfigError(f"{out} is a directory; --to {to} writes one file; fix: pass a file path as --out")


def _export_adapter(run_dir: Path, adapter: Path, merged: Path, base: str, out: Path) -> None:
    """The PEFT adapter directory (with the base's tokenizer when the adapter has none)."""
    if not (adapter / "adapter_config.json").is_file():
        if (merged / "config.json").is_file():
            raise ModelError(f"{run_dir} was fully fine-tuned (no LoRA adapter); fix: --to merged")
        raise _not_trained(run_dir, "LoRA adapter (model/adapter)")
    with staged(out) as tmp:
        shutil.copytree(adapter, tmp)
        if not (tmp / "tokenizer_config.json").is_file():
            import_transformers().AutoTokenizer.from_pretrained(resolve_hf_model(base)).save_pretrained(tmp)


def _export_merged_model(run_dir: Path, adapter: Path, merged: Path, base: str, out: Path, dtype: str | None) -> None:
    """An HF model directory: the adapter merged into the base, or a full fine-tune's model (in ``dtype``)."""
    if (adapter / "adapter_config.json").is_file():
        with staged(out) as tmp:
            export_merged(adapter, base, tmp, dtype=dtype)
    elif (merged / "config.json").is_file():  # full fine-tune: the model is already merged
        with staged(out) as tmp:
            if dtype is None:
                shutil.copytree(merged, tmp)
            else:
                import torch

                tr = import_transformers()
                tr.AutoModelForCausalLM.from_pretrained(str(merged), dtype=getattr(torch, dtype)).save_pretrained(tmp)
                tr.AutoTokenizer.from_pretrained(str(merged)).save_pretrained(tmp)
    else:
        raise _not_trained(run_dir, "trained model (model/adapter or model/merged)")


def _export_llama(run_dir: Path, to: str, adapter: Path, merged: Path, model: str, out: Path) -> None:
    """llama.cpp targets: the LoRA GGUF the run wrote, else one exported from the adapter against the run's GGUF;
    ``gguf``: merged into one standalone file by llama-export-lora."""
    lora_file = run_dir / "model" / "distilled-lora.gguf"
    has_adapter = (adapter / "adapter_config.json").is_file()
    if not lora_file.is_file() and not has_adapter:
        if (merged / "config.json").is_file():
            raise ModelError(f"{run_dir} was fully fine-tuned; llama.cpp needs a full GGUF conversion; fix: --to merged, "
                             "then llama.cpp's convert_hf_to_gguf.py")
        raise _not_trained(run_dir, "LoRA adapter (model/adapter)")
    if to == "gguf":
        find_llama_export_lora()  # fail before any work
    base_gguf = None if to == "lora-gguf" and lora_file.is_file() else _base_gguf(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".s2d-export-") as td:
        lora = lora_file if lora_file.is_file() else export_lora_gguf(adapter, base_gguf, Path(td) / "lora.gguf")
        with staged(out) as tmp:
            if to == "lora-gguf":
                shutil.copyfile(lora, tmp)
            else:
                export_gguf(lora, base_gguf, tmp)
