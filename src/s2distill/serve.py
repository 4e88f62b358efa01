"""``s2distill serve RUN_DIR``: the run as an OpenAI-compatible HTTP API, answering through its cascade.

The distilled model answers first, with a confidence: the signal the run chose (its answer's probability
from engine logprobs, the vote share of ``eval.cascade_k`` sampled answers, or the base System 1's
agreement; docs/cascade.md); below the threshold the run calibrated without labels (``report.json`` → ``cascade``, docs/cascade.md) the run's System 2
method answers instead (maj@k or greedy, as ``eval.cascade_fallback`` says). ``--route system1|system2``
forces one path for A/B tests; a request may also ask with ``"s2distill": {"route": ...}``.

Every input routed to System 2 is appended to ``RUN_DIR/serve/inbox.jsonl`` (question, System 2 samples,
answer): one ``write`` of one whole line each, so a ``kill -9`` leaves whole lines only. Those are the
unlabeled inputs, with their System 2 samples already paid for, that a next distillation round learns from.
``--explore RATE`` also sends that share of the inputs the distilled model answered (chosen by the question's
hash, so reproducibly) to System 2 in the background, after the answer has gone out: without it, the better the
cascade covers the traffic, the less of it reaches the inbox, and a round learns only from what it already
routes away. Exploration tokens are not the client's: ``usage`` leaves them out, ``/health`` counts them.

Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``. ``usage`` counts every token
spent (System 1's, and System 2's on routed inputs); the response's ``s2distill`` field says which path
answered, with the confidence and threshold.
"""
# (no `from __future__ import annotations`: FastAPI reads the endpoints' annotations as live classes)

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError

ROUTES = ("cascade", "system1", "system2")


class Inbox:
    """Append-only JSONL that a ``kill -9`` cannot corrupt: each record is one ``os.write`` of one line."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_inbox(path: Path) -> list[dict]:
    """The inbox's records (a torn last line, impossible with :class:`Inbox`, would be skipped, not fatal)."""
    out = []
    for line in Path(path).read_text().splitlines() if Path(path).is_file() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class CascadeService:
    """The model side of the server: the run's engines, its threshold, and the routing of one question."""

    def __init__(self, run_dir: str | Path, route: str = "cascade", threshold: float | None = None,
                 backend_factory: Callable | None = None, log: Callable[[str], None] = print, explore: float = 0.0):
        from .backends.pool import default_backend_factory, distilled_paths
        from .checks import load_checked
        from .rundir import read_json
        from .tasks import make_task
        from .teacher import teacher_config

        if route not in ROUTES:
            raise ConfigError(f"unknown route '{route}'; choose one of {', '.join(ROUTES)}")
        if not 0.0 <= explore <= 1.0:
            raise ConfigError(f"--explore is the share of System 1's answers also sent to System 2 for the inbox, "
                              f"in [0, 1], got {explore} (e.g. --explore 0.25)")
        self.explore = explore
        self.explored = {"inputs": 0, "completion_tokens": 0, "calls": 0}
        self._explorer = None  # one background thread, started on the first explored input
        self.rd = Path(run_dir)
        if not (self.rd / "config.yaml").is_file() or not (self.rd / "report.json").is_file():
            raise ConfigError(f"{self.rd} is not a finished run (no config.yaml or report.json); fix: serve a run "
                              "directory that `s2distill run CONFIG` completed")
        self.cfg = load_checked(self.rd / "config.yaml")
        self.task = make_task(self.cfg.task)
        report = read_json(self.rd / "report.json")
        cascade = report.get("cascade") or {}
        best = cascade.get("best")
        calibrated = cascade["signals"][best]["calibration"]["threshold"] if best else None
        self.signal = best or "logprob"
        self.threshold = threshold if threshold is not None else calibrated
        self.calibrated_threshold = calibrated
        self.fallback = self.cfg.eval.cascade_fallback
        self.route = route
        trained = distilled_paths(self.rd / "model")
        if not (self.rd / "model" / "train_summary.json").is_file():
            raise ConfigError(f"{self.rd} has no trained model (model/train_summary.json); fix: serve a run trained "
                              "with train.enabled=true")
        factory = backend_factory or default_backend_factory
        self.log = log
        if route == "cascade" and self.threshold is None:
            log(f"[serve] no calibrated threshold: every request goes to System 2 "
                f"({cascade.get('why_none') or 'the run has no cascade that saves tokens'}); --threshold T overrides")
        if (instead := (report.get("verdict") or {}).get("serve_instead")) and route == "cascade":
            log(f"[serve] note: {instead['note']}")
        log(f"[serve] starting {self.cfg.backend.name} engines: distilled, System 2 "
            f"({'teacher' if self.cfg.teacher else 'base'})")
        self.s1 = factory(self.cfg, "distilled", trained)
        s2_cfg = teacher_config(self.cfg) if self.cfg.teacher is not None else self.cfg
        self.s2 = factory(s2_cfg, "base", {})
        self.base = None
        if self.signal == "agreement":
            self.base = self.s2 if self.cfg.teacher is None else factory(self.cfg, "base", {})
        self.inbox = Inbox(self.rd / "serve" / "inbox.jsonl")
        self.model_name = f"s2distill-{self.cfg.name}"

    # -- one question -------------------------------------------------------------------------
    def _system1(self, backend, ex) -> tuple[Any, float | None]:
        import dataclasses

        from .evaluate import system_run
        from .methods import METHODS

        _, params = system_run(self.cfg, "distilled")
        trace = METHODS.get("direct")(self.task, [ex], backend, dataclasses.replace(params, logprobs=True))[0]
        s = trace.samples[0]
        return s, s.calls[-1].completion.probability if s.calls else None

    def _votes(self, ex) -> list:
        """``eval.cascade_k`` sampled direct answers of the distilled model (the vote-share signal)."""
        from .evaluate import votes_params
        from .methods import METHODS

        return list(METHODS.get("direct")(self.task, [ex], self.s1, votes_params(self.cfg))[0].samples)

    def _system2(self, ex):
        from .evaluate import system_run
        from .methods import METHODS
        from .systems import reference
        from .voting import plurality_answer

        name, params = system_run(self.cfg, reference(self.fallback))
        trace = METHODS.get(name)(self.task, [ex], self.s2, params, self.cfg.method)[0]
        answer = plurality_answer([s.answer for s in trace.samples])
        return trace, answer

    def answer(self, question: str, route: str | None = None) -> dict:
        from .evaluate import vote_share
        from .label_free import normalizer
        from .types import Example, stable_hash

        route = route or self.route
        if route not in ROUTES:
            raise ConfigError(f"unknown route '{route}'; choose one of {', '.join(ROUTES)}")
        ex = Example(id=stable_hash(question), question=question)
        t0 = time.perf_counter()
        out: dict = {"route": route, "threshold": self.threshold, "signal": self.signal}
        prompt = completion = calls = 0
        conf = None
        s1 = None
        if route != "system2":
            s1, conf = self._system1(self.s1, ex)
            prompt += sum(c.completion.prompt_tokens for c in s1.calls)
            completion += s1.generated_tokens
            calls += len(s1.calls)
            norm = normalizer(self.task)  # the report's normalisation, so serving routes as calibrated
            if self.signal == "agreement" and route == "cascade":
                b, _ = self._system1(self.base, ex)
                prompt += sum(c.completion.prompt_tokens for c in b.calls)
                completion += b.generated_tokens
                calls += len(b.calls)
                conf = 1.0 if norm(s1.answer) is not None and norm(b.answer) == norm(s1.answer) else 0.0
            elif self.signal == "vote" and route == "cascade":
                samples = self._votes(ex)
                for s in samples:
                    prompt += sum(c.completion.prompt_tokens for c in s.calls)
                    completion += s.generated_tokens
                    calls += len(s.calls)
                conf = vote_share(s1.answer, [s.answer for s in samples], norm)
        out["confidence"] = conf
        use_s1 = route == "system1" or (route == "cascade" and conf is not None and self.threshold is not None
                                        and conf >= self.threshold)
        if use_s1:
            out["path"], text, answer = "system1", s1.response, s1.answer
            out["explored"] = route == "cascade" and self.explores(ex.id)
            if out["explored"]:
                self._explore(ex, conf)
        else:
            trace, answer = self._system2(ex)
            for s in trace.samples:
                prompt += sum(c.completion.prompt_tokens for c in s.calls)
                completion += s.generated_tokens
                calls += len(s.calls)
            out["path"] = "system2"
            text = answer if answer is not None else (trace.samples[0].response if trace.samples else "")
            self.inbox.append({"id": ex.id, "question": question, "answer": answer, "route": route,
                               "confidence": conf, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                               "method": trace.method, "samples": [s.to_json() for s in trace.samples]})
        out.update(text=text or "", answer=answer, calls=calls, prompt_tokens=prompt, completion_tokens=completion,
                   latency_s=round(time.perf_counter() - t0, 4))
        return out

    def explores(self, example_id: str) -> bool:
        """Whether an input System 1 answered also goes to System 2 (``explore`` of them, by the id's hash)."""
        return self.explore > 0 and int(example_id[:8], 16) / 16 ** 8 < self.explore

    def _explore(self, ex, conf: float | None) -> None:
        """System 2 on ``ex`` in the background (after the answer has gone out), its samples to the inbox."""
        from concurrent.futures import ThreadPoolExecutor

        def run() -> None:
            try:
                trace, answer = self._system2(ex)
            except Exception as e:  # noqa: BLE001 - exploration must never take the server down
                self.log(f"[serve] exploring {ex.id} failed: {type(e).__name__}: {e}")
                return
            self.explored["inputs"] += 1
            self.explored["completion_tokens"] += sum(s.generated_tokens for s in trace.samples)
            self.explored["calls"] += sum(len(s.calls) for s in trace.samples)
            self.inbox.append({"id": ex.id, "question": ex.question, "answer": answer, "route": "explore",
                               "confidence": conf, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                               "method": trace.method, "samples": [s.to_json() for s in trace.samples]})

        if self._explorer is None:
            self._explorer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2distill-explore")
        self._explorer.submit(run)

    def close(self) -> None:
        if self._explorer is not None:  # the explorations already asked for finish into the inbox
            self._explorer.shutdown(wait=True)
        for b in {id(x): x for x in (self.s1, self.s2, self.base) if x is not None}.values():
            b.close()
        self.inbox.close()


def _error(status: int, message: str, kind: str = "invalid_request_error"):
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind}})


def make_app(service: CascadeService, api_key: str | None = None):
    """The FastAPI app over ``service`` (OpenAI chat-completions shape; 4xx with a message for bad requests)."""
    try:
        from fastapi import FastAPI, Request
    except ImportError as e:
        raise ConfigError(f"{e}; fix: pip install 's2distill[serve]' (fastapi, uvicorn)") from e
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="s2distill", description="A distilled model with System 2 fallback, OpenAI-compatible")

    def unauthorized(request: Request):
        if api_key and request.headers.get("authorization", "") != f"Bearer {api_key}":
            return _error(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "authentication_error")
        return None

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "route": service.route, "threshold": service.threshold, "signal": service.signal,
                "calibrated_threshold": service.calibrated_threshold, "fallback": service.fallback,
                "explore": service.explore, "explored": dict(service.explored)}

    @app.get("/v1/models")
    def models(request: Request):
        if (bad := unauthorized(request)) is not None:
            return bad
        return {"object": "list", "data": [{"id": service.model_name, "object": "model", "owned_by": "s2distill"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        if (bad := unauthorized(request)) is not None:
            return bad
        try:
            body = await request.json()
        except Exception:  # noqa: BLE001 - any undecodable body is the client's error
            return _error(400, "the request body is not JSON; send {\"messages\": [{\"role\": \"user\", \"content\": ...}]}")
        question, route = _parse_chat(body)
        if question is None:
            return _error(400, route)  # the message that names what is wrong
        try:
            out = await run_in_threadpool(service.answer, question, route)
        except ConfigError as e:
            return _error(400, str(e))
        except Exception as e:  # noqa: BLE001 - an engine failure answers 502 and leaves the server up
            return _error(502, f"{type(e).__name__}: {e}", "engine_error")
        return _completion(service.model_name, out)

    return app


def _parse_chat(body: Any) -> tuple[str | None, str | None]:
    """(the last user message, the requested route) of a chat-completions body; (None, what is wrong) if bad."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        return None, "'messages' must be a non-empty list of {\"role\", \"content\"} objects"
    if body.get("stream"):
        return None, "streaming is not supported; send \"stream\": false"
    users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
    if not users or not isinstance(users[-1].get("content"), str) or not users[-1]["content"].strip():
        return None, "no user message with text content: the last user message is the question"
    ext = body.get("s2distill") if isinstance(body.get("s2distill"), dict) else {}
    route = ext.get("route")
    if route is not None and route not in ROUTES:
        return None, f"s2distill.route must be one of {', '.join(ROUTES)}, got {route!r}"
    return users[-1]["content"], route


def _completion(model_name: str, out: dict) -> dict:
    """The OpenAI chat.completion object of one answer, with the cascade's decision under ``s2distill``."""
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": out["text"]}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": out["prompt_tokens"], "completion_tokens": out["completion_tokens"],
                      "total_tokens": out["prompt_tokens"] + out["completion_tokens"]},
            "s2distill": {k: out.get(k) for k in ("path", "route", "confidence", "threshold", "signal", "answer",
                                                  "calls", "latency_s", "explored")}}


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, route: str = "cascade",
          threshold: float | None = None, api_key_env: str | None = None, log: Callable[[str], None] = print,
          explore: float = 0.0) -> None:
    """Start the engines, serve until interrupted, stop the engines."""
    try:
        import uvicorn
    except ImportError as e:
        raise ConfigError(f"{e}; fix: pip install 's2distill[serve]' (fastapi, uvicorn)") from e
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env {api_key_env}: that environment variable is empty; fix: export "
                              f"{api_key_env}=<a secret> or leave the option out")
    service = CascadeService(run_dir, route=route, threshold=threshold, log=log, explore=explore)
    try:
        log(f"[serve] {service.model_name} on http://{host}:{port}/v1 (route {route}, signal {service.signal}, "
            f"threshold {service.threshold}, explore {explore}); inbox {service.inbox.path}")
        uvicorn.run(make_app(service, api_key), host=host, port=port, log_level="warning")
    finally:
        service.close()
