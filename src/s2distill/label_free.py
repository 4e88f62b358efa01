"""Label-free evaluation and the "ship distilled or keep System 2" verdict.

Works from a run directory's eval files only (``eval/<system>.jsonl``), with or without gold:

- the System 2 majority per eval input comes from the k samples maj@k already drew
  (the maj@k system's ``eval/<name>.jsonl`` records hold them in ``meta.answers``; no extra generation);
- System 1, System 2 greedy and the distilled model: agreement with that majority (Wilson 95%
  interval), agreement where System 2 is confident (vote share >= ``confident_share``), and the
  share of System 2 samples that back the model's answer (a plug-in accuracy estimate: it treats
  System 2's samples as noisy labels);
- System 2 itself: the mean vote share of its majority answer.

Answers are compared after the task's ``normalize`` (the same answers the vote counts, so
"12" and "12.0" are one answer for a numeric task). An input whose System 2 samples all failed
to parse has no majority; it counts as a disagreement (conservative), and a model answer that
did not parse never agrees.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .evaluate import ci95, wilson_ci
from .rundir import read_jsonl
from .systems import DEFAULT, MAJ, SYSTEMS, add_fix, get
from .types import EvalRecord
from .voting import plurality_share

COMPARED = tuple(s for s in DEFAULT if not get(s).votes)  # System 1, System 2 greedy, distilled


def normalizer(task):
    """The task's answer normalisation (None for an empty/unparseable answer)."""
    norm = task.normalize

    def f(answer):
        if answer is None:
            return None
        a = norm(answer)
        return a if a not in ("", None) else None

    return f


def _read(path: Path) -> list[EvalRecord]:
    return [EvalRecord.from_json(d) for d in read_jsonl(path)] if path.is_file() else []


def compare(records: Sequence[EvalRecord], votes: dict[str, list[str | None]], norm,
            confident_share: float) -> dict:
    """One system's answers against System 2's samples (``votes``: example id -> normalised answers)."""
    agree = n = n_conf = agree_conf = 0
    support = 0.0
    for r in records:
        answers = votes.get(r.example_id)
        if answers is None:  # an input maj@k did not evaluate
            continue
        winner, share = plurality_share(answers)
        pred = norm(r.prediction)
        ok = pred is not None and pred == winner
        n += 1
        agree += ok
        support += (sum(a == pred for a in answers) / len(answers)) if (pred is not None and answers) else 0.0
        if share >= confident_share:
            n_conf += 1
            agree_conf += ok
    return {"agreement": agree / n if n else 0.0, "agreement_ci95": ci95(agree, n), "n": n, "agreeing": agree,
            "confident_agreement": agree_conf / n_conf if n_conf else None, "n_confident": n_conf,
            "support_share": support / n if n else 0.0}


def label_free(eval_dir: str | Path, task, confident_share: float = 0.75,
               systems: Sequence[str] = SYSTEMS) -> dict | None:
    """``{system_role: metrics}`` from ``eval_dir``; None when there are no maj@k records to vote with."""
    eval_dir = Path(eval_dir)
    if MAJ not in systems:
        return None
    maj = _read(eval_dir / f"{MAJ}.jsonl")
    if not maj or "answers" not in maj[0].meta:
        return None
    norm = normalizer(task)
    votes = {r.example_id: [norm(a) for a in r.meta["answers"]] for r in maj}
    shares = [plurality_share(v)[1] for v in votes.values()]
    out: dict = {MAJ: {"mean_vote_share": sum(shares) / len(shares), "n": len(shares),
                                 "n_confident": sum(s >= confident_share for s in shares),
                                 "confident_share": confident_share,
                                 "k": max(len(v) for v in votes.values())}}
    for system in (s for s in COMPARED if s in systems):
        records = _read(eval_dir / f"{system}.jsonl")
        if records:
            out[system] = compare(records, votes, norm, confident_share)
    return out


def verdict(rows: Sequence[dict], lf: dict | None, confident_share: float = 0.75,
            max_disagreement: float = 0.10, training_inputs: int = 0, cascade: dict | None = None) -> dict:
    """Ship the distilled model, ship the cascade, keep System 2, or no label-free answer.

    ``decision``: ``ship`` (the distilled model alone), ``cascade`` (the distilled model where its
    calibrated confidence is high, System 2 elsewhere: ``cascade`` is report.json's cascade part),
    ``keep`` (System 2), ``no_answer`` (System 2 itself is inconsistent, so agreement with its majority
    proves nothing either way: the verdict then recommends nothing and says what would settle it).

    Keep when the disagreement with System 2's majority may exceed ``max_disagreement`` (1 - the lower end of
    the agreement's 95% interval), when System 2 is unreliable (mean vote share below ``confident_share``), or
    when the distilled model saves no tokens; a keep says why the cascade saves nothing. ``decision`` is None
    when no verdict is possible (``fix`` says what to run). ``training_inputs``: inputs the run trained on."""
    by_role = {r["role"]: r for r in rows}
    if (missing := _no_verdict(by_role, lf)) is not None:
        return missing
    d = lf["distilled"]
    ref_role = "system2" if "system2" in by_role else MAJ
    # per System 2 answer (maj@k: one of its k samples)
    s2_tokens = by_role[ref_role]["mean_generated_tokens"] / ((lf[MAJ].get("k") or 1) if ref_role == MAJ else 1)
    dist_tokens = by_role["distilled"]["mean_generated_tokens"]
    saving = 1 - dist_tokens / s2_tokens if s2_tokens else 0.0
    lo, hi = d["agreement_ci95"]
    mvs = lf[MAJ]["mean_vote_share"]
    fail, ok = [], []
    dis_hi = 1 - lo
    needed = inputs_needed(d["agreement"], max_disagreement) if dis_hi > max_disagreement else None
    inputs = (f"inputs ({training_inputs} of them training inputs, not held out)" if training_inputs
              else "held-out inputs")
    too_few = (f"; {d['n']} {inputs} are too few to tell: at {_p(d['agreement'])}% agreement about "
               f"{needed} would (s2distill eval RUN_DIR --data MORE_INPUTS)") if needed and needed > d["n"] else ""
    (fail if dis_hi > max_disagreement else ok).append(
        f"disagreement with System 2's majority is at most {_p(dis_hi)}% (95% upper bound) "
        f"{'>' if dis_hi > max_disagreement else '<='} eval.max_disagreement {_p(max_disagreement)}%{too_few}")
    (fail if mvs < confident_share else ok).append(
        f"System 2 {'is unreliable' if mvs < confident_share else 'is consistent'}: mean vote share "
        f"{_p(mvs)}% {'<' if mvs < confident_share else '>='} eval.confident_share {_p(confident_share)}%")
    (fail if saving <= 0 else ok).append(
        f"{'no' if saving <= 0 else _p(saving) + '%'} token saving: {dist_tokens:.1f} vs {s2_tokens:.1f} "
        f"generated tokens per answer")
    decision = "keep" if fail else "ship"
    summary = (f"agrees with System 2's majority on {_p(d['agreement'])}% (95% CI {_p(lo)}-{_p(hi)}) of {d['n']} "
               f"{inputs} at {dist_tokens:.1f} vs {s2_tokens:.1f} tokens")
    line = f"ship distilled: {summary}" if decision == "ship" else f"keep System 2: {'; '.join(fail)} ({summary})"
    shipped: dict = {}
    if decision == "keep" and mvs < confident_share:
        decision = "no_answer"
        line = (f"no label-free answer: System 2 is inconsistent (mean vote share {_p(mvs)}% < eval.confident_share "
                f"{_p(confident_share)}%), so agreement with its majority cannot tell right from wrong; label about 20 "
                f"inputs (s2distill spotcheck RUN_DIR -n 20, then s2distill spotcheck RUN_DIR --labels THAT_FILE: the "
                f"labels then settle the verdict) ({summary})")
    elif decision == "keep" and (routed := _cascade_shipped(cascade, s2_tokens, fail, inputs)) is not None:
        decision, (shipped, line) = "cascade", routed
    elif decision == "keep" and (why := _cascade_saves_nothing(cascade, s2_tokens)):
        fail = [*fail, why]
        line = f"keep System 2: {'; '.join(fail)} ({summary})"
    return {"decision": decision, "reasons": fail if fail else ok, "line": line, "token_saving": round(saving, 4),
            "distilled_tokens": dist_tokens, "system2_tokens": s2_tokens, "system2_reference": ref_role,
            "max_disagreement": max_disagreement, "confident_share": confident_share,
            "inputs_needed": needed if too_few else None, **shipped}


def _no_verdict(by_role: dict, lf: dict | None) -> dict | None:
    """The verdict when one is impossible (no maj@k, no distilled model): what to run; else None."""
    none = {"decision": None, "token_saving": None}
    if not lf:
        return {**none, "reasons": ["no System 2 maj@k evaluation to compare with"],
                "line": "no verdict: System 2 maj@k was not evaluated", "fix": add_fix(MAJ)}
    if not lf.get("distilled") or "distilled" not in by_role:
        return {**none, "reasons": ["no distilled model was evaluated"],
                "line": "no verdict: no distilled model was evaluated (training disabled or 'distilled' not in "
                        "eval.systems)",
                "fix": "train and evaluate it: train.enabled=true with distilled in eval.systems, then rerun"}
    return None


def _cascade_shipped(cascade: dict | None, s2_tokens: float, fail: list[str], inputs: str) -> tuple[dict, str] | None:
    """(the verdict's cascade part, its line) when the calibrated cascade saves tokens, else None."""
    if not cascade or not cascade.get("best"):
        return None
    sig = cascade["signals"][cascade["best"]]
    cal, test = sig["calibration"], sig["cascade"]
    # a saving against its own fallback and against the System 2 that "keep" would deploy (per answer)
    if sig.get("token_ratio") is None or sig["token_ratio"] >= 1 or test["tokens"] >= s2_tokens:
        return None
    risk = cascade.get("risk", "answered")
    shipped = {"cascade": {"signal": cascade["best"], "threshold": cal["threshold"], "coverage": test["coverage"],
                           "bound": cal["bound"], "disagreement_answered": test["disagreement_answered"],
                           "disagreement_all": test.get("disagreement_all"), "risk": risk,
                           "token_ratio": sig["token_ratio"], "fallback": cascade["fallback"]}}
    fallback = "maj@k" if cascade["fallback"] == "maj" else "greedy"
    if risk == "all":  # the bound is on the share of all inputs where the cascade's answer is not System 2's
        bound = (f"it answers differently from System 2's majority on at most {_p(cal['bound'])}% of all inputs "
                 f"(95% bound; {_p(test.get('disagreement_all') or 0)}% observed on {cal['n']} {inputs}, "
                 f"eval.cascade_risk=all), so its accuracy is at most {_p(cal['bound'])} points below the majority's")
    else:
        bound = (f"its disagreement with System 2 on the inputs it answers is at most {_p(cal['bound'])}% "
                 f"(95% bound; {_p(test['disagreement_answered'] or 0)}% observed on {cal['answered']} of "
                 f"{cal['n']} {inputs})")
    line = (f"ship cascade: the distilled model answers {_p(test['coverage'])}% of inputs (confidence "
            f"'{cascade['best']}' >= {cal['threshold']}), System 2 ({fallback}) the rest; {bound}; "
            f"{_p(sig['token_ratio'])}% of System 2's tokens (the distilled model alone: {'; '.join(fail)})")
    return shipped, line


def _cascade_saves_nothing(cascade: dict | None, s2_tokens: float | None = None) -> str | None:
    """The keep verdict's cascade reason: why the calibrated cascade saves nothing (given it does not ship). A
    cascade cheaper than its own maj@k fallback can still cost more per input than greedy System 2, which is
    what keep deploys: the line then says so and names the cheaper fallback."""
    if not cascade:
        return None
    if not (best := cascade.get("best")):
        return cascade.get("why_none")
    b = cascade["signals"][best]
    head = (f"the cascade saves no tokens: with confidence '{best}' >= {b['calibration']['threshold']} the distilled "
            f"model answers {_p(b['cascade']['coverage'])}% of inputs")
    tokens, ratio = b["cascade"].get("tokens"), b.get("token_ratio") or 0
    if cascade.get("fallback") == "maj" and ratio < 1 and tokens is not None and s2_tokens and tokens >= s2_tokens:
        return (f"{head} for {tokens:.1f} generated tokens per input: {_p(ratio)}% of its maj@k fallback's, but "
                f"more than System 2 greedy's {s2_tokens:.1f}, which keep deploys (eval.cascade_fallback=greedy routes "
                "to greedy System 2 instead)")
    return f"{head}, and asking it first costs {_p(ratio)}% of System 2's tokens"


def inputs_needed(agreement: float, max_disagreement: float, limit: int = 100_000) -> int | None:
    """How many held-out inputs it takes, at this agreement rate, before the 95% upper bound of the
    disagreement falls to ``max_disagreement``; None when the rate itself is too low (no n would do)."""
    if 1 - agreement >= max_disagreement:
        return None
    lo, hi = 1, limit  # the Wilson lower bound at a fixed rate grows with n: bisect
    if 1 - wilson_ci(round(agreement * hi), hi)[0] > max_disagreement:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if 1 - wilson_ci(round(agreement * mid), mid)[0] <= max_disagreement:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _p(x: float) -> str:
    return f"{100 * x:.1f}"


def markdown(lf: dict | None, verdict_: dict | None, rows: Sequence[dict]) -> list[str]:
    """The label-free table (next to accuracy where gold exists) and the verdict line, for report.md."""
    lines: list[str] = []
    by_role = {r["role"]: r for r in rows}
    if lf:
        m = lf[MAJ]
        lines += ["", f"Label-free (against System 2's majority over its maj@k samples; System 2 is confident on "
                      f"{m['n_confident']}/{m['n']} inputs, mean vote share {_p(m['mean_vote_share'])}%):", "",
                  "| system | agreement % | 95% CI | n | agreement % where System 2 is confident (n) | "
                  "support share % (accuracy estimate) | accuracy % (gold) |", "|---|---:|---|---:|---:|---:|---:|"]
        for role in COMPARED:
            if role in lf:
                r = lf[role]
                conf = "-" if r["confident_agreement"] is None else _p(r["confident_agreement"])
                row = by_role.get(role, {})
                acc = "-" if row.get("accuracy") is None else _p(row["accuracy"])
                lines.append(f"| {row.get('system', role)} | {_p(r['agreement'])} | {_p(r['agreement_ci95'][0])}-"
                             f"{_p(r['agreement_ci95'][1])} | {r['n']} | {conf} ({r['n_confident']}) | "
                             f"{_p(r['support_share'])} | {acc} |")
    if verdict_:
        lines += ["", f"**Verdict: {verdict_['line']}**"]
        if verdict_.get("fix"):
            lines.append(f"Fix: {verdict_['fix']}")
    return lines
