"""A small labeled spot-check that settles what label-free numbers cannot.

``s2distill spotcheck RUN -n 20`` draws about 20 of the run's held-out inputs for a person to label,
favouring the informative ones (System 1, the distilled model and System 2's majority disagree; System
2's votes split), each with a known inclusion probability pi_i (Poisson sampling, pi_i proportional to
an informativeness score and capped at 1). It writes them to ``RUN/spotcheck/to_label.jsonl`` with an
empty ``gold``. Once labeled, ``s2distill spotcheck RUN --labels FILE`` (or ``s2distill eval RUN --data
FILE``) scores every system without running a model:

    estimate = (1/N) * sum_i [ f_i + xi_i * (y_i - f_i) / pi_i ]

over all N held-out inputs, where f_i = 1 when the system agrees with System 2's majority (the
label-free guess of "right"), y_i = 1 when it matches the label, and xi_i = 1 for the labeled inputs.
This is prediction-powered inference with an active (non-uniform, known-probability) choice of what to
label (Angelopoulos et al. 2023; Zrnic & Candès 2024): unbiased for the accuracy whatever the quality of
the label-free guess, and tighter than the labels alone where the guess is good. The 95% interval is the
normal interval of the mean of the N terms. Where System 2 is consistent but wrong, f_i is wrong in the
same way everywhere and the labels correct it; where System 2 is inconsistent, the labels carry it.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

from .errors import DataError

SYSTEMS = ("system1", "system2", "system2_maj", "distilled")
PI_FIELD = "s2distill_pi"


def _records(run: Path, system: str) -> dict:
    from .label_free import _read

    return {r.example_id: r for r in _read(run / "eval" / f"{system}.jsonl")}


def _context(run: Path):
    from .config import load_config
    from .label_free import normalizer
    from .rundir import read_jsonl
    from .tasks import make_task
    from .voting import plurality_share

    cfg = load_config(run / "config.yaml")
    task = make_task(cfg.task)
    norm = normalizer(task)
    maj = _records(run, "system2_maj")
    if not maj:
        raise DataError(f"{run} has no System 2 maj@k evaluation (eval/system2_maj.jsonl); fix: add system2_maj to "
                        "eval.systems and rerun the run (finished stages are reused)")
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
        reasons = [f"{s} disagrees with System 2's majority" for s in ("distilled", "system1")
                   if i in recs[s] and norm(recs[s][i].prediction) != winner]
        if share < 1:
            reasons.append(f"System 2's votes split ({100 * share:.0f}% for its majority)")
        score[i] = 0.1 + len([r for r in reasons if "disagrees" in r]) + (1 - share)
        why[i] = reasons
    total = sum(score.values())
    pi = {i: min(1.0, n * score[i] / total) for i in ids}
    rng = random.Random(seed)
    chosen = [i for i in ids if rng.random() < pi[i]]
    path = Path(out) if out else run / "spotcheck" / "to_label.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for i in chosen:
            fh.write(json.dumps({"id": i, "question": questions.get(i, ""), "gold": None, PI_FIELD: round(pi[i], 6),
                                 "why": why[i]}, ensure_ascii=False) + "\n")
    return path, len(chosen)


def is_spotcheck_file(path: str | Path) -> bool:
    try:
        with open(path) as fh:
            first = fh.readline()
        return PI_FIELD in json.loads(first)
    except (OSError, json.JSONDecodeError, TypeError):
        return False


def estimate(f: dict[str, float], labels: dict[str, tuple[float, float]]) -> dict:
    """``f``: the label-free guess (0/1) of every input; ``labels``: id -> (y, pi) of the labeled ones.
    The mean of the terms f_i + xi_i (y_i - f_i) / pi_i, with a normal 95% interval."""
    n = len(f)
    terms = [fi + ((labels[i][0] - fi) / labels[i][1] if i in labels else 0.0) for i, fi in f.items()]
    mean = sum(terms) / n if n else 0.0
    var = sum((t - mean) ** 2 for t in terms) / (n - 1) if n > 1 else 0.0
    half = 1.96 * math.sqrt(var / n) if n else 0.0
    lab = [labels[i][0] for i in f if i in labels]
    return {"estimate": mean, "ci95": [max(0.0, mean - half), min(1.0, mean + half)], "n_labeled": len(lab), "n": n,
            "labels_only": sum(lab) / len(lab) if lab else None, "label_free": sum(f.values()) / n if n else None}


def score(run_dir: str | Path, labels: str | Path) -> dict:
    """Accuracy of every evaluated system from the labeled spot-check file and the label-free guesses."""
    run = Path(run_dir)
    task, norm, votes, _ = _context(run)
    rows = []
    for k, line in enumerate(Path(labels).read_text().splitlines(), 1):
        if not line.strip():
            continue
        d = json.loads(line)
        if d.get("gold") in (None, ""):
            raise DataError(f"{labels}, line {k}: no 'gold' yet; fix: write each input's right answer into its "
                            "'gold' field (or delete the row: the estimate stays unbiased only if you label every "
                            "row that was drawn)")
        if PI_FIELD not in d or not 0 < float(d[PI_FIELD]) <= 1:
            raise DataError(f"{labels}, line {k}: no valid '{PI_FIELD}'; fix: label the file written by "
                            "`s2distill spotcheck RUN -n N`, keeping its fields")
        rows.append((str(d["id"]), str(d["gold"]), float(d[PI_FIELD])))
    out = {}
    for s in SYSTEMS:
        recs = _records(run, s)
        if not recs:
            continue
        f = {i: float(norm(recs[i].prediction) is not None and norm(recs[i].prediction) == votes[i][0])
             for i in votes if i in recs}
        labels = {i: (float(bool(task.score(recs[i].prediction, gold))), p) for i, gold, p in rows if i in f}
        out[s] = estimate(f, labels)
    return {"labels": str(labels), "n_labeled": len(rows), "systems": out}


def markdown(res: dict) -> str:
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    lines = [f"Spot-check: {res['n_labeled']} labeled inputs combined with the label-free guesses on all held-out "
             "inputs (prediction-powered, unbiased; docs/cascade.md):", "",
             "| system | accuracy % (PPI) | 95% CI | labels only % | label-free agreement % | n |",
             "|---|---:|---|---:|---:|---:|"]
    for s, r in res["systems"].items():
        lines.append(f"| {s} | {pct(r['estimate'])} | {pct(r['ci95'][0])}-{pct(r['ci95'][1])} | "
                     f"{pct(r['labels_only'])} | {pct(r['label_free'])} | {r['n']} |")
    return "\n".join(lines)
