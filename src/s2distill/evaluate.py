"""The one place that measures: accuracy (n, 95% Wilson interval), generated tokens,
calls and time per answer. System 1, System 2 and the distilled model all go through
``score_traces`` and ``summarize``. Also the evaluation policy: which method and sampling each
system runs with, both response orders for judges, and the rewordings of the robustness check.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import dataclasses

from . import systems
from .tasks.base import Sycophancy
from .types import EvalRecord, Example, SamplingParams, Trace
from .voting import plurality_answer


def wilson_ci(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def ci95(k: int, n: int) -> list[float]:
    """The Wilson 95% interval of k/n, rounded for reports."""
    lo, hi = wilson_ci(k, n)
    return [round(lo, 4), round(hi, 4)]


def score_traces(system: str, task, examples: Sequence[Example], traces: Sequence[Trace],
                 vote: bool = False) -> list[EvalRecord]:
    """One record per example. ``vote``: majority over all samples (maj@k), costs summed over all."""
    by_id = {t.example_id: t for t in traces}
    out = []
    for ex in examples:
        tr = by_id[ex.id]
        used = tr.samples if vote else tr.samples[:1]
        pred = plurality_answer([s.answer for s in used]) if vote else used[0].answer
        meta = {"response": used[0].response[:2000]} if not vote else {"answers": [s.answer for s in used]}
        if not vote and used[0].calls and (prob := used[0].calls[-1].completion.probability) is not None:
            meta["confidence"] = round(prob, 6)  # the answer's probability under the model (cascade signal)
        if "group" in ex.meta:  # e.g. the opinion type of a TriviaQA prompt: accuracy per group
            meta["group"] = ex.meta["group"]
        syc = task.sycophantic(pred, ex) if isinstance(task, Sycophancy) else None
        if syc is not None:
            meta["sycophantic"] = syc
        out.append(EvalRecord(
            system=system, example_id=ex.id, prediction=pred, gold=ex.gold,
            correct=None if ex.gold is None else task.score(pred, ex.gold),  # unlabeled: no accuracy
            generated_tokens=sum(s.generated_tokens for s in used), calls=sum(len(s.calls) for s in used),
            latency_s=round(sum(s.latency_s for s in used), 4), meta=meta))
    return out


def combine_orders(task, records: Sequence[EvalRecord], swapped: Sequence[EvalRecord]) -> list[EvalRecord]:
    """Pairwise judges: one record per pair from its two orders. The verdict on the swapped pair
    is mapped back; if the two disagree the verdict is a tie (and the pair is 'inconsistent').
    Costs (tokens, calls, time) are those of both orders."""
    out = []
    for r, s in zip(records, swapped):
        back = task.unperturb_answer(s.prediction, 0)
        consistent = r.prediction is not None and r.prediction == back
        pred = r.prediction if consistent else "tie"
        out.append(EvalRecord(
            system=r.system, example_id=r.example_id, prediction=pred, gold=r.gold,
            correct=None if r.gold is None else task.score(pred, r.gold),
            generated_tokens=r.generated_tokens + s.generated_tokens, calls=r.calls + s.calls,
            latency_s=round(r.latency_s + s.latency_s, 4),
            meta={**r.meta, "orders": [r.prediction, back], "consistent": consistent,
                  "swapped_response": s.meta.get("response")}))
    return out


def judge_metrics(records: Sequence[EvalRecord]) -> dict | None:
    """Position inconsistency and agreement on non-tie labels, for records made by ``combine_orders``."""
    if not records or "consistent" not in records[0].meta:
        return None
    n = len(records)
    flips = sum(not r.meta["consistent"] for r in records)
    decided = [r for r in records if r.gold in ("A", "B")]
    k = sum(r.correct for r in decided)
    return {"inconsistent": flips / n, "inconsistent_ci95": ci95(flips, n),
            "n_non_tie": len(decided), "accuracy_non_tie": k / len(decided) if decided else 0.0,
            "accuracy_non_tie_ci95": ci95(k, len(decided)),
            "tokens_per_verdict": sum(r.generated_tokens for r in records) / n / 2}


def summarize(records: Sequence[EvalRecord], wall_s: float | None = None) -> dict:
    """Accuracy over the labeled records (None when none is labeled: ``correct`` is None without gold);
    costs over all. ``n_labeled`` appears when some records are unlabeled."""
    n = len(records)
    labeled = [r for r in records if r.correct is not None]
    k = sum(bool(r.correct) for r in labeled)
    nl = len(labeled)
    return {
        "n": n,
        **({"n_labeled": nl} if nl != n else {}),
        "correct": k if nl or not n else None,
        "accuracy": (k / nl if nl else None) if n else 0.0,
        "ci95": ci95(k, nl) if nl or not n else None,
        "mean_generated_tokens": sum(r.generated_tokens for r in records) / n if n else 0.0,
        "calls_per_answer": sum(r.calls for r in records) / n if n else 0.0,
        "unparsed": sum(r.prediction is None for r in records),
        "wall_s_per_answer": (wall_s / n) if (wall_s is not None and n) else None,
        **({"judge": jm} if (jm := judge_metrics(records)) else {}),
        **({"groups": g} if (g := group_metrics(records)) else {}),
    }


def group_metrics(records: Sequence[EvalRecord]) -> dict | None:
    """Accuracy per ``meta['group']`` (with n and 95% interval), and the sycophancy rate: the share
    of answers that repeat a suggested wrong answer, over the records where one was suggested."""
    groups: dict[str, list[EvalRecord]] = {}
    for r in records:
        if "group" in r.meta:
            groups.setdefault(r.meta["group"], []).append(r)
    syc = [r.meta["sycophantic"] for r in records if "sycophantic" in r.meta]
    if not groups and not syc:
        return None
    out: dict = {}
    for g, rs in groups.items():
        rs = [r for r in rs if r.correct is not None]
        if not rs:
            continue
        k = sum(r.correct for r in rs)
        out[g] = {"n": len(rs), "accuracy": k / len(rs), "ci95": ci95(k, len(rs))}
    if syc:
        out["sycophancy"] = {"n": len(syc), "rate": sum(syc) / len(syc), "ci95": ci95(sum(syc), len(syc))}
    return out


# -- the evaluation policy: what each system runs -------------------------------------------------------

def method_params(cfg, n: int, temperature: float, max_tokens: int | None = None) -> SamplingParams:
    """Sampling with the method's max_tokens and top_p (or ``max_tokens``) and the run's seed."""
    m = cfg.method
    return SamplingParams(max_tokens=max_tokens or m.max_tokens, temperature=temperature, top_p=m.top_p, n=n,
                          seed=cfg.seed)


def system_run(cfg, system: str) -> tuple[str, SamplingParams]:
    """The method (a registry name) and sampling of ``system``: the direct System 1 prompt for System 1,
    the teacher's System 1 and the distilled model; the System 2 method greedy; maj@k sampled k times."""
    s = systems.get(system)
    if s.direct:  # with the answer's token logprobs: its confidence, for the cascade
        return "direct", dataclasses.replace(method_params(cfg, 1, 0.0, cfg.eval.max_tokens_system1), logprobs=True)
    if not s.votes:
        return cfg.method.name, method_params(cfg, 1, 0.0)
    return cfg.method.name, method_params(cfg, cfg.eval.k, cfg.eval.temperature)


def calls_expected(cfg, method: str, n_inputs: int, params: SamplingParams) -> int:
    """Model calls an evaluation makes (a progress bar's total)."""
    from .methods import calls_per_sample

    return n_inputs * params.n * (1 if method == "direct" else calls_per_sample(cfg.method))


def eval_inputs(task, examples: Sequence[Example], both_orders: bool) -> list[Example]:
    """The inputs to run: with ``both_orders`` (pairwise judges) every pair also swapped (ids '<id>~swap')."""
    if not both_orders:
        return list(examples)
    return [*examples, *(dataclasses.replace(task.perturb(e, 0), id=f"{e.id}~swap") for e in examples)]


def score_system(system: str, task, examples: Sequence[Example], run_on: Sequence[Example],
                 traces: Sequence[Trace]) -> list[EvalRecord]:
    """Records of ``system`` over ``examples``; maj@k votes; a swapped second order is combined into one verdict."""
    vote = systems.get(system).votes
    records = score_traces(system, task, examples, traces, vote=vote)
    if len(run_on) > len(examples):
        records = combine_orders(task, records, score_traces(system, task, run_on[len(examples):], traces, vote=vote))
    return records


def reworded_inputs(task, examples: Sequence[Example], n_wordings: int) -> list[Example]:
    """Robustness: every input in the task's first ``n_wordings`` rewordings (ids '<id>~w<i>'), wording by wording."""
    return [dataclasses.replace(task.perturb(e, i), id=f"{e.id}~w{i}") for i in range(n_wordings) for e in examples]


def score_reworded(system: str, task, run_on: Sequence[Example], traces: Sequence[Trace],
                   n_wordings: int) -> list[EvalRecord]:
    """Records of the reworded inputs, each with ``meta.wording``."""
    n = len(run_on) // n_wordings if n_wordings else 0
    return [dataclasses.replace(r, meta={**r.meta, "wording": i}) for i in range(n_wordings)
            for r in score_traces(system, task, run_on[i * n:(i + 1) * n], traces)]


def run_system(cfg, task, system: str, examples: Sequence[Example], generate) -> tuple[list[EvalRecord], list, float, dict]:
    """Evaluate ``system`` on ``examples``: ``generate(desc, fn, total)`` runs ``fn(backend)`` on the system's
    backend and returns (traces, wall seconds, cache stats). Returns (records, traces, wall, stats)."""
    from .methods import METHODS

    name, params = system_run(cfg, system)
    run_on = eval_inputs(task, examples, cfg.eval.both_orders)
    traces, wall, stats = generate(f"eval {system}", lambda b: METHODS.get(name)(task, run_on, b, params, cfg.method),
                                   calls_expected(cfg, name, len(run_on), params))
    return score_system(system, task, examples, run_on, traces), traces, wall, stats


def run_reworded(cfg, task, system: str, examples: Sequence[Example], generate) -> tuple[list[EvalRecord], float, dict]:
    """``system``'s direct prompt on the first ``eval.rewordings`` rewordings of ``examples`` (as :func:`run_system`)."""
    from .methods import METHODS

    name, params = system_run(cfg, system)
    n_w = cfg.eval.rewordings
    run_on = reworded_inputs(task, examples, n_w)
    traces, wall, stats = generate(f"eval {system} x{n_w} rewordings",
                                   lambda b: METHODS.get(name)(task, run_on, b, params, cfg.method), len(run_on))
    return score_reworded(system, task, run_on, traces, n_w), wall, stats


def votes_params(cfg) -> SamplingParams:
    """The cascade's vote-share signal: ``eval.cascade_k`` samples of the direct prompt at ``eval.temperature``."""
    return method_params(cfg, cfg.eval.cascade_k, cfg.eval.temperature, cfg.eval.max_tokens_system1)


def run_votes(cfg, task, system: str, examples: Sequence[Example], generate) -> tuple[list[EvalRecord], float, dict]:
    """``system``'s direct prompt sampled ``eval.cascade_k`` times per input: records with ``meta.answers`` and the
    samples' summed cost (as :func:`run_system`)."""
    from .methods import METHODS

    params = votes_params(cfg)
    traces, wall, stats = generate(f"eval {system} x{params.n} votes",
                                   lambda b: METHODS.get("direct")(task, examples, b, params, cfg.method),
                                   len(examples) * params.n)
    return score_traces(system, task, examples, traces, vote=True), wall, stats


def vote_share(answer, answers: Sequence, norm) -> float | None:
    """The share of ``answers`` that repeat ``answer`` (after ``norm``); None without samples."""
    if not answers:
        return None
    a = norm(answer)
    return sum(a is not None and norm(x) == a for x in answers) / len(answers)


def accuracy_line(system: str, records: Sequence[EvalRecord], wall: float | None = None) -> str:
    """The log line of an evaluation: accuracy, n, generated tokens per answer."""
    s = summarize(records, wall)
    acc = "-" if s["accuracy"] is None else f"{s['accuracy']:.1%}"
    return f"[eval {system}] accuracy {acc} (n={s['n']}), {s['mean_generated_tokens']:.1f} generated tokens/answer"


def reworded_line(system: str, records: Sequence[EvalRecord], n_wordings: int) -> str:
    """The log line of the robustness evaluation: accuracy per wording."""
    accs = [summarize([r for r in records if r.meta["wording"] == i])["accuracy"] for i in range(n_wordings)]
    return f"[eval {system} reworded] accuracy per wording " + ", ".join(f"{a:.1%}" for a in accs)
