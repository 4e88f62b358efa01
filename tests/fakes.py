"""Test helpers: a deterministic fake 'model' for pipeline tests (unit tests only)."""
from __future__ import annotations

import hashlib
import time

from s2distill.backends.fake import FakeBackend
from s2distill.tasks.arithmetic import ArithmeticOptions, ArithmeticTask


def arithmetic_oracle(depth=1, n=400, seed=0):
    task = ArithmeticTask(ArithmeticOptions(depth=depth))
    return {e.question: e.gold for split in ("train", "eval") for e in task.load(split, n, seed)}


def noisy_responder(oracle, delay_s=0.0, log_path=None):
    """CoT requests: right answer most of the time (deterministic in seed); direct: always wrong."""

    def respond(req, j):
        if delay_s:
            time.sleep(delay_s)
        text = req.messages[-1]["content"]
        q = next((q for q in oracle if q in text), None)
        gold = int(oracle[q]) if q else 0
        h = int(hashlib.sha256(f"{text}|{req.params.seed + j}".encode()).hexdigest(), 16)
        if log_path:
            with open(log_path, "a") as fh:
                fh.write(f"{req.params.seed + j}\n")
        if "step by step" in text:
            ans = gold if h % 4 else gold + 1 + h % 3
            return f"Let me compute. Step one. Step two. The answer is {ans}."
        return str(gold + 7)

    return respond


def factory(oracle, delay_s=0.0, log_path=None, distilled_correct=True):
    def make(cfg, weights, trained):
        responder = noisy_responder(oracle, delay_s, log_path)
        if weights == "distilled" and distilled_correct:
            base = responder

            def responder(req, j):  # noqa: F811 - the 'distilled' fake answers correctly and directly
                text = req.messages[-1]["content"]
                q = next((q for q in oracle if q in text), None)
                return oracle[q] if q else base(req, j)
        return FakeBackend(responder, model_id=f"fake-{weights}")

    return make
