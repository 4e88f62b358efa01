"""`s2distill serve`: a real uvicorn server on loopback answering the `openai` client through the cascade of
a finished (fake-engine) run; routing, usage, the inbox, bad requests, a request storm, kill -9."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from cascade_run import ORACLE, factory, make_run, sure_of  # noqa: E402

from s2distill.errors import ConfigError  # noqa: E402
from s2distill.serve import CascadeService, make_app, read_inbox  # noqa: E402
from s2distill.types import stable_hash  # noqa: E402

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("serve") / "run"
    make_run(d)
    return d


class Server:
    """The app on a real uvicorn server in a thread, on a free loopback port."""

    def __init__(self, app):
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        assert self.server.started

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def served(run):
    svc = CascadeService(run, backend_factory=factory(), log=lambda s: None)
    (run / "serve" / "inbox.jsonl").write_text("")  # each test reads its own requests
    srv = Server(make_app(svc, api_key="secret"))
    yield svc, srv
    srv.stop()
    svc.close()


def _questions(n: int, offset: int = 0) -> list[str]:
    return list(ORACLE)[offset:offset + n]


def test_openai_client_both_paths_usage_and_inbox(served, run) -> None:
    svc, srv = served
    assert svc.threshold is not None and svc.signal == "logprob"
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key="secret")
    assert [m.id for m in client.models.list().data] == ["s2distill-c"]
    sure = next(q for q in _questions(50) if sure_of(q))
    unsure = next(q for q in _questions(50) if not sure_of(q))
    a = client.chat.completions.create(model="s2distill-c", messages=[{"role": "user", "content": sure}])
    ext = a.model_extra["s2distill"]
    assert ext["path"] == "system1" and ext["confidence"] == pytest.approx(0.97) and a.choices[0].message.content == ORACLE[sure]
    assert a.usage.completion_tokens == 2 and a.usage.total_tokens == a.usage.prompt_tokens + 2
    b = client.chat.completions.create(model="s2distill-c", messages=[{"role": "user", "content": unsure}])
    ext = b.model_extra["s2distill"]
    assert ext["path"] == "system2" and ext["confidence"] == pytest.approx(0.30)
    assert b.usage.completion_tokens > 2  # System 1's tokens and System 2's, all counted
    inbox = read_inbox(run / "serve" / "inbox.jsonl")
    assert [r["question"] for r in inbox] == [unsure] and inbox[0]["samples"] and inbox[0]["answer"] == ext["answer"]
    # A/B: a request can force a path
    c = client.chat.completions.create(model="s2distill-c", messages=[{"role": "user", "content": sure}],
                                       extra_body={"s2distill": {"route": "system2"}})
    assert c.model_extra["s2distill"]["path"] == "system2" and c.model_extra["s2distill"]["confidence"] is None
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key="wrong").models.list()


def test_bad_requests_get_a_4xx_and_the_server_stays_up(served) -> None:
    import httpx

    _, srv = served
    url, auth = f"http://127.0.0.1:{srv.port}", {"Authorization": "Bearer secret"}
    for body, status, words in ((b"not json", 400, "not JSON"), (json.dumps({"messages": []}), 400, "non-empty list"),
                                (json.dumps({"messages": [{"role": "system", "content": "x"}]}), 400, "no user message"),
                                (json.dumps({"messages": [{"role": "user", "content": "q"}], "stream": True}), 400,
                                 "streaming"),
                                (json.dumps({"messages": [{"role": "user", "content": "q"}],
                                             "s2distill": {"route": "fast"}}), 400, "s2distill.route")):
        r = httpx.post(f"{url}/v1/chat/completions", content=body, headers=auth, timeout=30)
        assert r.status_code == status and words in r.json()["error"]["message"], r.text
    assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"


def test_request_storm_loses_nothing(served, run) -> None:
    _, srv = served
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key="secret", max_retries=0)
    qs = _questions(48, offset=50)

    def ask(q):
        r = client.chat.completions.create(model="s2distill-c", messages=[{"role": "user", "content": q}])
        return q, r.model_extra["s2distill"]["path"], r.choices[0].message.content

    with ThreadPoolExecutor(16) as pool:
        out = list(pool.map(ask, qs))
    assert [q for q, _, _ in out] == qs
    assert all(p == ("system1" if sure_of(q) else "system2") for q, p, _ in out)
    assert all(a == ORACLE[q] for q, p, a in out if p == "system1")
    inbox = read_inbox(run / "serve" / "inbox.jsonl")
    assert sorted(r["question"] for r in inbox) == sorted(q for q, p, _ in out if p == "system2")


def test_vote_signal_routes_as_calibrated_and_counts_its_samples(run) -> None:
    """Serving with the vote signal (the one the report calibrated for it): eval.cascade_k sampled answers per
    question, the share repeating the greedy answer as confidence; their tokens are in the usage."""
    import json as _json

    report = _json.loads((run / "report.json").read_text())
    thr = report["cascade"]["signals"]["vote"]["calibration"]["threshold"]
    svc = CascadeService(run, backend_factory=factory(), log=lambda s: None)
    try:
        svc.signal, svc.threshold = "vote", thr
        qs = list(ORACLE)[-6:]
        outs = [svc.answer(q) for q in qs]
        plain = svc.answer(qs[0], route="system1")
    finally:
        svc.close()
    assert all(o["path"] == ("system1" if sure_of(q) else "system2") for q, o in zip(qs, outs))
    assert all(o["confidence"] == (1.0 if sure_of(q) else 0.5) for q, o in zip(qs, outs))
    sure = next(o for q, o in zip(qs, outs) if sure_of(q))
    assert sure["calls"] == 1 + 4 and sure["completion_tokens"] == 5 * plain["completion_tokens"]


def test_service_errors_name_the_fix(tmp_path, run) -> None:
    with pytest.raises(ConfigError, match="not a finished run"):
        CascadeService(tmp_path, backend_factory=factory())
    with pytest.raises(ConfigError, match="unknown route 'fast'"):
        CascadeService(run, route="fast", backend_factory=factory())


def test_inbox_survives_kill_9_mid_storm(run, tmp_path) -> None:
    """A server process (fake engines, each answer slowed) killed with SIGKILL while requests are in flight:
    the inbox holds only whole records, one per System 2 answer it wrote."""
    import httpx

    port = _free_port()
    inbox = run / "serve" / "inbox.jsonl"
    inbox.write_text("")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE)])}
    proc = subprocess.Popen([sys.executable, str(HERE / "serve_worker.py"), str(run), str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        qs = [q for q in _questions(200, offset=100) if not sure_of(q)][:40]  # all go to System 2

        def ask(q):
            try:
                httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=30,
                           json={"messages": [{"role": "user", "content": q}]})
            except httpx.HTTPError:
                pass

        pool = ThreadPoolExecutor(16)
        futures = [pool.submit(ask, q) for q in qs]
        while len(read_inbox(inbox)) < 5 and time.time() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        for f in futures:
            f.result()
        pool.shutdown()
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = inbox.read_text().splitlines()
    assert 5 <= len(lines) < len(qs)  # killed mid-storm
    records = [json.loads(x) for x in lines]  # every line whole: no torn record
    assert {r["question"] for r in records} <= set(qs) and all(r["samples"] for r in records)


def test_explore_sends_a_share_of_system1_answers_to_system2_for_the_inbox(run) -> None:
    """--explore: the answer is System 1's (its usage only); System 2 runs in the background on the inputs
    the id's hash picks, and their samples land in the inbox as route 'explore'; the next round reads them."""
    from s2distill.continual import read_new
    from s2distill.tasks import make_task

    with pytest.raises(ConfigError, match="--explore"):
        CascadeService(run, backend_factory=factory(), log=lambda s: None, explore=1.5)
    (run / "serve" / "inbox.jsonl").write_text("")
    svc = CascadeService(run, backend_factory=factory(), log=lambda s: None, explore=0.5)
    sure = [q for q in _questions(80) if sure_of(q)][:12]
    try:
        outs = [svc.answer(q) for q in sure]
    finally:
        svc.close()  # waits for the explorations asked for
    assert all(o["path"] == "system1" and o["completion_tokens"] == 2 for o in outs)
    picked = [q for q, o in zip(sure, outs) if o["explored"]]
    assert 0 < len(picked) < len(sure)  # about half, by hash
    assert [o["explored"] for o in outs] == [svc.explores(stable_hash(q)) for q in sure]
    inbox = read_inbox(run / "serve" / "inbox.jsonl")
    assert sorted(r["question"] for r in inbox) == sorted(picked)
    assert all(r["route"] == "explore" and r["samples"] for r in inbox)
    assert svc.explored["inputs"] == len(picked) and svc.explored["completion_tokens"] > 0
    exs, traces = read_new(make_task(svc.cfg.task), run / "serve" / "inbox.jsonl")
    assert {e.question for e in exs} == set(picked) and set(traces) == {e.id for e in exs}


def test_a_run_without_a_threshold_says_why_everything_goes_to_system2(run, tmp_path) -> None:
    import shutil

    keep = tmp_path / "keep"
    shutil.copytree(run, keep)
    report = json.loads((keep / "report.json").read_text())
    report["cascade"]["best"] = None
    report["cascade"]["why_none"] = "no cascade threshold passed: WHY"
    (keep / "report.json").write_text(json.dumps(report))
    lines: list[str] = []
    svc = CascadeService(keep, backend_factory=factory(), log=lines.append)
    try:
        assert svc.threshold is None
        assert any("every request goes to System 2 (no cascade threshold passed: WHY)" in x for x in lines), lines
        q = next(q for q in ORACLE if sure_of(q))
        assert svc.answer(q)["path"] == "system2"  # even a sure input: nothing was certified
    finally:
        svc.close()
