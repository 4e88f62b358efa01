"""The cascade's calibration and routing against constructed inputs (no model): the Clopper-Pearson bound,
fixed-sequence testing from strict to loose, ties, empty and untestable calibration sets, costs."""
from __future__ import annotations

import math

import pytest

from s2distill.cascade import (GRID, Point, answered_needed, calibrate, cp_upper, evaluate, min_inputs, route, split,
                               why_none_passed)
from s2distill.label_free import verdict


def pt(i: int, conf: float | None, agrees: bool, s1_ok: bool | None = None, s2_ok: bool | None = None,
       s2_tokens: float = 100) -> Point:
    return Point(f"e{i}", conf, "a" if agrees else "b", "a", "a", s1_tokens=2, s1_calls=1, signal_tokens=0,
                 signal_calls=0, s2_tokens=s2_tokens, s2_calls=4, s1_correct=s1_ok, s2_correct=s2_ok)


def test_clopper_pearson_upper_bound() -> None:
    assert cp_upper(0, 10) == pytest.approx(1 - 0.05 ** (1 / 10), abs=1e-9)  # closed form at k = 0
    assert cp_upper(3, 50) == pytest.approx(0.1478, abs=5e-4)  # beta(4, 47) 95% quantile
    assert cp_upper(0, 0) == 1.0 and cp_upper(5, 5) == 1.0
    assert cp_upper(1, 50) < cp_upper(2, 50) < cp_upper(2, 40)  # more disagreement or fewer inputs: looser
    assert min_inputs(0.10) == 29 and cp_upper(0, 29) <= 0.10 < cp_upper(0, 28)


def test_threshold_is_the_loosest_that_passes_in_sequence() -> None:
    # 60 confident inputs (0.99) that agree, then 40 unsure ones (0.5) of which half disagree
    pts = [pt(i, 0.99, True) for i in range(60)] + [pt(100 + i, 0.5, i % 2 == 0) for i in range(40)]
    c = calibrate(pts, max_disagreement=0.10)
    # the loosest grid threshold that still answers only the 60 (0.55), not 0.5, where the unsure ones join
    assert c.threshold == 0.55 and c.answered == 60 and c.disagreements == 0 and c.bound <= 0.10
    tested = [t for t, *_ in c.tested]
    assert tested[0] == 0.99 and tested[-1] == 0.5 and tested == [t for t in GRID if 0.5 <= t <= 0.99]
    assert c.tested[-1][1] == 100 and c.tested[-1][3] > 0.10  # the first failure ends the sequence
    r = route(pts, c.threshold)
    assert r["coverage"] == 0.6 and r["disagreement_answered"] == 0.0
    assert r["tokens"] == pytest.approx(2 + 0.4 * 100) and r["calls"] == pytest.approx(1 + 0.4 * 4)
    assert r["agreement"] == 1.0  # routed inputs take System 2's answer


def test_sequence_stops_at_the_first_failure_even_if_a_looser_threshold_would_pass() -> None:
    # at 0.9: 30 answered, 4 disagree (fails); at 0.5: 200 answered, 4 disagree (would pass): not tested
    pts = [pt(i, 0.9, i >= 4) for i in range(30)] + [pt(100 + i, 0.5, True) for i in range(170)]
    c = calibrate(pts, max_disagreement=0.10)
    assert c.threshold is None and c.answered == 0 and c.tested[-1][0] == 0.9
    assert cp_upper(4, 200) <= 0.10  # the looser threshold would have passed on its own


def test_ties_answer_together_and_missing_confidence_goes_to_system2() -> None:
    pts = [pt(i, 0.8, True) for i in range(40)] + [pt(100 + i, None, False) for i in range(10)]
    c = calibrate(pts, 0.10)
    assert c.answered == 40 and c.threshold == 0.0  # every input at 0.8 answered together; none without a signal
    assert route(pts, c.threshold)["answered"] == 40


def test_empty_and_untestable_calibration_sets() -> None:
    assert calibrate([], 0.10).threshold is None
    small = [pt(i, 0.99, True) for i in range(20)]  # 20 < 29: even 0 disagreements cannot pass at 10%
    c = calibrate(small, 0.10)
    assert c.threshold is None and c.tested == ()
    assert calibrate(small, 0.20).answered == 20  # at 20% it can (cp_upper(0, 20) = 0.139)
    assert route([], 0.5)["n"] == 0


def test_split_is_stable_and_evaluate_reports_both() -> None:
    ids = [f"x{i}" for i in range(200)]
    a, b = split(ids)
    assert a | b == set(ids) and not a & b and 70 < len(a) < 130 and split(ids) == (a, b)
    pts = [pt(i, 0.99, True, True, True) for i in range(150)] + [pt(1000 + i, 0.3, i % 3 == 0, False, True)
                                                                  for i in range(90)]
    ev = evaluate(pts, 0.10)
    assert ev["calibration"]["answered"] == 150 and ev["cascade"]["coverage"] == pytest.approx(150 / 240)
    assert ev["cascade"]["accuracy"] == 1.0  # System 1 right where it answers, System 2 right elsewhere
    assert ev["token_ratio"] == pytest.approx((2 + 90 / 240 * 100) / 100)
    assert ev["split"]["guarantee_held"] and ev["split"]["test"]["disagreement_answered"] == 0.0
    assert len(ev["curve"]) == len(GRID) and ev["curve"][0]["threshold"] == 1.0


def _rows(dist_tokens: float = 2.0, s2_tokens: float = 40.0) -> list[dict]:
    return [{"role": "system2_maj", "mean_generated_tokens": s2_tokens * 4},
            {"role": "distilled", "mean_generated_tokens": dist_tokens}]


def _lf(agreement: float, n: int, vote_share: float) -> dict:
    from s2distill.evaluate import ci95

    return {"system2_maj": {"mean_vote_share": vote_share, "k": 4, "n": n},
            "distilled": {"agreement": agreement, "agreement_ci95": ci95(round(agreement * n), n), "n": n}}


def test_verdict_has_four_outcomes() -> None:
    assert verdict(_rows(), _lf(0.99, 400, 0.9))["decision"] == "ship"
    low = _lf(0.7, 100, 0.9)
    assert verdict(_rows(), low)["decision"] == "keep"
    # routing 40% to a fallback of 100 tokens per input costs 42 > System 2 greedy's 40 per answer: no saving
    pts = [pt(i, 0.99, True) for i in range(60)] + [pt(100 + i, 0.5, i % 2 == 0) for i in range(40)]
    cas = {"signals": {"logprob": evaluate(pts, 0.10)}, "best": "logprob", "fallback": "maj"}
    assert verdict(_rows(), low, cascade=cas)["decision"] == "keep"
    pts = [pt(i, 0.99, True, s2_tokens=40) for i in range(60)] + [pt(100 + i, 0.5, i % 2 == 0, s2_tokens=40)
                                                                 for i in range(40)]
    cas = {"signals": {"logprob": evaluate(pts, 0.10)}, "best": "logprob", "fallback": "greedy"}
    v = verdict(_rows(), low, cascade=cas)
    assert v["decision"] == "cascade" and v["line"].startswith("ship cascade: the distilled model answers 60.0%")
    assert v["cascade"]["threshold"] == 0.55 and v["cascade"]["bound"] <= 0.10
    # System 2 inconsistent: no recommendation at all, not "keep System 2"
    v = verdict(_rows(), _lf(0.7, 100, 0.6), cascade=cas)
    assert v["decision"] == "no_answer" and "no label-free answer" in v["line"] and "spotcheck RUN_DIR" in v["line"]
    assert not math.isnan(v["token_saving"])


def test_a_run_reports_its_cascade_in_json_markdown_and_html(tmp_path) -> None:
    """A whole (fake-engine) run (tests/cascade_run.py): the distilled fake is right on 3 of 4 inputs and sure
    of exactly those (probability 0.97 vs 0.30); System 2 is right on most samples. The report gains a cascade
    row per signal, the logprob signal routes the unsure quarter to System 2, and the verdict speaks JSON."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from cascade_run import make_run

    from s2distill.html_report import render_run

    run = tmp_path / "run"
    report = make_run(run)
    recs = [json.loads(x) for x in (run / "eval" / "distilled.jsonl").read_text().splitlines()]
    assert {r["meta"]["confidence"] for r in recs} == {0.97, 0.3}  # the engine's logprobs, recorded per input
    cas = report["cascade"]
    assert set(cas["signals"]) == {"logprob", "vote", "agreement"} and cas["fallback"] == "greedy"
    lp = cas["signals"]["logprob"]
    sure = sum(r["meta"]["confidence"] == 0.97 for r in recs)
    assert lp["calibration"]["threshold"] is not None and lp["cascade"]["answered"] == sure
    assert lp["cascade"]["coverage"] == pytest.approx(sure / len(recs))
    assert lp["cascade"]["accuracy"] > report["rows"][-1]["accuracy"]  # better than the distilled model alone
    assert lp["split"]["guarantee_held"] and lp["split"]["test"]["n"] + lp["split"]["calibration"]["n"] == len(recs)
    # the agreement signal: the base System 1 fake is always wrong, so it never agrees: nothing answered
    assert cas["signals"]["agreement"]["cascade"]["answered"] == 0
    # the vote signal: eval.cascade_k=4 sampled answers per input (stage eval_distilled_votes), the sure inputs
    # repeat their answer 4 of 4 times, the unsure 2 of 4: the same split as logprob, at 4 more samples' cost
    votes = [json.loads(x) for x in (run / "eval" / "distilled.votes.jsonl").read_text().splitlines()]
    assert len(votes) == len(recs) and all(len(v["meta"]["answers"]) == 4 and v["calls"] == 4 for v in votes)
    vo = cas["signals"]["vote"]
    assert vo["calibration"]["threshold"] is not None and vo["cascade"]["answered"] == sure
    assert vo["cascade"]["tokens"] > lp["cascade"]["tokens"]  # the samples are counted
    assert cas["best"] == "logprob"  # the same routing for free
    md = (run / "report.md").read_text()
    assert "Cascade (the distilled model answers" in md and "| logprob (chosen) |" in md
    html = render_run(run)
    assert 'id="cascade"' in html and 'id="cascade-table"' in html
    # the plot: the logprob cascade at every threshold (a dashed line from "System 2 everywhere" to "distilled
    # everywhere") and its chosen point, labelled, with the accuracy the cascade reached
    import re

    svg = re.search(r'<div id="plot">(<svg.*?</svg>)</div>', html, re.S).group(1)
    assert "cascade (logprob, chosen)" in re.findall(r'class="lbl"[^>]*>([^<]+)</text>', svg)
    curve = re.search(r'<path class="curve" d="([^"]+)"[^>]*><title>cascade \(logprob\) at every threshold', svg)
    assert curve and curve.group(1).count("L") >= 1 and 'stroke-dasharray' in svg
    xs = sorted(c["tokens"] for c in lp["curve"])
    assert xs[0] < lp["cascade"]["tokens"] <= xs[-1]
    v = report["verdict"]
    assert v["decision"] == "cascade" and v["cascade"]["coverage"] == pytest.approx(sure / len(recs))
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "s2distill.cli", "verdict", str(run), "--json"], capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(root / "src")})
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["kind"] == "ship cascade" and out["signal"] == "logprob"
    assert out["coverage"] == pytest.approx(lp["cascade"]["coverage"]) and out["bound"] <= 0.15
    # a 1% target: keep, and the reasons say why the cascade saves nothing
    r = subprocess.run([sys.executable, "-m", "s2distill.cli", "verdict", str(run), "--json", "eval.max_disagreement=0.01"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root / "src")})
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["kind"] == "keep System 2"
    assert any(x.startswith("no cascade threshold can be tested") for x in out["reasons"]), out["reasons"]
    # the bound on all inputs instead (eval.cascade_risk=all): rebuilt from the eval files, no model call
    r = subprocess.run([sys.executable, "-m", "s2distill.cli", "verdict", str(run), "--json", "eval.cascade_risk=all",
                        "eval.max_disagreement=0.3"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(root / "src")})
    out = json.loads(r.stdout)
    assert out["risk"] == "all" and (out["kind"] != "ship cascade" or "of all inputs" in out["line"]), out
    # how many disagreements that bound lets pass, on all the held-out inputs and on the half-split check's half
    from s2distill.cascade import markdown as cascade_md, tolerated
    from s2distill.checks import load_checked
    from s2distill.report import build_report

    every = build_report(run, load_checked(run / "config.yaml", ["eval.cascade_risk=all", "eval.max_disagreement=0.1"]))
    tol = every["cascade"]["tolerance"]
    assert tol["n"] == len(recs) and tol["half_n"] == lp["split"]["calibration"]["n"]
    assert tol["disagreements"] == tolerated(len(recs), 0.1) >= tol["half_disagreements"] >= 0
    assert f"at most {tol['disagreements']} disagreement" in "\n".join(cascade_md(every["cascade"]))
    assert "tolerance" not in report["cascade"]  # the default (answered): it depends on how many are answered


def test_tolerated_is_the_most_disagreements_the_bound_lets_pass() -> None:
    from s2distill.cascade import tolerated

    assert (tolerated(168, 0.02), tolerated(320, 0.02), tolerated(640, 0.02)) == (0, 2, 6)  # the continual chains
    for n, md in ((168, 0.02), (320, 0.02), (160, 0.10), (50, 0.05)):
        k = tolerated(n, md)
        assert (k < 0 or cp_upper(k, n) <= md) and cp_upper(k + 1, n) > md
    assert tolerated(100, 0.02) == -1 and min_inputs(0.02) > 100  # too few inputs: not even none passes


def test_answered_needed_is_the_fewest_inputs_whose_bound_passes_at_the_observed_rate() -> None:
    assert answered_needed(0, 10, 0.10) == min_inputs(0.10) == 29
    n = answered_needed(1, 31, 0.10)  # 3.2%: 1 in 31 fails (bound 14.4%), enough inputs at that rate pass
    assert n > 31 and cp_upper(math.ceil(n / 31), n) <= 0.10 < cp_upper(math.ceil((n - 1) / 31), n - 1)
    assert answered_needed(5, 40, 0.10) is None and answered_needed(4, 40, 0.10) is None  # at or above the target


def _keep_case(pts, md=0.10):
    sig = {"logprob": evaluate(pts, md)}
    return {"signals": sig, "best": None, "fallback": "maj", "max_disagreement": md, "delta": 0.05,
            "why_none": why_none_passed(sig, md)}


def test_a_keep_verdict_says_why_the_cascade_saves_nothing_and_what_would() -> None:
    low = _lf(0.7, 100, 0.9)
    # the 35 most confident answers hold 1 disagreement (2.9%): the bound fails, more inputs at that rate would pass
    pts = [pt(i, 0.99, i != 0) for i in range(35)] + [pt(100 + i, 0.3, i % 2 == 0) for i in range(65)]
    cas = _keep_case(pts)
    v = verdict(_rows(), low, cascade=cas)
    need = answered_needed(1, 35, 0.10)
    assert v["decision"] == "keep" and cas["why_none"] in v["reasons"]
    assert "35 most confident answers ('logprob' >= 0.99) disagree with System 2's majority on 1" in v["line"]
    assert f"about {need} answered at that rate would pass" in v["line"]
    # their disagreement is above the target: more inputs will not help
    pts = [pt(i, 0.99, i % 4 != 0) for i in range(40)] + [pt(100 + i, 0.3, False) for i in range(60)]
    v = verdict(_rows(), low, cascade=_keep_case(pts))
    assert "more held-out inputs will not help" in v["line"] and "25.0% disagreement" in v["line"]
    # too few inputs to test any threshold
    v = verdict(_rows(), low, cascade=_keep_case([pt(i, 0.99, True) for i in range(20)]))
    assert "29 answered inputs with no disagreement are the fewest that certify 10.0%" in v["line"]
    # a threshold passed: no such reason (the cascade ships, or the keep names its cost instead)
    ok = [pt(i, 0.99, True) for i in range(60)] + [pt(100 + i, 0.5, i % 2 == 0) for i in range(40)]
    assert _keep_case(ok)["why_none"] is None
    cas = {**_keep_case(ok), "best": "logprob"}
    v = verdict(_rows(), low, cascade=cas)
    assert v["decision"] == "keep" and "the cascade saves no tokens: with confidence 'logprob' >= 0.55" in v["line"]
    # cheaper than its maj@k fallback, dearer than greedy System 2 (what keep deploys): the line says which
    lp = cas["signals"]["logprob"]
    dear = {**cas, "signals": {"logprob": {**lp, "token_ratio": 0.69, "cascade": {**lp["cascade"], "tokens": 50.8}}}}
    v = verdict(_rows(), low, cascade=dear)
    assert v["decision"] == "keep" and "for 50.8 generated tokens per input: 69.0% of its maj@k fallback's, but more " \
        "than System 2 greedy's 40.0, which keep deploys (eval.cascade_fallback=greedy" in v["line"]
    v = verdict(_rows(), low, cascade={**dear, "fallback": "greedy"})
    assert "asking it first costs 69.0% of System 2's tokens" in v["line"]


def _three_bands() -> list[Point]:
    # 100 sure answers that agree, 60 fairly sure with 3 disagreements, 40 unsure with half disagreeing
    return ([pt(i, 0.99, True) for i in range(100)] + [pt(200 + i, 0.8, i >= 3) for i in range(60)]
            + [pt(300 + i, 0.3, i % 2 == 0) for i in range(40)])


def test_risk_all_bounds_the_share_of_all_inputs_that_the_cascade_changes() -> None:
    pts = _three_bands()
    # risk 'answered' at 10%: the 160 answers at >= 0.8 hold 3 disagreements (1.9%, bound 4.9%): 80% coverage,
    # and the cascade differs from System 2 on 1.5% of all inputs
    a = calibrate(pts, 0.10)
    assert a.risk == "answered" and a.answered == 160 and a.bound == pytest.approx(cp_upper(3, 160), abs=1e-6)
    assert route(pts, a.threshold)["disagreement_all"] == pytest.approx(3 / 200)
    # risk 'all' at 2%: the denominator is all 200 inputs; the 100 sure ones pass (bound cp_upper(0, 200) = 1.5%),
    # adding the 60 brings 3 of 200 (bound 3.9% > 2%): the sequence stops there
    c = calibrate(pts, 0.02, risk="all")
    assert c.risk == "all" and c.threshold == 0.825 and c.answered == 100 and c.disagreements == 0
    assert c.bound == pytest.approx(cp_upper(0, 200), abs=1e-6) and c.bound <= 0.02 < c.tested[-1][3]
    assert c.tested[-1][:3] == (0.8, 160, 3) and c.to_json()["risk"] == "all"
    # the same 2% target on the answered inputs certifies nothing: 100 answers are too few for 2% (29 -> 149)
    assert calibrate(pts, 0.02).threshold is None and min_inputs(0.02) == 149
    # nothing answered at a threshold is never a pass by itself (coverage 0 would pass any bound on all inputs)
    assert all(t[1] > 0 for t in c.tested)
    with pytest.raises(ValueError, match="eval.cascade_risk"):
        calibrate(pts, 0.02, risk="every")


def test_risk_all_in_evaluate_the_verdict_and_the_reasons() -> None:
    pts = _three_bands()
    ev = evaluate(pts, 0.02, risk="all")
    t = ev["split"]["test"]
    assert ev["calibration"]["risk"] == "all" and ev["split"]["calibration"]["risk"] == "all"
    assert ev["split"]["guarantee_held"] == (t["disagreement_all"] <= 0.02)
    # the verdict names what is bounded and what it means for accuracy
    low = _lf(0.7, 100, 0.9)
    flat = [Point(p.example_id, p.confidence, p.answer, p.reference, p.fallback, 2, 1, 0, 0, 40, 1)
            for p in _three_bands()]
    cas = {"signals": {"logprob": evaluate(flat, 0.02, risk="all")}, "best": "logprob", "fallback": "maj",
           "risk": "all"}
    v = verdict(_rows(), low, 0.75, 0.02, cascade=cas)
    assert v["decision"] == "cascade" and v["cascade"]["risk"] == "all"
    assert "answers differently from System 2's majority on at most 1.5% of all inputs" in v["line"]
    assert "at most 1.5 points below the majority's" in v["line"]
    # why nothing passed, counted on all inputs: too few inputs, or the most confident answers already disagree
    few = {"logprob": evaluate([pt(i, 0.99, True) for i in range(100)], 0.02, risk="all")}
    assert why_none_passed(few, 0.02, risk="all").startswith(
        "no cascade threshold can be tested: 149 held-out inputs are the fewest that certify 2.0% of all inputs")
    bad = [pt(i, 0.99, i != 0) for i in range(100)] + [pt(100 + i, 0.3, True) for i in range(100)]
    why = why_none_passed({"logprob": evaluate(bad, 0.02, risk="all")}, 0.02, risk="all")
    assert "100 most confident answers ('logprob' >= 0.99) disagree with System 2's majority on 1 of the 200" in why
    assert f"about {answered_needed(1, 200, 0.02)} held-out inputs at that rate would pass" in why


def test_eval_cascade_risk_is_checked_with_the_fix() -> None:
    from s2distill.config import load_config
    from s2distill.errors import ConfigError

    with pytest.raises(ConfigError, match=r"eval.cascade_risk 'every'.*known: answered, all"):
        load_config("configs/demo.yaml", ["eval.cascade_risk=every"])
    assert load_config("configs/demo.yaml", ["eval.cascade_risk=all"]).eval.cascade_risk == "all"
