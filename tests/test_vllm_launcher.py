"""The vLLM launcher: its ``vllm serve`` command line (pure) and its lifecycle against a real
llama-server standing in for vLLM (tests/vllm_standin.py; vLLM itself needs a CUDA GPU)."""
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import requires_server

from s2distill.backends.vllm import VLLMBackend, max_lora_rank, serve_argv, weights_id
from s2distill.checks import load_checked
from s2distill.errors import BackendError, ConfigError
from s2distill.pipeline import default_backend_factory
from s2distill.types import GenRequest, SamplingParams

STANDIN = Path(__file__).with_name("vllm_standin.py")
HF_ID = "Qwen/Qwen2.5-Coder-0.5B-Instruct"  # what vLLM would load; the stand-in serves the embedded GGUF
ASK = GenRequest(({"role": "user", "content": "What is 2 + 2? Answer with the number only."},),
                 SamplingParams(max_tokens=8, temperature=0.0))


@pytest.fixture
def standin(tmp_path, monkeypatch) -> Path:
    """$S2DISTILL_VLLM -> a shell wrapper running the stand-in; returns the file it records its argv to."""
    wrapper = tmp_path / "vllm"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" "$@"\n')
    wrapper.chmod(0o755)
    record = tmp_path / "argv.json"
    monkeypatch.setenv("S2DISTILL_VLLM", str(wrapper))
    monkeypatch.setenv("VLLM_STANDIN_RECORD", str(record))
    monkeypatch.delenv("VLLM_STANDIN_FAIL", raising=False)
    return record


def make_adapter(d: Path, r: int = 16) -> Path:
    d.mkdir(parents=True)
    (d / "adapter_config.json").write_text(json.dumps({"r": r, "base_model_name_or_path": HF_ID}))
    (d / "adapter_model.safetensors").write_bytes(b"\0" * 4096)
    return d


def vllm_cfg(**backend):
    return load_checked(data={"model": HF_ID, "seed": 7, "backend": {
        "name": "vllm", "max_model_len": 512, "concurrency": 2, "max_retries": 0, "startup_timeout_s": 120,
        "server_args": ["--max-num-seqs", "2"], **backend}})


# -- pure -----------------------------------------------------------------------------
def test_serve_argv_builds_the_vllm_command_line():
    assert serve_argv("vllm", HF_ID, 8123) == [
        "vllm", "serve", HF_ID, "--host", "127.0.0.1", "--port", "8123",
        "--tensor-parallel-size", "1", "--gpu-memory-utilization", "0.9"]
    assert serve_argv("/x/vllm", "/m", 9, tensor_parallel_size=4, gpu_memory_utilization=0.85, max_model_len=4096,
                      served_model_name="base", seed=3, adapter="/run/model/adapter", lora_rank=32,
                      server_args=["--enforce-eager"]) == [
        "/x/vllm", "serve", "/m", "--host", "127.0.0.1", "--port", "9",
        "--tensor-parallel-size", "4", "--gpu-memory-utilization", "0.85", "--max-model-len", "4096",
        "--served-model-name", "base", "--seed", "3",
        "--enable-lora", "--lora-modules", "distilled=/run/model/adapter", "--max-lora-rank", "32", "--enforce-eager"]


def test_missing_vllm_names_the_fix(tmp_path, monkeypatch):
    from s2distill.backends.vllm import find_vllm

    monkeypatch.delenv("S2DISTILL_VLLM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendError, match="pip install vllm"):
        VLLMBackend(model=HF_ID)
    monkeypatch.setenv("S2DISTILL_VLLM", str(tmp_path / "nope"))
    with pytest.raises(BackendError, match="does not exist"):
        find_vllm()
    (tmp_path / "vllm").write_text("#!/bin/sh\n")
    monkeypatch.setenv("S2DISTILL_VLLM", str(tmp_path / "vllm"))
    with pytest.raises(BackendError, match="chmod"):
        find_vllm()


def test_max_lora_rank_rounds_up_to_a_value_vllm_accepts(tmp_path):
    assert [max_lora_rank(make_adapter(tmp_path / f"a{r}", r)) for r in (4, 16, 17, 300)] == [8, 16, 32, 320]
    with pytest.raises(BackendError, match="train.lora_r"):
        max_lora_rank(make_adapter(tmp_path / "huge", 1024))
    with pytest.raises(BackendError, match="PEFT adapter"):
        max_lora_rank(tmp_path)


def test_weights_id_follows_the_weights_and_the_adapter(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"a" * 1000)
    before = weights_id(str(model))
    (model / "model.safetensors").write_bytes(b"b" * 1000)
    assert weights_id(str(model)) != before
    adapter = make_adapter(tmp_path / "adapter")
    with_lora = weights_id(str(model), adapter)
    assert with_lora.startswith(weights_id(str(model)) + "+lora:")
    (adapter / "adapter_model.safetensors").write_bytes(b"\1" * 4096)
    assert weights_id(str(model), adapter) != with_lora
    assert weights_id(HF_ID) == f"hf:{HF_ID}"
    assert weights_id(HF_ID, server_args=["--revision", "abc123"]) == f"hf:{HF_ID}@abc123"


def test_config_registers_and_validates_vllm():
    from s2distill.backends.vllm import VLLMBackend as cls
    from s2distill.backends import BACKENDS

    assert BACKENDS.get("vllm") is cls
    cfg = vllm_cfg(tensor_parallel_size=2, gpu_memory_utilization=0.8)
    assert (cfg.backend.tensor_parallel_size, cfg.backend.gpu_memory_utilization, cfg.backend.max_model_len) == (2, 0.8, 512)
    with pytest.raises(ConfigError, match="did you mean 'vllm'"):
        load_checked(data={"model": HF_ID, "backend": {"name": "vlm"}})
    with pytest.raises(ConfigError, match="fix: set model to an HF id"):
        load_checked(data={"backend": {"name": "vllm"}})  # the embedded GGUF default
    with pytest.raises(ConfigError, match=r"gpu_memory_utilization=1.5; fix: a fraction"):
        vllm_cfg(gpu_memory_utilization=1.5)
    with pytest.raises(ConfigError, match="tensor_parallel_size=0; fix"):
        vllm_cfg(tensor_parallel_size=0)
    with pytest.raises(ConfigError, match="max_model_len=0; fix"):
        vllm_cfg(max_model_len=0)
    with pytest.raises(ConfigError, match="expected an integer"):
        vllm_cfg(tensor_parallel_size="two")


def test_factory_without_a_trained_model_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="fix: run the train stage first"):
        default_backend_factory(vllm_cfg(), "distilled", {"adapter": None, "merged": str(tmp_path / "missing")})


# -- the stand-in process, no llama-server needed ----------------------------------------
def test_startup_crash_is_a_backend_error_with_the_log_tail(standin, monkeypatch):
    monkeypatch.setenv("VLLM_STANDIN_FAIL", "1")
    with pytest.raises(BackendError, match="vllm exited with code 1 during start-up") as e:
        VLLMBackend(model=HF_ID, startup_timeout_s=60)
    assert "CUDA out of memory" in str(e.value)  # the server's own log explains the crash
    assert json.loads(standin.read_text())[:2] == ["serve", HF_ID]


def test_factory_serves_a_merged_model_as_distilled(standin, tmp_path, monkeypatch):
    merged = tmp_path / "model" / "merged"
    merged.mkdir(parents=True)
    (merged / "config.json").write_text("{}")
    monkeypatch.setenv("VLLM_STANDIN_FAIL", "1")  # record the command line, then fail fast
    with pytest.raises(BackendError, match="exited with code 1"):
        default_backend_factory(vllm_cfg(), "distilled", {"adapter": None, "merged": str(merged)})
    argv = json.loads(standin.read_text())
    assert argv[:2] == ["serve", str(merged)]
    assert argv[argv.index("--served-model-name") + 1] == "distilled" and "--enable-lora" not in argv


# -- real: a llama-server standing in for vLLM -----------------------------------------------
@requires_server
@pytest.mark.server
@pytest.mark.slow
def test_launcher_lifecycle_against_a_real_server(standin):
    b = VLLMBackend(model=HF_ID, served_model="base", max_model_len=512, seed=3, concurrency=2, startup_timeout_s=120,
                    server_args=["--max-num-seqs", "2", "--enforce-eager"])
    try:
        (comp,) = b.generate([ASK])[0]
        assert "4" in comp.text and 0 < comp.completion_tokens <= 8 and comp.prompt_tokens > 5
        assert json.loads(standin.read_text()) == [
            "serve", HF_ID, "--host", "127.0.0.1", "--port", str(b.server.port),
            "--tensor-parallel-size", "1", "--gpu-memory-utilization", "0.9", "--max-model-len", "512",
            "--served-model-name", "base", "--seed", "3", "--max-num-seqs", "2", "--enforce-eager"]
        assert b.served_model == "base" and b.model_id == f"hf:{HF_ID}"
        assert b.base_url == f"http://127.0.0.1:{b.server.port}/v1"
        pid = b.server.proc.pid
    finally:
        b.close()
    assert b.server.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@requires_server
@pytest.mark.server
@pytest.mark.slow
def test_factory_serves_the_adapter_as_lora_module_distilled(standin, tmp_path):
    adapter = make_adapter(tmp_path / "model" / "adapter", r=16)
    b = default_backend_factory(vllm_cfg(), "distilled", {"adapter": str(adapter), "merged": str(tmp_path / "none"),
                                                          "lora_gguf": str(tmp_path / "none.gguf")})
    try:
        assert isinstance(b, VLLMBackend) and b.served_model == "distilled"
        assert b.model_id.startswith(f"hf:{HF_ID}+lora:adapter/:") and b.server.startup_timeout_s == 120
        argv = json.loads(standin.read_text())
        assert argv[:2] == ["serve", HF_ID]
        flags = " ".join(argv)
        assert f"--enable-lora --lora-modules distilled={adapter} --max-lora-rank 16" in flags
        assert "--seed 7" in flags and "--max-model-len 512" in flags and "--served-model-name" not in flags
        (comp,) = b.generate([ASK])[0]  # requests name model "distilled"; the stand-in ignores the adapter
        assert comp.text.strip() and 0 < comp.completion_tokens <= 8
        os.kill(b.server.proc.pid, signal.SIGKILL)
        b.server.proc.wait(timeout=10)
        with pytest.raises(BackendError, match=r"vllm died \(exit code -9\)"):
            b.generate([ASK])
    finally:
        b.close()
