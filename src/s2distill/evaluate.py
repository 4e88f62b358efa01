"""The one place that measures: accuracy (n, 95% Wilson interval), generated tokens,
calls and time per answer. System 1, System 2 and the distilled model all go through
``score_traces`` and ``summarize``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from .curate import plurality_answer
from .types import EvalRecord, Example, Trace


def wilson_ci(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def score_traces(system: str, task, examples: Sequence[Example], traces: Sequence[Trace],
                 vote: bool = False) -> list[EvalRecord]:
    """One record per example. ``vote``: majority over all samples (maj@k), costs summed over all."""
    by_id = {t.example_id: t for t in traces}
    out = []
    for ex in examples:
        tr = by_id[ex.id]
        used = tr.samples if vote else tr.samples[:1]
        pred = plurality_answer([s.answer for s in used]) if vote else used[0].answer
        out.append(EvalRecord(
            system=system, example_id=ex.id, prediction=pred, gold=ex.gold, correct=task.score(pred, ex.gold),
            generated_tokens=sum(s.generated_tokens for s in used), calls=sum(len(s.calls) for s in used),
            latency_s=round(sum(s.latency_s for s in used), 4),
            meta={"response": used[0].response[:2000]} if not vote else {"answers": [s.answer for s in used]}))
    return out


def summarize(records: Sequence[EvalRecord], wall_s: float | None = None) -> dict:
    n = len(records)
    k = sum(r.correct for r in records)
    lo, hi = wilson_ci(k, n)
    return {
        "n": n,
        "correct": k,
        "accuracy": k / n if n else 0.0,
        "ci95": [round(lo, 4), round(hi, 4)],
        "mean_generated_tokens": sum(r.generated_tokens for r in records) / n if n else 0.0,
        "calls_per_answer": sum(r.calls for r in records) / n if n else 0.0,
        "unparsed": sum(r.prediction is None for r in records),
        "wall_s_per_answer": (wall_s / n) if (wall_s is not None and n) else None,
    }
