"""The OpenAI-compatible backend against a real HTTP server on loopback (a stub model)."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from s2distill.backends.openai import OpenAIBackend
from s2distill.errors import BackendError
from s2distill.types import GenRequest, SamplingParams


class Stub:
    def __init__(self, fail_first=0, status=429, delay=0.0, fast_first=0, honours_n=False, logprobs=True):
        self.fail_first, self.status, self.delay, self.fast_first = fail_first, status, delay, fast_first
        self.honours_n, self.logprobs = honours_n, logprobs  # like llama-server / vLLM: n choices, each with logprobs
        self.bodies, self.headers, self.inflight, self.max_inflight = [], [], 0, 0
        self.lock = threading.Lock()
        stub = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.bodies.append(body)
                    stub.headers.append(dict(self.headers))
                    fail = len(stub.bodies) <= stub.fail_first
                    fast = len(stub.bodies) <= stub.fast_first
                    stub.inflight += 1
                    stub.max_inflight = max(stub.max_inflight, stub.inflight)
                time.sleep(0 if fast else stub.delay)
                with stub.lock:
                    stub.inflight -= 1
                if fail:
                    self.send_response(stub.status)
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                n = body.get("n", 1) if stub.honours_n else 1
                texts = [f"echo {body['messages'][-1]['content']} seed={body['seed'] + m}" + " x" * m for m in range(n)]
                lp = lambda t: {"content": [{"token": w, "logprob": -0.1} for w in t.split()]}  # noqa: E731
                out = {"choices": [{"index": m, "message": {"role": "assistant", "content": t}, "finish_reason": "stop",
                                    **({"logprobs": lp(t)} if stub.logprobs and body.get("logprobs") else {})}
                                   for m, t in enumerate(texts)],
                       "usage": {"prompt_tokens": 5, "completion_tokens": len(texts[0].split())}}
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub(request):
    s = Stub(**getattr(request, "param", {}))
    yield s
    s.close()


def reqs(k, n=1):
    return [GenRequest(({"role": "user", "content": f"q{i}"},), SamplingParams(n=n, seed=100, max_tokens=7))
            for i in range(k)]


def test_order_n_seeds_and_usage(stub):
    b = OpenAIBackend(stub.url, served_model="m", concurrency=4)
    out = b.generate(reqs(5, n=3))
    assert [[c.text for c in row] for row in out] == [[f"echo q{i} seed={100 + j}" for j in range(3)] for i in range(5)]
    assert all(c.completion_tokens == 3 and c.prompt_tokens == 5 for row in out for c in row)
    assert {bd["model"] for bd in stub.bodies} == {"m"} and {bd["max_tokens"] for bd in stub.bodies} == {7}
    b.close()


def test_a_server_that_ignores_n_gets_one_call_per_sample(stub):
    """The stub answers one choice whatever ``n`` says: the first shared call finds out, and from then on each
    sample is its own call seeded ``seed + j`` (the results are those of a backend that never shared)."""
    b = OpenAIBackend(stub.url, concurrency=1)
    out = b.generate(reqs(3, n=2))
    assert [[c.text for c in row] for row in out] == [[f"echo q{i} seed={100 + j}" for j in range(2)] for i in range(3)]
    assert b.shares_samples is False and b.stats["shared_calls"] == 1
    assert len(stub.bodies) == 1 + 6 and all("n" not in bd or bd["n"] == 1 for bd in stub.bodies[1:])
    b.close()


@pytest.mark.parametrize("stub", [{"honours_n": True}], indirect=True)
def test_a_server_that_honours_n_gets_one_call_per_request(stub):
    """One call asks for all n samples of a request (the server processes the prompt once); each choice's
    token count is the length of its logprobs, since usage covers the whole call."""
    b = OpenAIBackend(stub.url, concurrency=8)
    out = b.generate(reqs(4, n=3))
    assert len(stub.bodies) == 4 and {bd["n"] for bd in stub.bodies} == {3} and all(bd["logprobs"] for bd in stub.bodies)
    assert [[c.text.split(" x")[0] for c in row] for row in out] == \
        [[f"echo q{i} seed={100 + j}" for j in range(3)] for i in range(4)]
    assert [c.completion_tokens for c in out[0]] == [3, 4, 5] and {c.prompt_tokens for row in out for c in row} == {5}
    assert all(c.token_logprobs is None for row in out for c in row)  # not asked for by the request itself
    assert b.shares_samples and b.stats["shared_calls"] == 4
    b.close()


@pytest.mark.parametrize("stub", [{"honours_n": True, "logprobs": False}], indirect=True)
def test_a_server_that_honours_n_without_logprobs_falls_back(stub):
    """n choices but no per-choice token counts: the generated-token columns would be wrong, so it falls back."""
    b = OpenAIBackend(stub.url, concurrency=1)
    out = b.generate(reqs(2, n=2))
    assert [[c.completion_tokens for c in row] for row in out] == [[3, 3], [3, 3]]
    assert b.shares_samples is False
    b.close()


@pytest.mark.parametrize("stub", [{"honours_n": True, "delay": 0.05}], indirect=True)
def test_concurrency_counts_samples_not_calls(stub):
    b = OpenAIBackend(stub.url, concurrency=4)
    b.generate(reqs(6, n=3))
    assert len(stub.bodies) == 6 and stub.max_inflight == 1  # 3 + 3 samples would be over 4
    b.close()


@pytest.mark.parametrize("stub", [{"delay": 0.05}], indirect=True)
def test_bounded_concurrency(stub):
    b = OpenAIBackend(stub.url, concurrency=3)
    b.generate(reqs(12))
    assert stub.max_inflight <= 3 and stub.max_inflight >= 2
    b.close()


@pytest.mark.parametrize("stub", [{"fail_first": 3, "status": 429}, {"fail_first": 2, "status": 503}], indirect=True)
def test_retries_on_429_and_5xx(stub):
    b = OpenAIBackend(stub.url, concurrency=1, max_retries=4, backoff_s=0.01)
    out = b.generate(reqs(2))
    assert [row[0].text for row in out] == ["echo q0 seed=100", "echo q1 seed=100"]
    assert b.stats["retries"] == stub.fail_first
    b.close()


@pytest.mark.parametrize("stub", [{"fail_first": 100, "status": 400}], indirect=True)
def test_client_error_is_not_retried(stub):
    b = OpenAIBackend(stub.url, concurrency=1, max_retries=4, backoff_s=0.01)
    with pytest.raises(BackendError, match="HTTP 400"):
        b.generate(reqs(1))
    assert len(stub.bodies) == 1
    b.close()


def test_api_key_comes_from_env_only(stub, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    b = OpenAIBackend(stub.url, api_key_env="MY_KEY")
    b.generate(reqs(1))
    assert stub.headers[-1]["Authorization"] == "Bearer sk-test"
    b.close()


def test_unreachable_server_names_the_fix():
    from s2distill.backends.server import free_port

    b = OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", max_retries=1, backoff_s=0.01)
    with pytest.raises(BackendError, match="is the server running and backend.base_url right"):
        b.generate(reqs(1))
    b.close()


@pytest.mark.parametrize("stub", [{"delay": 8.0, "fast_first": 1}], indirect=True)
def test_an_interrupted_generation_does_not_wait_for_the_calls_in_flight(stub):
    """Stopping a generation (Ctrl-C or an error in the consumer) returns at once: the slow calls in
    flight are abandoned, not awaited (on a loaded CPU server they take minutes), and not retried."""
    b = OpenAIBackend(stub.url, concurrency=4, max_retries=3, backoff_s=0.01)
    it = b.iter_generate(reqs(8))
    first = next(it)  # the one fast answer; three slow calls are in flight now
    t0 = time.perf_counter()
    it.close()  # what an exception raised while consuming does to the generator
    waited = time.perf_counter() - t0
    assert first[2].text.startswith("echo q")
    assert waited < 4.0, f"waited {waited:.1f}s for calls in flight"
    assert b._stopping.is_set()
    assert len(stub.bodies) <= 5  # at most 4 in flight + 1 refill after the fast one were ever sent
    b.close()


def test_a_server_that_never_answers_cannot_hold_the_process_at_exit(tmp_path):
    """Calls in flight to a server that accepted them and never answers run on daemon threads: the process
    exits when its main thread does (with ThreadPoolExecutor's workers it waited for the 600 s read timeout)."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "hang.py"
    script.write_text(
        "import socket, threading, time\n"
        "from s2distill.backends.openai import OpenAIBackend\n"
        "from s2distill.types import GenRequest\n"
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(16)  # accepts, never answers\n"
        "b = OpenAIBackend(f'http://127.0.0.1:{srv.getsockname()[1]}/v1', concurrency=2, max_retries=0)\n"
        "req = GenRequest(({'role': 'user', 'content': 'q'},))\n"
        "threading.Thread(target=lambda: b.generate([req, req]), daemon=True).start()\n"
        "time.sleep(1.0)\n"
        "print('main done', flush=True)\n")
    src = Path(__file__).resolve().parents[1] / "src"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                       env={**__import__("os").environ, "PYTHONPATH": str(src)})
    assert r.returncode == 0 and "main done" in r.stdout, r.stderr
    assert time.perf_counter() - t0 < 30  # not the 600 s read timeout
