"""Generation throughput of the llamacpp backend vs the raw llama-server vs one request at a time.

    python benchmarks/throughput.py [--requests 48] [--concurrency 16] [--max-tokens 128]

All three drive the SAME server process (started once by the backend) with the same
CoT requests on arithmetic word problems (temperature 0.7, per-request seeds):
  raw        : a minimal thread pool posting straight to /v1/chat/completions
  backend    : LlamaCppBackend.generate (our OpenAI client, bounded pool, retries)
  sequential : the backend with concurrency 1
tokens/s = generated tokens (from the server's usage) / wall time.
"""
from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from common import Table, cot_requests, write_result  # noqa: E402

from s2distill.backends.llamacpp import LlamaCppBackend  # noqa: E402
from s2distill.types import GenRequest  # noqa: E402


def raw_drive(base_url: str, requests: list[GenRequest], concurrency: int) -> tuple[int, float]:
    client = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=concurrency))

    def one(req: GenRequest) -> int:
        p = req.params
        r = client.post(f"{base_url}/chat/completions", json={
            "messages": list(req.messages), "max_tokens": p.max_tokens, "temperature": p.temperature,
            "top_p": p.top_p, "seed": p.seed})
        r.raise_for_status()
        return r.json()["usage"]["completion_tokens"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        tokens = sum(pool.map(one, requests))
    dt = time.perf_counter() - t0
    client.close()
    return tokens, dt


def backend_drive(backend, requests) -> tuple[int, float]:
    t0 = time.perf_counter()
    out = backend.generate(requests)
    dt = time.perf_counter() - t0
    return sum(c.completion_tokens for row in out for c in row), dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    def make(seed_base: int) -> list[GenRequest]:
        return cot_requests(args.requests, args.max_tokens, seed_base)

    backend = LlamaCppBackend(model=args.model, parallel=args.concurrency, ctx_per_slot=1024,
                              concurrency=args.concurrency)
    try:
        backend_drive(backend, make(10_000)[: args.concurrency])  # warm-up
        raw_tok, raw_s = raw_drive(backend.base_url, make(20_000), args.concurrency)
        be_tok, be_s = backend_drive(backend, make(30_000))
        backend.concurrency = 1
        seq_tok, seq_s = backend_drive(backend, make(40_000))
    finally:
        backend.close()
    res = {
        "model": args.model, "model_path": str(backend.model_path), "concurrency": args.concurrency,
        "requests": args.requests, "max_tokens": args.max_tokens,
        "engine_tokens_per_s": raw_tok / raw_s, "backend_tokens_per_s": be_tok / be_s,
        "sequential_tokens_per_s": seq_tok / seq_s,
        "raw": {"tokens": raw_tok, "wall_s": raw_s}, "backend": {"tokens": be_tok, "wall_s": be_s},
        "sequential": {"tokens": seq_tok, "wall_s": seq_s},
    }
    res["ratio_vs_raw"] = res["backend_tokens_per_s"] / res["engine_tokens_per_s"]
    res["ratio_vs_sequential"] = res["backend_tokens_per_s"] / res["sequential_tokens_per_s"]
    md = render(res)
    write_result("throughput", res, md)
    print(md)


def render(res: dict) -> str:
    """The markdown of a result (also used to re-render a committed result from its JSON)."""
    c = res["concurrency"]
    table = Table(["driver", "generated tokens", "wall s", "tokens/s"], [
        [f"raw server, {c} concurrent", str(res["raw"]["tokens"]), f"{res['raw']['wall_s']:.1f}",
         f"{res['engine_tokens_per_s']:.1f}"],
        [f"llamacpp backend, {c} concurrent", str(res["backend"]["tokens"]), f"{res['backend']['wall_s']:.1f}",
         f"{res['backend_tokens_per_s']:.1f}"],
        ["llamacpp backend, 1 at a time", str(res["sequential"]["tokens"]), f"{res['sequential']['wall_s']:.1f}",
         f"{res['sequential_tokens_per_s']:.1f}"]])
    return ("# Throughput: llamacpp backend vs raw llama-server vs sequential\n\n"
            f"Model {res['model']}, {res['requests']} zero-shot CoT requests (arithmetic depth 2), max_tokens "
            f"{res['max_tokens']}, T=0.7, {c} server slots.\n\n" + table.markdown() + "\n\n"
            f"Backend / raw = {res['ratio_vs_raw']:.2f} (goal >= 0.90); backend / sequential = "
            f"{res['ratio_vs_sequential']:.2f} (goal >= 3).")


if __name__ == "__main__":
    main()
