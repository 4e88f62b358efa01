"""A small labeled spot-check that settles what label-free numbers cannot.

``s2distill spotcheck RUN -n 20`` draws about 20 of the run's held-out inputs for a person to label,
favouring the informative ones (System 1, the distilled model or System 2 greedy disagree with System 2's
majority; System 2's votes split), each with a known inclusion probability pi_i (Poisson sampling; 30% of
the labels spread evenly, the rest proportional to an informativeness score, summing to n, at most 1:
:func:`design_probabilities`; every input's in ``RUN/spotcheck/design.json``). It
writes them to ``RUN/spotcheck/to_label.jsonl`` with an empty ``gold``. Once labeled, ``s2distill
spotcheck RUN --labels FILE`` (or ``s2distill eval RUN --data FILE``) keeps the labels in the run and
scores every system, and the shipped cascade, without running a model: the label-free guess f_i (agrees
with System 2's majority) on all N inputs plus a correction of y_i - f_i estimated from the labels,
stratified by pi_i (:func:`estimate`). This is prediction-powered inference with an active choice of what
to label (Angelopoulos et al. 2023; Zrnic & Candès 2024): unbiased for the accuracy whatever the quality
of the label-free guess, and tight where the guess errs in one place. The same estimator on paired
differences to System 2 gives the verdict the labels settle (:func:`settle`), which the report and
``s2distill verdict`` then use. Where System 2 is consistent but wrong, f_i is wrong in the same way
everywhere and the labels correct it; where System 2 is inconsistent, the labels carry it.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

from .errors import DataError
from .systems import DEFAULT, MAJ, add_fix, reference

SYSTEMS = DEFAULT  # and "cascade", where the run ships one
PI_FIELD = "s2distill_pi"
# share of the labels spread evenly over all held-out inputs (defensive sampling): inputs where every system
# agrees with System 2 are drawn too, so a System 2 that is consistently wrong there is seen by the labels
UNIFORM_SHARE = 0.3
KEEP_Z_TWO = 2.2414  # the normal quantile 0.9875: each of two lower bounds at 98.75%, together 97.5% as one alone


def _records(run: Path, system: str) -> dict:
    from .label_free import _read

    return {r.example_id: r for r in _read(run / "eval" / f"{system}.jsonl")}


def _context(run: Path):
    from .checks import load_checked
    from .label_free import normalizer
    from .rundir import read_jsonl
    from .tasks import make_task
    from .voting import plurality_share

    cfg = load_checked(run / "config.yaml")
    task = make_task(cfg.task)
    norm = normalizer(task)
    maj = _records(run, MAJ)
    if not maj:
        raise DataError(f"{run} has no System 2 maj@k evaluation (eval/{MAJ}.jsonl); fix: {add_fix(MAJ)}")
    votes = {i: plurality_share([norm(a) for a in r.meta.get("answers", [])]) for i, r in maj.items()}
    questions = {str(d["id"]): d["question"] for d in read_jsonl(run / "data" / "eval.jsonl")}
    return task, norm, votes, questions


def draw(run_dir: str | Path, n: int = 20, seed: int = 0, out: str | Path | None = None) -> tuple[Path, int]:
    """Write about ``n`` informative held-out inputs to label; returns (file, rows written)."""
    run = Path(run_dir)
    if n < 1:
        raise DataError("spotcheck -n must be at least 1")
    task, norm, votes, questions = _context(run)
    recs = {s: _records(run, s) for s in SYSTEMS}
    ids = sorted(votes)
    score, why = {}, {}
    for i in ids:
        winner, share = votes[i]
        reasons = [f"{s} disagrees with System 2's majority" for s in ("distilled", "system1", "system2")
                   if i in recs[s] and norm(recs[s][i].prediction) != winner]
        if share < 1:
            reasons.append(f"System 2's votes split ({100 * share:.0f}% for its majority)")
        score[i] = 0.1 + len([r for r in reasons if "disagrees" in r]) + (1 - share)
        why[i] = reasons
    pi = design_probabilities(score, n)
    rng = random.Random(seed)
    chosen = [i for i in ids if rng.random() < pi[i]]
    path = Path(out) if out else run / "spotcheck" / "to_label.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    from .rundir import write_json

    # every held-out input's inclusion probability: the estimator stratifies by it (labeled or not)
    write_json(run / "spotcheck" / "design.json", {"n": n, "seed": seed, "pi": {i: round(pi[i], 6) for i in ids}})
    with open(path, "w") as fh:
        for i in chosen:
            fh.write(json.dumps({"id": i, "question": questions.get(i, ""), "gold": None, PI_FIELD: round(pi[i], 6),
                                 "why": why[i]}, ensure_ascii=False) + "\n")
    return path, len(chosen)


def inclusion(score: dict[str, float], n: int) -> dict[str, float]:
    """Inclusion probabilities proportional to ``score`` (positive) summing to ``n`` (every input when there are
    no more than ``n``): those that would reach 1 are set to 1 and the rest rescaled, until none does."""
    fixed: set[str] = set()
    while True:
        free = {i: x for i, x in score.items() if i not in fixed}
        total = sum(free.values())
        pi = {i: (n - len(fixed)) * x / total for i, x in free.items()} if total > 0 else {}
        over = {i for i, p in pi.items() if p >= 1}
        if not over:
            return {**{i: 1.0 for i in fixed}, **pi}
        fixed |= over


def design_probabilities(score: dict[str, float], n: int, uniform: float = UNIFORM_SHARE) -> dict[str, float]:
    """Inclusion probabilities of a spot-check of about ``n`` labels: a share ``uniform`` spread evenly, the rest
    proportional to ``score`` (:func:`inclusion` of the mixture)."""
    total, size = sum(score.values()), len(score)
    return inclusion({i: (1 - uniform) * x / total + uniform / size for i, x in score.items()}, n) if total > 0 \
        else inclusion({i: 1.0 for i in score}, n)


def is_spotcheck_file(path: str | Path) -> bool:
    try:
        with open(path) as fh:
            first = fh.readline()
        return PI_FIELD in json.loads(first)
    except (OSError, json.JSONDecodeError, TypeError):
        return False


def estimate(f: dict[str, float], labels: dict[str, tuple[float, float]], bounds: tuple[float, float] = (0.0, 1.0),
             design: dict[str, float] | None = None) -> dict:
    """``f``: the label-free guess of every input; ``labels``: id -> (y, pi) of the labeled ones; ``design``:
    every input's inclusion probability (``spotcheck/design.json``). The label-free guesses plus a correction
    estimated from the labels, with a normal 95% interval clipped to ``bounds`` (a difference of two accuracies,
    f and y in {-1, 0, 1}, lies in [-1, 1]). With ``design``: stratified by inclusion probability
    (:func:`_stratified`); without: the mean of the terms f_i + xi_i (y_i - f_i) / pi_i."""
    n = len(f)
    if design and sum(i in labels for i in f) >= 2:
        mean, var = _stratified(f, labels, design, bounds[1] - bounds[0])
    else:
        terms = [fi + ((labels[i][0] - fi) / labels[i][1] if i in labels else 0.0) for i, fi in f.items()]
        mean = sum(terms) / n if n else 0.0
        var = (sum((t - mean) ** 2 for t in terms) / (n - 1) / n) if n > 1 else 0.0
    half = 1.96 * math.sqrt(var) if n else 0.0
    mean = min(bounds[1], max(bounds[0], mean))
    lab = [labels[i][0] for i in f if i in labels]
    return {"estimate": mean, "ci95": [max(bounds[0], mean - half), min(bounds[1], mean + half)],
            "n_labeled": len(lab), "n": n, "labels_only": sum(lab) / len(lab) if lab else None,
            "label_free": sum(f.values()) / n if n else None}


def _stratified(f: dict[str, float], labels: dict[str, tuple[float, float]], design: dict[str, float],
                width: float) -> tuple[float, float]:
    """(estimate, variance). Labeled inputs drawn with certainty (pi = 1; in a paired difference also the inputs
    where both systems answer alike) are a census: their correction is known and adds no variance. The others
    are grouped by inclusion probability (groups with fewer than 2 labels merged into the next, from the most
    to the least likely drawn; never into the census); in each group of N_h inputs the labeled ones give the
    mean correction m_h of y - f (weighted by 1/pi), so the estimate is (sum f + census corrections + sum_h N_h
    m_h) / N. Given how many of a group were drawn, they are a simple random sample of it, so each m_h is
    unbiased. Variance: sum_h N_h^2 (1 - n_h/N_h) s_h^2 / n_h / N^2, with s_h^2 at least that of a correction of
    size ``width`` occurring at rate q (q: the Wilson upper bound, one standard error, of the share of the
    group's labels with a correction, at most 1/2), so a few identical labels never give a zero-width interval
    and a rare correction the labels barely saw is not taken as absent; a group with no label at all gets the
    widest spread (width^2 / 4, as one label)."""
    n = len(f)
    census = {i for i in f if i in labels and labels[i][1] >= 1.0}
    groups: dict[float, list[str]] = {}
    for i in f:
        if i not in census:
            groups.setdefault(round(design.get(i, labels[i][1] if i in labels else 0.0), 6), []).append(i)
    strata, cur = [], []
    for p in sorted(groups, reverse=True):
        cur += groups[p]
        if sum(i in labels for i in cur) >= 2:
            strata.append(cur)
            cur = []
    if cur:  # the least likely drawn, with fewer than 2 labels: into the group before, or alone
        strata = [*strata[:-1], strata[-1] + cur] if strata else [cur]
    total, var = sum(f.values()) + sum(labels[i][0] - f[i] for i in census), 0.0
    for h in strata:
        lab = [i for i in h if i in labels]
        k = len(lab)
        if not k:
            var += len(h) ** 2 * width ** 2 / 4
            continue
        w = [1 / labels[i][1] for i in lab]
        r = [labels[i][0] - f[i] for i in lab]
        m = sum(wi * ri for wi, ri in zip(w, r)) / sum(w)
        s2 = sum(wi * (ri - m) ** 2 for wi, ri in zip(w, r)) / sum(w) * k / (k - 1) if k > 1 else 0.0
        q = min(0.5, _wilson_upper(sum(1 for x in r if x), k))
        s2 = max(s2, width ** 2 * q * (1 - q))
        total += len(h) * m
        var += len(h) ** 2 * max(0.0, 1 - k / len(h)) * s2 / k
    return total / n, var / n ** 2


def _wilson_upper(x: int, k: int, z: float = 1.0) -> float:
    p = x / k
    return (p + z * z / (2 * k) + z * math.sqrt(p * (1 - p) / k + z * z / (4 * k * k))) / (1 + z * z / k)


def read_labels(path: str | Path) -> list[tuple[str, str, float]]:
    """(id, gold, pi) of every row of a labeled spot-check file; a row without its label names the fix."""
    rows = []
    for k, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        d = json.loads(line)
        if d.get("gold") in (None, ""):
            raise DataError(f"{path}, line {k}: no 'gold' yet; fix: write each input's right answer into its "
                            "'gold' field (or delete the row: the estimate stays unbiased only if you label every "
                            "row that was drawn)")
        if PI_FIELD not in d or not 0 < float(d[PI_FIELD]) <= 1:
            raise DataError(f"{path}, line {k}: no valid '{PI_FIELD}'; fix: label the file written by "
                            "`s2distill spotcheck RUN -n N`, keeping its fields")
        rows.append((str(d["id"]), str(d["gold"]), float(d[PI_FIELD])))
    return rows


def _predictions(run: Path, task, cascade: dict | None) -> dict[str, dict]:
    """Each evaluated system's answer per held-out input, and the shipped cascade's (the distilled model's
    answer where its calibrated confidence reaches the threshold, the fallback's elsewhere)."""
    out = {s: {i: r.prediction for i, r in _records(run, s).items()} for s in SYSTEMS}
    out = {s: p for s, p in out.items() if p}
    best = (cascade or {}).get("best")
    if best and "distilled" in out:
        from .cascade import answered, points

        thr = cascade["signals"][best]["calibration"]["threshold"]
        fb = out.get(reference(cascade["fallback"]), {})
        ans = {p.example_id for p in answered(points(run / "eval", task, best, cascade["fallback"]), thr)}
        out["cascade"] = {i: (a if i in ans else fb.get(i)) for i, a in out["distilled"].items() if i in ans or i in fb}
    return out


def tokens_of(rows: list[dict], cascade: dict | None) -> dict[str, float]:
    """Generated tokens per answer of each evaluated system (report rows) and of the shipped cascade."""
    tokens = {r["role"]: r["mean_generated_tokens"] for r in rows}
    if cascade and cascade.get("best"):
        tokens["cascade"] = cascade["signals"][cascade["best"]]["cascade"]["tokens"]
    return tokens


def score(run_dir: str | Path, labels: str | Path, task=None, cascade: dict | None = None,
          max_disagreement: float = 0.10, tokens: dict[str, float] | None = None) -> dict:
    """Accuracy of every evaluated system (and of the run's cascade, given report.json's ``cascade``) from the
    labeled spot-check file and the label-free guesses, the paired differences to System 2, and the verdict
    the labels give (:func:`settle`; ``tokens``: generated tokens per answer of each system)."""
    run = Path(run_dir)
    t2, norm, votes, _ = _context(run)
    task = task or t2
    rows = read_labels(labels)
    preds = _predictions(run, task, cascade)
    guess, label = {}, {}
    for s, pred in preds.items():
        guess[s] = {i: float(norm(pred[i]) is not None and norm(pred[i]) == votes[i][0]) for i in votes if i in pred}
        label[s] = {i: (float(bool(task.score(pred[i], gold))), p) for i, gold, p in rows if i in guess[s]}
    dfile = run / "spotcheck" / "design.json"
    design = None
    if dfile.is_file():
        design = json.loads(dfile.read_text())["pi"]
        if any(design.get(i) is None or abs(design[i] - p) > 1e-6 for i, _, p in rows):
            design = None  # labels from another draw: the unstratified estimator needs only their own pi
    out = {s: estimate(guess[s], label[s], design=design) for s in preds}
    res = {"labels": str(labels), "n_labeled": len(rows), "systems": out, "stratified": design is not None,
           "differences": _differences(guess, label, {s: {i: norm(p[i]) for i in p} for s, p in preds.items()},
                                       design)}
    res["verdict"] = settle(res, max_disagreement, tokens or {}, cascade)
    return res


def _differences(guess: dict, label: dict, answers: dict, design: dict | None = None) -> dict:
    """accuracy(System 2) - accuracy(candidate), paired over the same inputs, for each System 2 reference and
    each cheaper candidate: the same estimator on f_a - f_b and y_a - y_b. Where the two give the same answer
    (``answers``: normalised, per system) both are right or both wrong, so the difference there is known
    without a label: those inputs count as labeled with certainty (pi = 1, correction 0), and only the inputs
    where they differ carry uncertainty."""
    out = {}
    for ref in ("system2", MAJ):
        for cand in ("distilled", "cascade", "system1"):
            if ref not in guess or cand not in guess:
                continue
            ids = [i for i in guess[ref] if i in guess[cand]]
            same = {i for i in ids if answers[ref].get(i) == answers[cand].get(i)}
            f = {i: guess[ref][i] - guess[cand][i] for i in ids}
            lab = {i: (label[ref][i][0] - label[cand][i][0], label[ref][i][1]) for i in ids if i in label[ref]}
            lab.update({i: (f[i], 1.0) for i in same})
            d = None if design is None else {**design, **{i: 1.0 for i in same}}
            out[f"{ref}-{cand}"] = {**estimate(f, lab, bounds=(-1.0, 1.0), design=d),
                                    "n_labeled": sum(i in label[ref] for i in ids), "n_same_answer": len(same)}
    return out


def settle(res: dict, max_disagreement: float, tokens: dict[str, float], cascade: dict | None = None) -> dict:
    """The verdict with labels, against every System 2 evaluated (greedy and maj@k): a few labels cannot tell
    which of the two is the better, and measuring against the better-looking one lets chance pick the
    reference. Ship the cheapest candidate (the distilled model, then the cascade) whose accuracy is at most
    ``max_disagreement`` below each System 2's with 95% confidence (the upper end of the paired difference's
    interval); keep System 2 when every candidate is surely further below one of them (the lower end above it,
    each of two lower ends at 98.75% so that the two chances together err no more often than one 97.5% lower
    end); otherwise the labels are too few to tell, and the verdict says about how many more would. The line
    names the System 2 that decided it."""
    sys_ = res["systems"]
    refs = [r for r in ("system2", MAJ) if r in sys_]
    if not refs:
        return {"decision": None, "line": "no verdict from labels: System 2 was not evaluated"}
    n_lab = res["n_labeled"]
    diffs, undecided, keep_ref = [], [], None

    def gap(cand: str, ref: str, d: dict) -> str:
        return (f"{cand} {_p(sys_[cand]['estimate'])}% vs {ref} {_p(sys_[ref]['estimate'])}% "
                f"(difference {_p(d['estimate'])} points, 95% CI {_p(d['ci95'][0])} to {_p(d['ci95'][1])})")

    for cand in ("distilled", "cascade"):
        ds = {r: res["differences"][f"{r}-{cand}"] for r in refs if f"{r}-{cand}" in res["differences"]}
        if not ds:
            continue
        worst = max(ds, key=lambda r: ds[r]["ci95"][1])  # the System 2 a ship must be close to
        if ds[worst]["ci95"][1] <= max_disagreement:
            line = (f"ship {'distilled' if cand == 'distilled' else 'cascade'} (settled by {n_lab} spot-check labels): "
                    f"{gap(cand, worst, ds[worst])}, at most {_p(max_disagreement)} points below "
                    f"{'each System 2 ' if len(ds) > 1 else ''}with 95% confidence"
                    + (f"; {tokens[cand]:.1f} vs {tokens[worst]:.1f} tokens per answer"
                       if cand in tokens and worst in tokens else ""))
            return _ship(cand, worst, ds[worst], line, n_lab, cascade)
        # a keep needs the candidate surely below one System 2 (Bonferroni over the two: 98.75% each)
        z = KEEP_Z_TWO / 1.96 if len(ds) > 1 else 1.0
        low = {r: d["estimate"] - (d["estimate"] - d["ci95"][0]) * z for r, d in ds.items()}
        far = max(ds, key=lambda r: low[r])
        diffs.append(gap(cand, far, ds[far]))
        keep_ref = keep_ref or far
        if low[far] <= max_disagreement:
            undecided.append((cand, ds[far]))
    if not diffs:
        return {"decision": None, "line": "no verdict from labels: no distilled model was evaluated"}
    if not undecided:
        return {"decision": "keep", "reference": keep_ref, "n_labeled": n_lab, "settled_by": "spotcheck",
                "line": f"keep System 2 ({keep_ref}; settled by {n_lab} spot-check labels): " + "; ".join(diffs)
                        + f", more than {_p(max_disagreement)} points below the System 2 named with 95% confidence"}
    more = _more_labels(undecided, max_disagreement, n_lab)
    return {"decision": "no_answer", "reference": keep_ref, "n_labeled": n_lab, "settled_by": "spotcheck",
            "labels_needed": more,
            "line": f"not settled by {n_lab} spot-check labels: " + "; ".join(diffs) + f"; the intervals still cross "
                    f"eval.max_disagreement {_p(max_disagreement)} points"
                    + (f"; about {more} labels in all would settle it at these estimates (s2distill spotcheck RUN "
                       f"-n {more})" if more else "; the estimates sit at the threshold: more labels may not settle it")}


def _ship(cand: str, ref: str, d: dict, line: str, n_lab: int, cascade: dict | None) -> dict:
    kind = "ship" if cand == "distilled" else "cascade"
    out = {"decision": kind, "line": line, "reference": ref, "candidate": cand, "difference": d,
           "n_labeled": n_lab, "settled_by": "spotcheck"}
    if kind == "cascade" and cascade:
        best = cascade["signals"][cascade["best"]]
        out["cascade"] = {"signal": cascade["best"], "threshold": best["calibration"]["threshold"],
                          "coverage": best["cascade"]["coverage"], "fallback": cascade["fallback"]}
    return out


def _more_labels(undecided, max_disagreement: float, n_lab: int) -> int | None:
    """About how many labels in all would narrow the closest undecided interval to one side of the threshold
    (its half-width falls as 1/sqrt(labels))."""
    best = None
    for _, d in undecided:
        half = (d["ci95"][1] - d["ci95"][0]) / 2
        room = abs(max_disagreement - d["estimate"])
        if room < 1e-9 or half <= 0:
            continue
        need = math.ceil(max(n_lab, 1) * (half / room) ** 2)
        best = need if best is None else min(best, need)
    return best


def _p(x: float) -> str:
    return f"{100 * x:.1f}"


INTRO = ("Spot-check: {n} labeled inputs combined with the label-free guesses on all held-out inputs "
         "(prediction-powered, stratified by inclusion probability, unbiased; docs/cascade.md):")
DIFF_INTRO = ("Paired differences (System 2's accuracy minus the candidate's, points, on the same inputs; where the two "
              "give the same answer the difference is known without a label):")


def tables(res: dict):
    """(systems table, paired-differences table or None) of a spot-check result, as :class:`~s2distill.tables.Table`."""
    from .tables import Table

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    systems = Table(["system", "accuracy % (PPI)", "95% CI", "labels only %", "label-free agreement %", "n"],
                    [[s, pct(r["estimate"]), f"{pct(r['ci95'][0])}-{pct(r['ci95'][1])}", pct(r["labels_only"]),
                      pct(r["label_free"]), str(r["n"])] for s, r in res["systems"].items()], align="lrlrrr")
    diffs = None
    if res.get("differences"):
        diffs = Table(["System 2 - candidate", "difference", "95% CI", "labeled", "same answer (no label needed)"],
                      [[k.replace("-", " - "), pct(d["estimate"]), f"{pct(d['ci95'][0])} to {pct(d['ci95'][1])}",
                        str(d.get("n_labeled", "-")), str(d.get("n_same_answer", "-"))]
                       for k, d in res["differences"].items()], align="lrlrr")
    return systems, diffs


def markdown(res: dict) -> str:
    systems, diffs = tables(res)
    lines = [INTRO.format(n=res["n_labeled"]), "", systems.markdown()]
    if diffs is not None:
        lines += ["", DIFF_INTRO, "", diffs.markdown()]
    if (res.get("verdict") or {}).get("line"):
        lines += ["", f"**Verdict with labels: {res['verdict']['line']}**"]
    return "\n".join(lines)
