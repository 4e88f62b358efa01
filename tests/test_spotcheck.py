"""The labeled spot-check: informative inputs drawn with known probabilities, and the prediction-powered
estimate that combines their labels with the label-free guesses (unbiased, tighter than labels alone)."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from s2distill.errors import DataError
from s2distill.spotcheck import draw, estimate, is_spotcheck_file, score

ROOT = Path(__file__).resolve().parents[1]


def _simulate(y: dict, f: dict, pi: dict, reps: int, seed: int = 0, design: dict | None = None
              ) -> tuple[list[float], float]:
    rng = random.Random(seed)
    ests, covered = [], 0
    truth = sum(y.values()) / len(y)
    for _ in range(reps):
        labels = {i: (y[i], pi[i]) for i in y if rng.random() < pi[i]}
        e = estimate(f, labels, design=design)
        ests.append(e["estimate"])
        covered += e["ci95"][0] <= truth <= e["ci95"][1]
    return ests, covered / reps


@pytest.mark.parametrize("stratified", [False, True])
@pytest.mark.parametrize("setting", ["consistent_but_wrong", "inconsistent"])
def test_estimate_is_unbiased_where_the_label_free_guess_is_wrong(setting, stratified) -> None:
    rng = random.Random(1)
    ids = [f"x{i}" for i in range(300)]
    y = {i: float(rng.random() < 0.6) for i in ids}  # true accuracy about 60%
    if setting == "consistent_but_wrong":  # System 2 confidently wrong on a fifth: the guess says right there
        f = {i: 1.0 if (y[i] or k % 5 == 0) else 0.0 for k, i in enumerate(ids)}
    else:  # System 2 inconsistent: the guess is a coin flip
        f = {i: float(rng.random() < 0.5) for i in ids}
    # informative inputs drawn more often: where the guess says "right" (about 25 labels expected)
    pi = {i: 0.12 if f[i] else 0.05 for i in ids}
    truth = sum(y.values()) / len(y)
    naive = sum(f.values()) / len(f)
    ests, coverage = _simulate(y, f, pi, reps=2000, design=pi if stratified else None)
    assert abs(sum(ests) / len(ests) - truth) < 0.01  # unbiased
    assert abs(naive - truth) > 0.05  # while the label-free guess alone is off
    assert coverage > 0.88  # the 95% interval holds (normal approximation, ~25 labels)


def _draw_design(uniform: float):
    """A held-out set like the coin-flip run of benchmarks/results/spotcheck.md: on 70 of 120 inputs every system
    agrees with System 2's unanimous majority (the least informative score), and System 2 is wrong on a third of
    those; on the other 50 the distilled model disagrees with System 2 and is right on 80% of them."""
    from s2distill.spotcheck import design_probabilities

    rng = random.Random(3)
    ids = [f"x{i}" for i in range(120)]
    agree = set(ids[:70])
    y = {i: float(rng.random() >= 1 / 3) if i in agree else float(rng.random() < 0.8) for i in ids}
    f = {i: 1.0 if i in agree else 0.0 for i in ids}
    pi = design_probabilities({i: 0.1 if i in agree else 1.6 for i in ids}, 20, uniform=uniform)
    return y, f, pi


def test_the_interval_holds_where_the_least_informative_inputs_carry_the_errors() -> None:
    """Defensive sampling (a share of the labels spread evenly) and the variance floor keep the 95% interval
    near 95% when System 2 is consistently wrong exactly where everything agrees; purely informative sampling
    (uniform=0) rarely labels those inputs at all."""
    y, f, pi = _draw_design(uniform=0.3)
    ests, coverage = _simulate(y, f, pi, reps=1000, design=pi)
    assert coverage > 0.9
    assert abs(sum(ests) / len(ests) - sum(y.values()) / len(y)) < 0.02
    y, f, pi0 = _draw_design(uniform=0.0)
    assert sum(pi0[i] for i in list(y)[:70]) < 0.5 * sum(pi[i] for i in list(y)[:70])


def test_inputs_known_for_certain_never_vouch_for_the_unlabeled_ones() -> None:
    """A paired difference where both systems answer alike on 80 of 100 inputs (known without a label: pi = 1)
    and one of the other 20 is labeled: those 20 are still unknown, so the interval stays wide; it once
    collapsed to a few points, the 19 unlabeled inputs merged into the certain group."""
    ids = [f"x{i}" for i in range(100)]
    f = {i: 0.0 if k < 80 else 1.0 for k, i in enumerate(ids)}
    design = {i: 1.0 if k < 80 else 0.05 for k, i in enumerate(ids)}
    labels = {i: (0.0, 1.0) for i in ids[:80]} | {ids[80]: (-1.0, 0.05)}
    e = estimate(f, labels, bounds=(-1.0, 1.0), design=design)
    assert e["ci95"][1] - e["ci95"][0] > 0.3  # 20 unknown inputs of 100, each difference in [-1, 1]
    labels |= {i: (1.0, 0.05) for i in ids[81:86]}  # more labels: a real estimate, still not certain
    e = estimate(f, labels, bounds=(-1.0, 1.0), design=design)
    assert 0.0 < e["ci95"][1] - e["ci95"][0] < 0.6 and e["ci95"][0] < 0.2 < e["ci95"][1]


def test_a_good_guess_makes_the_interval_tighter_than_labels_alone() -> None:
    rng = random.Random(2)
    ids = [f"x{i}" for i in range(400)]
    y = {i: float(rng.random() < 0.7) for i in ids}
    f = {i: y[i] if rng.random() < 0.98 else 1 - y[i] for i in ids}  # the guess is right 98% of the time
    pi = {i: 0.06 for i in ids}
    labels = {i: (y[i], pi[i]) for i in ids if rng.random() < pi[i]}
    e = estimate(f, labels)
    n = e["n_labeled"]
    p = e["labels_only"]
    labels_only_half = 1.96 * (p * (1 - p) / n) ** 0.5
    assert (e["ci95"][1] - e["ci95"][0]) / 2 < 0.75 * labels_only_half


def test_draw_label_and_score_a_run(tmp_path) -> None:
    from cascade_run import ORACLE, make_run

    run = tmp_path / "run"
    make_run(run, n_eval=120)
    path, n = draw(run, 20, seed=0)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert n == len(rows) and 8 <= n <= 35 and is_spotcheck_file(path)
    assert all(0 < r["s2distill_pi"] <= 1 and r["question"] in ORACLE and r["gold"] is None for r in rows)
    with pytest.raises(DataError, match="no 'gold' yet"):
        score(run, path)
    path.write_text("".join(json.dumps({**r, "gold": ORACLE[r["question"]]}) + "\n" for r in rows))
    res = score(run, path)
    d = res["systems"]["distilled"]
    recs = [json.loads(x) for x in (run / "eval" / "distilled.jsonl").read_text().splitlines()]
    truth = sum(r["correct"] for r in recs) / len(recs)
    assert d["n"] == 120 and d["n_labeled"] == n and d["ci95"][0] <= truth <= d["ci95"][1]
    # from the command line, through `eval --data` (no model runs: the run's own predictions are scored)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-m", "s2distill.cli", "eval", str(run), "--data", str(path)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "Spot-check:" in r.stdout and "| distilled |" in r.stdout, r.stderr
    assert json.loads((run / "spotcheck" / "report.json").read_text())["n_labeled"] == n


# -- the verdict the labels settle ---------------------------------------------------------------------------

def _h(*parts) -> int:
    import hashlib

    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest(), 16)


def _setting_factory(setting: str):
    """Fake engines for three settings. System 2 (CoT, the 'step by step' prompt): consistent but wrong on a
    third of the inputs / a coin flip between answers on every input / right. The distilled model: always
    right / always right / wrong on half. Base System 1: always wrong."""
    from cascade_run import ORACLE

    from s2distill.backends.fake import FakeBackend

    def make(cfg, weights, trained):
        def respond(req, j):
            text = req.messages[-1]["content"]
            q = next((q for q in ORACLE if q in text), None)
            gold = int(ORACLE[q]) if q else 0
            if weights == "distilled":
                return str(gold + 1 if setting == "distilled_wrong" and _h(q) % 2 else gold)
            if "step by step" not in text:
                return str(gold + 7)
            if setting == "consistent_but_wrong":
                ans = gold + 1 if _h(q) % 3 == 0 else gold
            elif setting == "inconsistent":
                r = _h(q, req.params.seed + j) % 5
                ans = gold if r < 2 else gold + r
            else:
                ans = gold
            return f"Step one. Step two. The answer is {ans}."

        return FakeBackend(respond, model_id=f"fake-{weights}")

    return make


@pytest.mark.parametrize("setting, label_free, settled", [
    ("consistent_but_wrong", "keep", "ship distilled"),  # agreement with a wrong System 2 counts as error
    ("inconsistent", "no_answer", "ship distilled"),  # agreement with a coin flip proves nothing
    ("distilled_wrong", "keep", "keep System 2"),
])
def test_twenty_labels_settle_the_verdict(tmp_path, setting, label_free, settled) -> None:
    from cascade_run import ORACLE, make_run

    run = tmp_path / "run"
    report = make_run(run, n_eval=120, make=_setting_factory(setting))
    assert report["verdict"]["decision"] == label_free
    path, n = draw(run, 20, seed=0)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    labeled = tmp_path / "labeled.jsonl"
    labeled.write_text("".join(json.dumps({**r, "gold": ORACLE[r["question"]]}) + "\n" for r in rows))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-m", "s2distill.cli", "spotcheck", str(run), "--labels", str(labeled)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "Verdict with labels:" in r.stdout, r.stderr
    assert (run / "spotcheck" / "labels.jsonl").read_text() == labeled.read_text()  # the run keeps its labels
    v = subprocess.run([sys.executable, "-m", "s2distill.cli", "verdict", str(run), "--json"], capture_output=True,
                       text=True, env=env)
    out = json.loads(v.stdout)
    assert out["kind"] == settled and out["settled_by"] == "spotcheck" and out["n_labeled"] == n, out
    assert v.returncode == (1 if settled == "keep System 2" else 0)
    rep = json.loads((run / "report.json").read_text())
    assert rep["verdict"]["label_free_verdict"]["decision"] == label_free  # what the labels overruled, kept
    md = (run / "report.md").read_text()
    assert "Spot-check:" in md and "**Verdict with labels:" in md and "| system2_maj - distilled |" in md
    html = (run / "report.html").read_text()
    assert 'id="spotcheck-table"' in html and "Verdict with labels:" in html
    # the estimate with 20 labels covers the truth all 120 labels give
    recs = [json.loads(x) for x in (run / "eval" / "distilled.jsonl").read_text().splitlines()]
    truth = sum(x["correct"] for x in recs) / len(recs)
    lo, hi = rep["spotcheck"]["systems"]["distilled"]["ci95"]
    assert lo <= truth <= hi


def test_settle_ships_the_cheapest_candidate_and_says_how_many_labels_would_tell() -> None:
    from s2distill.spotcheck import settle

    def est(e, lo, hi):
        return {"estimate": e, "ci95": [lo, hi]}

    res = {"n_labeled": 20, "systems": {"system2": est(0.9, 0.8, 0.95), "system2_maj": est(0.92, 0.85, 0.97),
                                        "distilled": est(0.7, 0.6, 0.8), "cascade": est(0.9, 0.85, 0.95)},
           "differences": {"system2_maj-distilled": est(0.22, 0.12, 0.32), "system2_maj-cascade": est(0.02, -0.03, 0.07),
                           "system2-distilled": est(0.2, 0.11, 0.3)}}
    v = settle(res, 0.10, {"cascade": 5.0, "system2_maj": 40.0})
    assert v["decision"] == "cascade" and v["reference"] == "system2_maj" and "5.0 vs 40.0 tokens" in v["line"]
    res["differences"]["system2_maj-cascade"] = est(0.05, -0.02, 0.12)  # straddles 0.10
    v = settle(res, 0.10, {})
    assert v["decision"] == "no_answer" and v["labels_needed"] == 20 * 7 * 7 // 5 // 5 + 1  # (0.07 / 0.05)^2 * 20
    res["differences"]["system2_maj-cascade"] = est(0.2, 0.11, 0.3)
    assert settle(res, 0.10, {})["decision"] == "keep"
    # a keep: surely below one System 2 is enough, at 98.75% for each of the two (the lower end 0.105 of a 95%
    # interval is not enough then), 97.5% where only one was evaluated
    res["differences"]["system2-distilled"] = est(0.12, 0.02, 0.22)
    v = settle(res, 0.10, {})
    assert v["decision"] == "keep" and v["reference"] == "system2_maj"
    # the line names the System 2 each candidate is surely below, not "each System 2" (greedy is not, here)
    assert "below each System 2" not in v["line"] and "distilled 70.0% vs system2_maj 92.0%" in v["line"]
    res["differences"]["system2_maj-distilled"] = est(0.2, 0.105, 0.295)
    assert settle(res, 0.10, {})["decision"] == "no_answer"
    one = {**res, "systems": {k: v for k, v in res["systems"].items() if k != "system2"}}
    assert settle(one, 0.10, {})["decision"] == "keep"
    # and a ship must be close to both: within 10 points of maj@k but maybe not of greedy is not a ship
    res["differences"] |= {"system2_maj-distilled": est(0.0, -0.05, 0.05), "system2-distilled": est(0.06, 0.0, 0.13)}
    assert settle(res, 0.10, {})["decision"] == "no_answer"
    res["differences"]["system2-distilled"] = est(0.03, -0.02, 0.08)
    v = settle(res, 0.10, {})
    assert v["decision"] == "ship" and v["reference"] == "system2" and "below each System 2" in v["line"]
