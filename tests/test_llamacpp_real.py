"""The llamacpp backend against a real llama-server on loopback with the embedded model."""
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import requires_server

from s2distill.types import GenRequest, SamplingParams

pytestmark = [requires_server, pytest.mark.server]



def test_generate_order_n_and_engine_token_counts(backend):
    reqs = [GenRequest(({"role": "user", "content": f"What is {a} + {a}? Answer with the number only."},),
                       SamplingParams(max_tokens=12, temperature=0.0, n=2)) for a in (2, 30, 100)]
    out = backend.generate(reqs)
    assert [len(row) for row in out] == [2, 2, 2]
    for a, row in zip((2, 30, 100), out):
        assert row[0].text == row[1].text  # greedy: both samples agree
        assert 0 < row[0].completion_tokens <= 12 and row[0].prompt_tokens > 5
    assert "4" in out[0][0].text and "200" in out[2][0].text


def test_one_call_carries_n_samples_with_each_ones_token_count(backend):
    """llama-server answers ``n`` choices in one call (the prompt processed once); each choice's token count
    (from its logprobs) is what the same greedy answer costs as a call of its own (from ``usage``)."""
    q = GenRequest(({"role": "user", "content": "Name three colours, comma separated."},),
                   SamplingParams(max_tokens=16, temperature=0.0, n=3))
    before = backend.stats["shared_calls"]
    shared = backend.generate([q])[0]
    assert backend.shares_samples and backend.stats["shared_calls"] == before + 1
    alone = backend.generate([GenRequest(q.messages, SamplingParams(max_tokens=16, temperature=0.0))])[0][0]
    assert [c.text for c in shared] == [alone.text] * 3
    assert [c.completion_tokens for c in shared] == [alone.completion_tokens] * 3 and alone.completion_tokens > 0


def test_samples_get_distinct_seeds(backend):
    # batched decoding on parallel slots is not bit-reproducible, so we only require that the
    # n samples of one request are independent draws (the resume cache provides exactness)
    req = GenRequest(({"role": "user", "content": "Write a random 6-digit number."},),
                     SamplingParams(max_tokens=10, temperature=1.2, n=4, seed=5))
    texts = [c.text for c in backend.generate([req])[0]]
    assert len(set(texts)) >= 2, texts


def test_max_tokens_is_a_length_stop(backend):
    out = backend.generate([GenRequest(({"role": "user", "content": "Count from 1 to 100."},),
                                       SamplingParams(max_tokens=5))])
    assert out[0][0].completion_tokens == 5 and out[0][0].finish_reason == "length"


def test_server_stops_on_close_and_dies_with_a_killed_parent(tmp_path):
    from s2distill.backends.llamacpp import LlamaCppBackend

    b = LlamaCppBackend(model="default", parallel=1, ctx_per_slot=256)
    pid = b.server.proc.pid
    b.close()
    assert b.server.proc.poll() is not None
    code = ("import time; from s2distill.backends.llamacpp import LlamaCppBackend;"
            "b = LlamaCppBackend(model='default', parallel=1, ctx_per_slot=256);"
            "print(b.server.proc.pid, flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("llama-server outlived its killed parent")
    assert pid != child


def test_bad_model_file_is_a_clear_error(tmp_path):
    from s2distill.backends.llamacpp import LlamaCppBackend
    from s2distill.errors import BackendError

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all" * 100)
    with pytest.raises(BackendError, match="exited with code"):
        LlamaCppBackend(model=str(bad), parallel=1, ctx_per_slot=256, startup_timeout_s=60)


def test_logprobs_come_back_per_token(backend):
    """logprobs=True asks llama-server for each generated token's log probability (the cascade's confidence)."""
    q = ({"role": "user", "content": "What is 2+3? Answer with only the number."},)
    c = backend.generate([GenRequest(q, SamplingParams(max_tokens=8, logprobs=True))])[0][0]
    assert c.token_logprobs is not None and len(c.token_logprobs) == c.completion_tokens
    assert all(x <= 0 for x in c.token_logprobs) and 0.5 < c.probability <= 1
    assert backend.generate([GenRequest(q, SamplingParams(max_tokens=8))])[0][0].token_logprobs is None
