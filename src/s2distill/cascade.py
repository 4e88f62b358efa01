"""A System 1 -> System 2 cascade, calibrated without labels.

The distilled model (System 1) answers every input and states a confidence; where the confidence is
below a threshold the input goes to System 2. The threshold is chosen on unlabeled calibration
inputs, with System 2's majority over its maj@k samples as the reference, so that

    P( disagreement of System 1 with System 2 on the inputs System 1 answers > eval.max_disagreement ) <= delta

(delta = 0.05) with ``eval.cascade_risk=answered`` (the default), or, with ``eval.cascade_risk=all``,

    P( share of ALL inputs that System 1 answers AND answers differently from System 2 > eval.max_disagreement ) <= delta

The second bounds what a user asking "how far below System 2 can the cascade be?" needs: with System 2's
majority as the fallback the cascade's answer differs from it only on those inputs, so its accuracy is at
most ``max_disagreement`` below the majority's, whatever the coverage (``answered`` bounds the rate on the
answered inputs only, so at 90% coverage a 10% target allows a 9-point loss). Its denominator is every
calibration input, so it certifies a small target with fewer inputs. The procedure is fixed-sequence testing
over a grid of thresholds fixed in advance, from strict to loose (Learn-then-Test, Angelopoulos et al.
2021; selective classification with guaranteed risk, Geifman & El-Yaniv 2017): at each threshold the null
"the disagreement on the answered inputs (or on all of them) exceeds max_disagreement" is rejected when the
one-sided Clopper-Pearson upper bound of the observed disagreement is at most max_disagreement; the first
threshold that fails stops the sequence and the last rejected one is used. Because the thresholds are
tested in an order fixed before the data is seen, stopping at the first failure keeps the family-wise
error at delta with no correction.
Assumptions: calibration and future inputs are exchangeable (the same distribution: held-out inputs of
the same task), and the guarantee is about agreement with System 2's majority, not about accuracy:
where System 2 is wrong, a System 1 answer that agrees with it is wrong too (the spot-check settles
that; docs/cascade.md).

Signals (``SIGNALS``), each with what it costs on top of the System 1 answer:

* ``logprob``: the probability of the distilled model's answer (the product of its tokens'
  probabilities, from the engine's logprobs): free;
* ``vote``: the share of ``eval.cascade_k`` sampled direct answers of the distilled model (at
  ``eval.temperature``) that repeat its greedy answer: k more short answers per input;
* ``agreement``: 1 when the base model's System 1 answer equals the distilled model's, else 0: one
  more System 1 call per input.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .config import CASCADE_RISKS as RISKS  # eval.cascade_risk: the disagreement's denominator (module doc)

# thresholds tested from strict to loose, fixed before any data is seen
GRID: tuple[float, ...] = (1.0, 0.9999, 0.999, 0.995, 0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93, 0.92, 0.91, 0.9,
                           0.875, 0.85, 0.825, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25,
                           0.2, 0.15, 0.1, 0.05, 0.0)
SIGNALS = ("logprob", "vote", "agreement")
DELTA = 0.05


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (exact for the n of an eval set)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
             for i in range(0, k + 1)]
    m = max(terms)
    return min(1.0, math.exp(m) * sum(math.exp(t - m) for t in terms))


def cp_upper(k: int, n: int, delta: float = DELTA) -> float:
    """One-sided Clopper-Pearson upper bound: the largest p with P(X <= k | n, p) >= delta (1.0 for n = 0)."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(60):  # bisection: the cdf falls as p grows
        mid = (lo + hi) / 2
        if _binom_cdf(k, n, mid) >= delta:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True)
class Point:
    """One input as the cascade sees it: System 1's answer and confidence, System 2's, their costs."""

    example_id: str
    confidence: float | None  # None: the signal is missing for this input (it then goes to System 2)
    answer: str | None  # System 1's (normalised) answer
    reference: str | None  # System 2's majority (normalised): the label-free reference
    fallback: str | None  # the answer System 2 gives when the input is routed to it (normalised)
    s1_tokens: float
    s1_calls: float
    signal_tokens: float
    signal_calls: float
    s2_tokens: float
    s2_calls: float
    s1_correct: bool | None = None  # against gold, when there is gold (scoring only, never calibration)
    s2_correct: bool | None = None

    @property
    def agrees(self) -> bool:
        return self.answer is not None and self.answer == self.reference


@dataclass(frozen=True)
class Calibration:
    threshold: float | None  # None: no threshold passed; System 1 answers nothing
    n: int  # calibration inputs
    answered: int  # of them, answered by System 1 at the threshold
    disagreements: int
    bound: float | None  # the upper 95% bound of the disagreement (on the answered inputs, or on all with risk 'all')
    max_disagreement: float
    delta: float
    tested: tuple[tuple[float, int, int, float], ...]  # (threshold, answered, disagreements, bound) in test order
    risk: str = "answered"  # one of RISKS

    def to_json(self) -> dict:
        d = asdict(self)
        d["tested"] = [list(t) for t in self.tested]
        return d


def answered(points: Sequence[Point], threshold: float | None) -> list[Point]:
    if threshold is None:
        return []
    return [p for p in points if p.confidence is not None and p.confidence >= threshold]


def calibrate(points: Sequence[Point], max_disagreement: float, delta: float = DELTA,
              grid: Sequence[float] = GRID, risk: str = "answered") -> Calibration:
    """The loosest threshold of ``grid`` reached by fixed-sequence testing from strict to loose (module doc).
    ``risk``: ``answered`` bounds the disagreement on the answered inputs, ``all`` its share of all inputs."""
    if risk not in RISKS:
        raise ValueError(f"unknown cascade risk '{risk}'; known: {', '.join(RISKS)} (eval.cascade_risk)")
    chosen: tuple[float, int, int, float] | None = None
    tested = []
    for t in grid:
        ans = answered(points, t)
        n = len(ans) if risk == "answered" else len(points)
        if not ans or cp_upper(0, n, delta) > max_disagreement:
            # too few inputs for even 0 disagreements to pass, or none answered: untestable, skipped (which
            # thresholds are skipped depends on the confidences only, not on agreement, so the sequence stays fixed)
            continue
        k = sum(not p.agrees for p in ans)
        ub = cp_upper(k, n, delta)
        tested.append((t, len(ans), k, round(ub, 6)))
        if ub > max_disagreement:
            break  # the first failure ends the sequence: later thresholds are not tested
        chosen = (t, len(ans), k, ub)
    if chosen is None:
        return Calibration(None, len(points), 0, 0, None, max_disagreement, delta, tuple(tested), risk)
    t, n_ans, k, ub = chosen
    return Calibration(t, len(points), n_ans, k, round(ub, 6), max_disagreement, delta, tuple(tested), risk)


def route(points: Sequence[Point], threshold: float | None) -> dict:
    """The cascade at ``threshold`` on ``points``: coverage, agreement with System 2's majority, accuracy
    where gold exists, mean tokens and calls per input (System 1 for all + the signal + System 2 where routed)."""
    n = len(points)
    if not n:
        return {"n": 0, "coverage": 0.0, "answered": 0, "agreement": None, "disagreement_answered": None,
                "disagreement_all": None, "accuracy": None, "n_labeled": 0, "tokens": 0.0, "calls": 0.0}
    ans_ids = {p.example_id for p in answered(points, threshold)}
    final, tokens, calls, correct, labeled, dis = [], 0.0, 0.0, 0, 0, 0
    for p in points:
        use_s1 = p.example_id in ans_ids
        a = p.answer if use_s1 else p.fallback
        final.append(a is not None and a == p.reference)
        tokens += p.s1_tokens + p.signal_tokens + (0 if use_s1 else p.s2_tokens)
        calls += p.s1_calls + p.signal_calls + (0 if use_s1 else p.s2_calls)
        ok = p.s1_correct if use_s1 else p.s2_correct
        if ok is not None:
            labeled += 1
            correct += bool(ok)
        dis += use_s1 and not p.agrees
    return {"n": n, "coverage": len(ans_ids) / n, "answered": len(ans_ids), "agreement": sum(final) / n,
            "disagreement_answered": dis / len(ans_ids) if ans_ids else None, "disagreement_all": dis / n,
            "accuracy": correct / labeled if labeled else None, "n_labeled": labeled,
            "tokens": tokens / n, "calls": calls / n}


def split(ids: Sequence[str]) -> tuple[set[str], set[str]]:
    """Calibration and test halves of the held-out inputs, by a hash of each id (stable across runs)."""
    cal, test = set(), set()
    for i in ids:
        (cal if int(hashlib.sha256(str(i).encode()).hexdigest(), 16) % 2 == 0 else test).add(i)
    return cal, test


def curve(points: Sequence[Point], grid: Sequence[float] = GRID) -> list[dict]:
    """The cascade at every threshold of ``grid`` (for the accuracy-vs-tokens plot)."""
    return [{"threshold": t, **route(points, t)} for t in grid]


def _accuracy(correct: Sequence[bool | None]) -> float | None:
    labeled = [c for c in correct if c is not None]
    return sum(labeled) / len(labeled) if labeled else None


def min_inputs(max_disagreement: float, delta: float = DELTA) -> int:
    """The fewest answered inputs (held-out inputs with ``eval.cascade_risk=all``) for which 0 disagreements can
    pass (below it nothing can be certified)."""
    return answered_needed(0, 1, max_disagreement, delta, limit=2 ** 62)


def tolerated(n: int, max_disagreement: float, delta: float = DELTA) -> int:
    """The most disagreements among ``n`` inputs that a bound of ``max_disagreement`` lets pass (-1: not even
    none). With ``eval.cascade_risk=all`` a calibration passes no threshold past the (k+1)-th most confident
    disagreement, so at a tight target on few inputs one confident mistake decides the coverage."""
    k = -1
    while k + 1 <= n and cp_upper(k + 1, n, delta) <= max_disagreement:
        k += 1
    return k


def answered_needed(disagreements: int, answered: int, max_disagreement: float, delta: float = DELTA,
                    limit: int = 100_000) -> int | None:
    """How many answered inputs, at the observed disagreement rate, before the bound falls to ``max_disagreement``;
    None when the rate itself is at or above it (no number of inputs would do)."""
    rate = disagreements / answered if answered else 0.0
    if rate >= max_disagreement:
        return None

    def passes(m: int) -> bool:
        return cp_upper(math.ceil(rate * m - 1e-9), m, delta) <= max_disagreement

    hi = max(answered, 1)
    while not passes(hi):
        if hi >= limit:
            return None
        hi = min(2 * hi, limit)
    lo = 1
    while lo < hi:  # the bound at a fixed rate falls as m grows: bisect
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if passes(mid) else (mid + 1, hi)
    return lo


def why_none_passed(signals: dict, max_disagreement: float, delta: float = DELTA, risk: str = "answered") -> str | None:
    """Why no threshold passed on any signal, and what would change that (None when one passed)."""
    sigs = {k: v for k, v in signals.items() if "calibration" in v}
    if not sigs or any(v["calibration"]["threshold"] is not None for v in sigs.values()):
        return None
    md = max_disagreement
    tried = {k: v["calibration"]["tested"][0] for k, v in sigs.items() if v["calibration"]["tested"]}
    n = max(v["calibration"]["n"] for v in sigs.values())
    if not tried:
        if risk == "all":
            return (f"no cascade threshold can be tested: {min_inputs(md, delta)} held-out inputs are the fewest that "
                    f"certify {100 * md:.1f}% of all inputs (eval.cascade_risk=all), the run has {n}: add held-out "
                    f"inputs (task.n_eval)")
        return (f"no cascade threshold can be tested: {min_inputs(md, delta)} answered inputs with no disagreement "
                f"are the fewest that certify {100 * md:.1f}%, and no signal answers that many of the {n} held-out "
                f"inputs at any threshold: add held-out inputs (task.n_eval)")
    # the signal closest to passing: the lowest disagreement rate at its first tested threshold (then most answered)
    name, (t, ans, k, ub) = min(tried.items(), key=lambda kv: (kv[1][2] / kv[1][1], -kv[1][1]))
    denom = ans if risk == "answered" else n
    of = "" if risk == "answered" else f" of the {n} held-out inputs"
    head = (f"no cascade threshold passed: the distilled model's {ans} most confident answers ('{name}' >= {t}) "
            f"disagree with System 2's majority on {k}{of} (bound {100 * ub:.1f}% > eval.max_disagreement "
            f"{100 * md:.1f}%)")
    need = answered_needed(k, denom, md, delta)
    if need is None:
        return (f"{head}; at {100 * k / denom:.1f}% disagreement its most confident answers are above the target, so "
                f"more held-out inputs will not help: a looser eval.max_disagreement or a stronger distilled model "
                f"(more unlabeled inputs to train on) would")
    if risk == "all":
        return f"{head}; about {need} held-out inputs at that rate would pass: more held-out inputs (task.n_eval)"
    return (f"{head}; about {need} answered at that rate would pass: more held-out inputs (task.n_eval), about "
            f"{math.ceil(need * n / ans)} in all")


def evaluate(points: Sequence[Point], max_disagreement: float, delta: float = DELTA, risk: str = "answered") -> dict:
    """The cascade calibrated on all ``points`` (what a run ships), and the same procedure checked out of sample:
    calibrated on one half (by a hash of the id), its realised disagreement measured on the other."""
    c = calibrate(points, max_disagreement, delta, risk=risk)
    full = route(points, c.threshold)
    cal_ids, test_ids = split([p.example_id for p in points])
    cal = [p for p in points if p.example_id in cal_ids]
    test = [p for p in points if p.example_id in test_ids]
    sc = calibrate(cal, max_disagreement, delta, risk=risk)
    t = route(test, sc.threshold)
    realised = t["disagreement_answered" if risk == "answered" else "disagreement_all"]
    s2_tokens = sum(p.s2_tokens for p in points) / len(points) if points else 0.0
    return {"calibration": c.to_json(), "cascade": full, "system2_tokens": s2_tokens,
            "token_ratio": (full["tokens"] / s2_tokens) if s2_tokens else None,
            "min_calibration_inputs": min_inputs(max_disagreement, delta),
            "split": {"calibration": sc.to_json(), "test": t,
                      "realised_disagreement": realised,  # what the bound is on (risk), on the test half
                      "guarantee_held": realised is None or realised <= max_disagreement,
                      "system2_tokens": (sum(p.s2_tokens for p in test) / len(test)) if test else 0.0,
                      "system2_accuracy": route(test, None)["accuracy"],
                      "distilled_accuracy": _accuracy([p.s1_correct for p in test])},
            "curve": curve(points)}


# -- from a run's eval files --------------------------------------------------------------------------

def points(eval_dir, task, signal: str, fallback: str = "maj") -> list[Point]:
    """The cascade's view of a run's eval files: the distilled model answers (``eval/distilled.jsonl``),
    System 2's majority over maj@k is the reference, ``fallback`` (maj: maj@k; greedy: System 2 greedy)
    answers what is routed. Empty when a needed file is missing or the signal is not recorded."""
    from pathlib import Path

    from .evaluate import vote_share
    from .label_free import _read, normalizer
    from .systems import DISTILLED, MAJ, S1, S2
    from .voting import plurality_answer

    d = Path(eval_dir)
    dist, maj = _read(d / f"{DISTILLED}.jsonl"), _read(d / f"{MAJ}.jsonl")
    fb = maj if fallback == "maj" else _read(d / f"{S2}.jsonl")
    base = _read(d / {"agreement": f"{S1}.jsonl", "vote": f"{DISTILLED}.votes.jsonl"}[signal]) \
        if signal in ("agreement", "vote") else []
    if not dist or not maj or not fb or (signal in ("agreement", "vote") and not base):
        return []
    norm = normalizer(task)
    maj_by, fb_by, base_by = ({r.example_id: r for r in rs} for rs in (maj, fb, base))
    out = []
    for r in dist:
        m, f = maj_by.get(r.example_id), fb_by.get(r.example_id)
        if m is None or f is None or "answers" not in m.meta:
            continue
        ans = norm(r.prediction)
        if signal == "logprob":
            conf, s_tok, s_calls = r.meta.get("confidence"), 0.0, 0.0
        elif signal == "agreement":
            b = base_by.get(r.example_id)
            if b is None:
                continue
            conf = 1.0 if ans is not None and norm(b.prediction) == ans else 0.0
            s_tok, s_calls = float(b.generated_tokens), float(b.calls)
        elif signal == "vote":
            b = base_by.get(r.example_id)
            if b is None:
                continue
            conf = vote_share(r.prediction, b.meta.get("answers", []), norm)
            s_tok, s_calls = float(b.generated_tokens), float(b.calls)
        else:
            raise ValueError(f"unknown cascade signal '{signal}'; known: {', '.join(SIGNALS)}")
        out.append(Point(r.example_id, None if conf is None else float(conf), ans,
                         plurality_answer([norm(a) for a in m.meta["answers"]]), norm(f.prediction),
                         float(r.generated_tokens), float(r.calls), s_tok, s_calls, float(f.generated_tokens),
                         float(f.calls), r.correct, f.correct))
    return out


def cascade_part(eval_dir, task, max_disagreement: float, fallback: str = "maj", delta: float = DELTA,
                 risk: str = "answered") -> dict | None:
    """``report.json``'s ``cascade``: per signal, calibrated on one half of the held-out inputs and reported on
    the other (:func:`evaluate`); ``best``: the signal whose cascade (calibrated on all the held-out inputs)
    answers something for the fewest tokens. None when the run has no distilled model or no maj@k records."""
    signals = {}
    for s in SIGNALS:
        pts = points(eval_dir, task, s, fallback)
        if not pts:
            continue
        if s == "logprob" and all(p.confidence is None for p in pts):
            signals[s] = {"unavailable": "the engine returned no logprobs for the distilled model's answers"}
            continue
        signals[s] = {**evaluate(pts, max_disagreement, delta, risk), "n": len(pts)}
    if not signals:
        return None
    usable = {k: v for k, v in signals.items() if "cascade" in v and v["cascade"]["coverage"] > 0}
    best = min(usable, key=lambda k: usable[k]["token_ratio"] or 1.0) if usable else None
    out = {"fallback": fallback, "max_disagreement": max_disagreement, "delta": delta, "risk": risk,
           "signals": signals, "best": best, "why_none": why_none_passed(signals, max_disagreement, delta, risk)}
    if risk == "all":  # how many disagreements the bound lets pass on all the held-out inputs and on a half
        n = max((v["n"] for v in signals.values() if "n" in v), default=0)
        half = next((v["split"]["calibration"]["n"] for v in signals.values() if "split" in v), 0)
        out["tolerance"] = {"n": n, "disagreements": tolerated(n, max_disagreement, delta),
                            "half_n": half, "half_disagreements": tolerated(half, max_disagreement, delta)}
    return out


def table(cascade: dict | None):
    """The cascade rows (one per signal) as a :class:`~s2distill.tables.Table`, or None."""
    from .tables import Table

    if not cascade:
        return None

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    rows = []
    for name, s in cascade["signals"].items():
        if "cascade" not in s:
            rows.append([name, s.get("unavailable", "-")] + ["-"] * 9)
            continue
        c, r, sp = s["calibration"], s["cascade"], s["split"]
        every = cascade.get("risk") == "all"
        thr = (f"none passed (needs {s['min_calibration_inputs']} {'held-out' if every else 'answered'} inputs)"
               if c["threshold"] is None else f"{c['threshold']:g}")
        of = f"all {sp['test']['n']}" if every else str(sp["test"]["answered"])
        rows.append([name + (" (chosen)" if name == cascade.get("best") else ""), thr, str(c["n"]),
                     pct(r["coverage"]), pct(r["agreement"]), pct(r["accuracy"]), f"{r['tokens']:.1f}",
                     f"{s['system2_tokens']:.1f}", pct(s["token_ratio"]), pct(c["bound"]),
                     f"{pct(sp['realised_disagreement'])} of {of} ({'held' if sp['guarantee_held'] else 'NOT held'})"])
    return Table(["signal", "threshold", "n", "coverage %", "agreement with System 2 %", "accuracy % (gold)",
                  "tokens per input", "System 2 tokens per input", "token ratio %", "disagreement bound %",
                  "half-split check: disagreement % on test half"], rows, align="lllrrrrrrrl")


def markdown(cascade: dict | None) -> list[str]:
    t = table(cascade)
    if t is None:
        return []
    fb = "its maj@k majority" if cascade["fallback"] == "maj" else "System 2 greedy"
    where = ("its share of all inputs (answered by the distilled model and unlike System 2)"
             if cascade.get("risk") == "all" else "disagreement with System 2 on the answered inputs")
    return ["", f"Cascade (the distilled model answers where its confidence reaches the threshold, {fb} answers the "
                f"rest; threshold calibrated without labels on the evaluated inputs so that {where} stays at most "
                f"{100 * cascade['max_disagreement']:.1f}% with 95% confidence; the last column calibrates on half of "
                f"them and measures the other half; tokens per input include the signal's and System 2's):", "",
            t.markdown(), *_tolerance_line(cascade)]


def _tolerance_line(cascade: dict) -> list[str]:
    tol = cascade.get("tolerance")
    if not tol:
        return []

    def k(x: int) -> str:
        return "none can pass" if x < 0 else f"at most {x} disagreement{'s' if x != 1 else ''} can pass"

    return ["", f"At {100 * cascade['max_disagreement']:.1f}% of all inputs, {k(tol['disagreements'])} among the "
                f"{tol['n']} held-out inputs ({k(tol['half_disagreements'])} among the {tol['half_n']} of the "
                "half-split check): the threshold stops above the next most confident answer unlike System 2's "
                "majority, so with few held-out inputs one confident mistake decides the coverage (more held-out "
                "inputs, task.n_eval, let more pass)."]
