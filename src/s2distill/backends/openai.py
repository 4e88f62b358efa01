"""Any OpenAI-compatible chat endpoint: vLLM, llama.cpp's server, TGI, SGLang, hosted APIs.

Bounded concurrency (a thread pool over one pooled HTTP client), retries with
exponential backoff and jitter on 429 / 5xx / timeouts / connection errors, token
counts from the response's ``usage``. The API key is read from an environment
variable only; it never appears in a config or a run directory.

The n samples of one request go out as one call with ``n`` (``share_samples``, on by default): the
server processes the prompt once for all of them (llama-server and vLLM do). Each choice's token count
is the length of its ``logprobs`` (``usage`` covers the whole call), so such calls ask for logprobs. A
server that answers with fewer choices than asked, or without per-token logprobs, gets one call per
sample from then on.
"""
from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
import queue

import httpx

from ..errors import BackendError
from ..types import Completion, GenRequest
from .base import Backend

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _Calls:
    """``fn(unit)`` on ``n`` daemon threads: ``submit`` a unit, ``get`` (unit, result, error) as each ends."""

    def __init__(self, n: int, fn):
        self.fn, self.todo, self.done = fn, queue.Queue(), queue.Queue()
        self.threads = [threading.Thread(target=self._work, name=f"s2d-http_{k}", daemon=True) for k in range(n)]
        for t in self.threads:
            t.start()

    def _work(self) -> None:
        while (unit := self.todo.get()) is not None:
            try:
                self.done.put((unit, self.fn(unit), None))
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, who raises it
                self.done.put((unit, None, e))

    def submit(self, unit) -> None:
        self.todo.put(unit)

    def get(self):
        return self.done.get()

    def stop(self) -> None:
        """Drop the units not started; each thread ends after its current call."""
        try:
            while True:
                self.todo.get_nowait()
        except queue.Empty:
            pass
        for _ in self.threads:
            self.todo.put(None)


class _NotShared(BackendError):
    """A server answered a call for n choices with fewer, or without per-choice token counts."""


def token_logprobs(choice: dict) -> tuple[float, ...] | None:
    """The generated tokens' log probabilities of an OpenAI-style chat choice (``logprobs.content[].logprob``),
    or None when the server sent none (a server without logprob support: the input then has no confidence)."""
    content = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
    if not content:
        return None
    try:
        return tuple(float(t["logprob"]) for t in content)
    except (KeyError, TypeError, ValueError):
        return None


def _v1(base_url: str) -> str:
    url = base_url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class OpenAIBackend(Backend):
    name = "openai"
    shares_samples = True  # one call for a request's n samples (falls back to one per sample by itself)

    @classmethod
    def config_kwargs(cls, cfg, weights: str, trained: dict) -> dict:
        from ..errors import ConfigError
        from .base import client_kwargs

        b = cfg.backend
        served = b.served_model
        if weights == "distilled":
            served = cfg.eval.distilled_served_model
            if not served:
                raise ConfigError("evaluating the distilled model through backend 'openai' needs "
                                  "eval.distilled_served_model (serve model/merged or the adapter, e.g. vLLM "
                                  "--lora-modules distilled=RUN/model/adapter)")
        return dict(base_url=b.base_url, served_model=served, api_key_env=b.api_key_env, **client_kwargs(cfg))

    @classmethod
    def model_id_of(cls, base_url: str, served_model: str | None = None, model_id: str | None = None,
                    **_: object) -> str:
        return model_id or f"{_v1(base_url)}#{served_model or ''}"

    def __init__(self, base_url: str, served_model: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 16, timeout_s: float = 600.0, max_retries: int = 5, backoff_s: float = 0.5,
                 model_id: str | None = None, share_samples: bool = True, **_: object):
        self.base_url = _v1(base_url)
        self.shares_samples = bool(share_samples)
        self.served_model = served_model
        self.model_id = model_id or OpenAIBackend.model_id_of(base_url, served_model)
        self.concurrency = max(1, int(concurrency))
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency))
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # set when a generation is abandoned: in-flight calls stop retrying
        self.stats = {"requests": 0, "retries": 0, "shared_calls": 0}

    # -- one HTTP call -------------------------------------------------------------
    def _payload(self, req: GenRequest) -> dict:
        p = req.params
        body = {"messages": list(req.messages), "max_tokens": p.max_tokens, "temperature": p.temperature,
                "top_p": p.top_p, "seed": p.seed, "n": 1}
        if self.served_model:
            body["model"] = self.served_model
        else:
            body["model"] = "default"
        if p.stop:
            body["stop"] = list(p.stop)
        if p.logprobs:
            body["logprobs"] = True
        return body

    def _post(self, body: dict) -> dict:
        url = f"{self.base_url}/chat/completions"
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                r = self._client.post(url, json=body)
                if r.status_code == 200:
                    return r.json()
                last = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code not in RETRY_STATUS:
                    hint = " (check backend.api_key_env)" if r.status_code in (401, 403) else ""
                    raise BackendError(f"{url} answered {last}{hint}")
            except httpx.ConnectError as e:
                last = f"cannot connect ({e})"
            except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError) as e:
                last = f"{type(e).__name__}: {e}"
            if self._stopping.is_set():
                break
            if attempt < self.max_retries:
                with self._lock:
                    self.stats["retries"] += 1
                time.sleep(self.backoff_s * (2 ** attempt) * (0.5 + random.random()))
        raise BackendError(f"{url} failed after {self.max_retries + 1} attempts: {last}; "
                           "is the server running and backend.base_url right?")

    def _call(self, req: GenRequest, first: int, n: int) -> list[Completion]:
        """Samples ``first .. first+n-1`` of ``req``: one call asking for ``n`` choices, seeded ``seed + first``
        (a single sample is the call it always was). Fewer choices than asked, or no per-choice token counts,
        turn sharing off for this backend (BackendError ``_NotShared``; the caller asks again one by one)."""
        body = self._payload(req)
        body["seed"] = req.params.seed + first
        if n > 1:
            body["n"] = n
            body["logprobs"] = True  # each choice's token count: usage only covers the whole call
        t0 = time.perf_counter()
        data = self._post(body)
        dt = time.perf_counter() - t0
        with self._lock:
            self.stats["requests"] += 1
            self.stats["shared_calls"] += n > 1
        try:
            choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
            usage = data.get("usage") or {}
            texts = [c["message"].get("content") or "" for c in choices]
        except (KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(f"unexpected response from {self.base_url}: {str(data)[:300]}") from None
        if not choices:
            raise BackendError(f"unexpected response from {self.base_url} (no choices): {str(data)[:300]}")
        if n == 1:
            c = choices[0]
            return [Completion(text=texts[0], completion_tokens=int(usage.get("completion_tokens", 0)),
                               prompt_tokens=int(usage.get("prompt_tokens", 0)),
                               finish_reason=c.get("finish_reason") or "stop", latency_s=round(dt, 4),
                               token_logprobs=token_logprobs(c) if req.params.logprobs else None)]
        lps = [token_logprobs(c) for c in choices]
        if len(choices) < n or any(lp is None for lp in lps):
            raise _NotShared(f"{self.base_url} answered n={n} with {len(choices)} choice(s)"
                             f"{'' if all(lp is not None for lp in lps) else ' without logprobs'}")
        return [Completion(text=t, completion_tokens=len(lp), prompt_tokens=int(usage.get("prompt_tokens", 0)),
                           finish_reason=c.get("finish_reason") or "stop", latency_s=round(dt, 4),
                           token_logprobs=lp if req.params.logprobs else None)
                for t, c, lp in zip(texts, choices[:n], lps[:n])]

    def _unit(self, requests: Sequence[GenRequest], unit: tuple[int, int, int]) -> list[Completion]:
        i, first, n = unit
        if n > 1 and self.shares_samples:
            try:
                return self._call(requests[i], first, n)
            except _NotShared:
                self.shares_samples = False  # this server does not share: one call per sample from now on
        return [self._call(requests[i], first + m, 1)[0] for m in range(n)]

    # -- the contract --------------------------------------------------------------
    def iter_generate(self, requests: Sequence[GenRequest]) -> Iterator[tuple[int, int, Completion]]:
        """Yield samples as they finish. A unit is a request's n samples in one call (``shares_samples``) or one
        sample; at most ``concurrency`` samples are in flight (a shared call counts its n)."""
        if self.shares_samples:
            units = [(i, 0, r.params.n) for i, r in enumerate(requests) if r.params.n > 0]
        else:
            units = [(i, j, 1) for i, r in enumerate(requests) for j in range(r.params.n)]
        if not units:
            return
        calls = _Calls(min(self.concurrency, len(units)), lambda u: self._unit(requests, u))
        it = iter(units)
        pending = next(it, None)
        in_flight = 0  # samples
        self._stopping.clear()
        try:
            while True:
                while pending is not None and (in_flight == 0 or in_flight + pending[2] <= self.concurrency):
                    calls.submit(pending)
                    in_flight += pending[2]
                    pending = next(it, None)
                if not in_flight:
                    break
                (i, first, n), comps, err = calls.get()
                in_flight -= n
                if err is not None:
                    raise err  # a BackendError after retries
                for m, comp in enumerate(comps):
                    yield i, first + m, comp
        finally:
            # Interrupted (Ctrl-C, an error, the consumer stopped): do not wait for the calls in flight, which on a
            # busy CPU server take minutes; their answers were never cached, so nothing finished is lost. They end
            # when the server answers or is closed, without retrying, on daemon threads that never hold the
            # interpreter at exit (a server that accepted a call and never answers cannot stall a process).
            if in_flight:
                self._stopping.set()
            calls.stop()

    def close(self) -> None:
        self._stopping.set()
        self._client.close()
