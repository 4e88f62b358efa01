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


def _simulate(y: dict, f: dict, pi: dict, reps: int, seed: int = 0) -> tuple[list[float], float]:
    rng = random.Random(seed)
    ests, covered = [], 0
    truth = sum(y.values()) / len(y)
    for _ in range(reps):
        labels = {i: (y[i], pi[i]) for i in y if rng.random() < pi[i]}
        e = estimate(f, labels)
        ests.append(e["estimate"])
        covered += e["ci95"][0] <= truth <= e["ci95"][1]
    return ests, covered / reps


@pytest.mark.parametrize("setting", ["consistent_but_wrong", "inconsistent"])
def test_estimate_is_unbiased_where_the_label_free_guess_is_wrong(setting) -> None:
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
    ests, coverage = _simulate(y, f, pi, reps=2000)
    assert abs(sum(ests) / len(ests) - truth) < 0.01  # unbiased
    assert abs(naive - truth) > 0.05  # while the label-free guess alone is off
    assert coverage > 0.88  # the 95% interval holds (normal approximation, ~25 labels)


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
