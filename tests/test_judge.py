"""Pairwise judge task, BSM method, swap-consistency curation, both-order evaluation (fakes only)."""
import json
import re
from collections import Counter

import pytest

from s2distill.backends.fake import FakeBackend
from s2distill.config import MethodConfig
from s2distill.checks import load_checked
from s2distill.errors import ConfigError, DataError
from s2distill.evaluate import combine_orders, summarize
from s2distill.methods import bsm
from s2distill.perturb import SwapConsistency, expand
from s2distill.pipeline import Pipeline
from s2distill.rundir import read_jsonl
from s2distill.tasks.judge import JudgeOptions, JudgeTask, extract_verdict
from s2distill.types import Call, Completion, EvalRecord, Example, Sample, SamplingParams, Trace


def pair(id_="p", gold="A", a="good answer", b="bad answer", q="What is 2+2?"):
    return Example(id_, q, gold, {"response_a": a, "response_b": b})


@pytest.mark.parametrize("text,want", [
    ("A", "A"), (" b.", "B"), ("tie", "tie"), ("[[A]]", "A"), ("My final verdict is [[C]]", "tie"),
    ("The better response is Assistant B.", "B"), ("Verdict: **A**", "A"), ("Both are equally good.", "tie"),
    ("Answer: B", "B"), ("I cannot decide between these.", None), ("", None),
])
def test_extract_verdict(text, want):
    assert extract_verdict(text) == want


def test_gsm8k_pairs_known_answers_balanced_and_swappable(shared_data):
    task = JudgeTask(JudgeOptions(source="gsm8k_pairs", path=str(shared_data / "gsm8k")))
    train, ev = task.load("train", 200), task.load("eval", 200)
    assert not {e.question for e in train} & {e.question for e in ev}  # disjoint splits
    counts = Counter(e.gold for e in train + ev)
    assert set(counts) == {"A", "B"} and abs(counts["A"] - counts["B"]) < 60
    for e in ev[:50]:
        good = e.meta["response_a"] if e.gold == "A" else e.meta["response_b"]
        bad = e.meta["response_b"] if e.gold == "A" else e.meta["response_a"]
        assert good != bad and "<<" not in good and "The answer is" in good
        assert len(re.findall(r"\d+", good)) == len(re.findall(r"\d+", bad))  # one number changed, nothing else
    s = task.perturb(ev[0], 0)
    assert (s.meta["response_a"], s.meta["response_b"]) == (ev[0].meta["response_b"], ev[0].meta["response_a"])
    assert s.gold == {"A": "B", "B": "A"}[ev[0].gold] and task.perturb(s, 0).gold == ev[0].gold
    assert task.unperturb_answer("A") == "B" and task.unperturb_answer("tie") == "tie"
    assert task.load("eval", 5) == task.load("eval", 5)  # deterministic
    msg = task.system1_messages(ev[0])[0]["content"]
    assert ev[0].question in msg and msg.endswith('Answer with only "A", "B" or "tie".')


def test_mt_bench_human_local_file(tmp_path):
    rows = [{"question_id": 81, "model_a": "m1", "model_b": "m2", "winner": w, "judge": "expert_0", "turn": t,
             "conversation_a": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "a1"},
                                {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "a2"}],
             "conversation_b": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "b1"},
                                {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "b2"}]}
            for w, t in (("model_a", 1), ("model_b", 2), ("tie", 1), ("tie (bothbad)", 2))]
    f = tmp_path / "human.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    task = JudgeTask(JudgeOptions(source="mt_bench_human", path=str(f), eval_fraction=0.5))
    exs = task.load("train", -1) + task.load("eval", -1)
    by_gold = {e.gold: e for e in exs}
    assert sorted(e.gold for e in exs) == ["A", "B", "tie", "tie"]
    assert by_gold["A"].question == "Q1" and by_gold["A"].meta["response_b"] == "b1"
    assert "Q2" in by_gold["B"].question and by_gold["B"].meta["response_a"] == "a2"
    assert len(JudgeTask(JudgeOptions(source="mt_bench_human", path=str(f), keep_ties=False)).load("eval", -1)) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**rows[0], "winner": "model_c"}))
    with pytest.raises(DataError, match="winner"):
        JudgeTask(JudgeOptions(source="mt_bench_human", path=str(bad))).load("eval", -1)


def test_oasst2_local_file(tmp_path):
    rows = [{"message_id": "p1", "parent_id": None, "role": "prompter", "text": "Tell a joke", "rank": None},
            {"message_id": "r1", "parent_id": "p1", "role": "assistant", "text": "best", "rank": 0},
            {"message_id": "r2", "parent_id": "p1", "role": "assistant", "text": "mid", "rank": 1},
            {"message_id": "r3", "parent_id": "p1", "role": "assistant", "text": "worst", "rank": 2},
            {"message_id": "p2", "parent_id": None, "role": "prompter", "text": "Lonely", "rank": None},
            {"message_id": "r4", "parent_id": "p2", "role": "assistant", "text": "only reply", "rank": 0}]
    f = tmp_path / "oasst2.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    task = JudgeTask(JudgeOptions(source="oasst2", path=str(f), eval_fraction=0.5))
    (ex,) = task.load("train", -1) + task.load("eval", -1)  # p2 has a single reply: no pair
    winner = ex.meta["response_a"] if ex.gold == "A" else ex.meta["response_b"]
    assert ex.question == "Tell a joke" and winner == "best"
    assert {ex.meta["response_a"], ex.meta["response_b"]} == {"best", "worst"}


def test_judge_options_errors(tmp_path):
    with pytest.raises(ConfigError, match="source"):
        JudgeTask(JudgeOptions(source="mtbench"))
    with pytest.raises(ConfigError, match="path is required"):
        JudgeTask(JudgeOptions(source="pairs")).load("eval", 3)
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"question": "q", "response_a": "a", "response_b": "b", "label": "C"}))
    with pytest.raises(DataError, match="label must be"):
        JudgeTask(JudgeOptions(source="pairs", path=str(f))).load("eval", 3)


# --- BSM -------------------------------------------------------------------------------------------

def test_parse_criteria_formats():
    text = ("Here are the criteria:\n1. Correctness: the math is right\n- **Clarity**: easy to follow\n"
            "* Completeness: all steps shown\n2) correctness: duplicate\nno colon line\n"
            "Relevance: on topic\nBrevity: short\nExtra: too many")
    got = bsm.parse_criteria(text, 5)
    assert [n for n, _ in got] == ["Correctness", "Clarity", "Completeness", "Relevance", "Brevity"]
    assert got[0][1] == "the math is right" and got[1][1] == "easy to follow"
    assert bsm.parse_criteria("nothing here", 5) == [] and bsm.parse_criteria("", 3) == []


@pytest.mark.parametrize("text,want", [
    ("Fine.\nScore A: 8\nScore B: 3", (8.0, 3.0)), ("score for assistant A = 7/10, Score for Assistant B: 9/10", (7.0, 9.0)),
    ("Score A: **6**\nScore B: 6.5", (6.0, 6.5)), ("Score A: 8", None), ("Score A: 0\nScore B: 5", None),
    ("Score A: 11\nScore B: 5", None), ("A is better", None),
    # the same scores in prose (the 1.5B's solve answers in benchmarks/teacher_student.py)
    ("Therefore, the score for Assistant A is 9 and the score for Assistant B is 8.", (9.0, 8.0)),
    ("Therefore, Assistant A's score is 10, while Assistant B's score is 1.", (10.0, 1.0)),
    ("I will give Assistant A a score of 2 out of 10. ... I will give Assistant B a score of 1 out of 10.", (2.0, 1.0)),
    ("I will assign a score of 7 to Assistant B's answer, with a score of 8 to Assistant A's answer.", (8.0, 7.0)),
    ("Both are right, resulting in a score of 4 for both answers.", (4.0, 4.0)),
    ("The score for each answer is 10 because both answers", (10.0, 10.0)),
    ("Both answers are correct. Therefore, the scores are both 5.", (5.0, 5.0)),
    ("Therefore, the answer is:\nScore A: <1-10>\nScore B: <1-10>", None), ("Score A: 10\nScore B: ", None),
    ("I would give the answer a score of 5", None), ("The score for Assistant A is 12, for B 3", None),
])
def test_parse_scores(text, want):
    assert bsm.parse_scores(text) == want


def test_merge_sums_scores_and_skips_malformed():
    assert bsm.merge([(8, 3), None, (2, 5)]) == ("A", 10, 8)
    assert bsm.merge([(5, 5)]) == ("tie", 5, 5)
    assert bsm.merge([None, None]) == (None, 0.0, 0.0)


def bsm_responder(req, j):
    text = req.messages[-1]["content"]
    if text.startswith("We want to evaluate"):
        if "broken plan" in text:
            return "I will judge fairly."
        return "Correctness: is it right\nClarity: is it clear"
    good_first = "[The Start of Assistant A's Answer]\ngood" in text
    if "Clarity" in text and "weird" in text:
        return "Score A: great"
    return "Because.\nScore A: 8\nScore B: 4" if good_first else "Because.\nScore A: 4\nScore B: 8"


def test_bsm_three_steps_batched_and_parsed():
    exs = [pair("x"), pair("y", q="weird broken plan?", a="bad", b="good", gold="B")]
    backend = FakeBackend(bsm_responder)
    params = SamplingParams(n=2, temperature=0.7, seed=3)
    traces = bsm.run(JudgeTask(), exs, backend, params, MethodConfig(name="bsm", n=2))
    assert backend.batches == [2, 2 * 2 + 2 * 3]  # branch; solve: x: 2 plans x 2 criteria, y: 2 x 3 defaults
    branch = backend.requests[0].messages[0]["content"]
    assert "What is 2+2?" in branch and "good answer" not in branch  # branch sees the question only
    solve = backend.requests[2]
    assert "good answer" in solve.messages[0]["content"] and "Correctness: is it right" in solve.messages[0]["content"]
    assert {r.params.seed for r in backend.requests[2:]} == {3, 4} and all(r.params.n == 1 for r in backend.requests[2:])
    x, y = traces
    assert [s.answer for s in x.samples] == ["A", "A"] and len(x.samples[0].calls) == 3
    assert "Totals: A=16, B=8" in x.samples[0].response
    assert [s.answer for s in y.samples] == ["B", "B"]
    assert "default criteria used" in y.samples[0].response  # fallback recorded, not silent
    assert "'Clarity': scores unparseable, dropped" in y.samples[0].response
    assert x.samples[0].generated_tokens > 0 and [c.step for c in x.samples[0].calls] == ["branch", "solve", "solve"]


def test_bsm_option_errors():
    with pytest.raises(ConfigError, match="max_criteria"):
        bsm.run(JudgeTask(), [pair()], FakeBackend(bsm_responder), SamplingParams(),
                MethodConfig(name="bsm", options={"max_criteria": 0}))
    with pytest.raises(ConfigError, match="max_criterion"):
        bsm.steps_of(MethodConfig(name="bsm", options={"max_criterion": 3}))
    from s2distill.tasks.coin_flip import CoinFlipTask

    with pytest.raises(ConfigError, match="task.name=judge"):
        bsm.run(CoinFlipTask(), [pair()], FakeBackend(bsm_responder), SamplingParams(), MethodConfig(name="bsm"))


# --- swap consistency and both orders -----------------------------------------------------------

def trace(eid, answers):
    return Trace(eid, "bsm", tuple(Sample(f"Verdict: {a}", a, (Call("solve", (), Completion("x", 5)),))
                                   for a in answers))


def test_swap_consistency_curator_keeps_order_invariant_verdicts_and_trains_both_orders():
    task = JudgeTask()
    exs = [pair("k"), pair("flip"), pair("t", gold=None)]
    exs = [e if e.gold is None else Example(e.id, e.question, None, e.meta) for e in exs]  # curation: unlabeled
    cur = SwapConsistency(min_agreement=0.5, min_votes=1)
    expanded = cur.expand(task, exs)
    assert [e.id for e in expanded] == ["k", "k~p0", "flip", "flip~p0", "t", "t~p0"]
    assert expanded[1].meta["response_a"] == "bad answer"
    traces = [trace("k", ["A", "A"]), trace("k~p0", ["B", "B"]),  # same verdict in both orders
              trace("flip", ["A", "A"]), trace("flip~p0", ["A", "A"]),  # position bias: always first
              trace("t", ["tie", "tie"]), trace("t~p0", ["tie", "B"])]
    pairs, rejects = cur(task, expanded, traces)
    assert [(p.example_id, p.target) for p in pairs] == [("k", "A"), ("k~p0", "B")]
    assert "bad answer" in pairs[1].messages[0]["content"].split("Assistant A's Answer]")[1][:20]
    assert {r.example_id: r.reason for r in rejects} == {"flip": "variants_disagree", "t": "tie"}
    with pytest.raises(ConfigError, match="task.name=judge"):
        from s2distill.tasks.coin_flip import CoinFlipTask

        cur(CoinFlipTask(), [], [])
    assert expand(task, [exs[0]], 1)[1].meta["variant_of"] == "k"


def test_combine_orders_flip_becomes_tie_and_metrics():
    task = JudgeTask()

    def rec(eid, pred, gold):
        return EvalRecord("s", eid, pred, gold, task.score(pred, gold), 4, 1, 0.1, {"response": pred or ""})

    first = [rec("1", "A", "A"), rec("2", "A", "B"), rec("3", "tie", "tie"), rec("4", None, "A")]
    swapped = [rec("1", "B", "B"), rec("2", "A", "A"), rec("3", "tie", "tie"), rec("4", "B", "B")]
    out = combine_orders(task, first, swapped)
    assert [r.prediction for r in out] == ["A", "tie", "tie", "tie"]
    assert [r.meta["consistent"] for r in out] == [True, False, True, False]
    assert [r.correct for r in out] == [True, False, True, False] and out[0].generated_tokens == 8
    s = summarize(out)
    assert s["accuracy"] == 0.5 and s["judge"]["inconsistent"] == 0.5
    assert s["judge"]["n_non_tie"] == 3 and s["judge"]["accuracy_non_tie"] == pytest.approx(1 / 3)
    assert s["judge"]["tokens_per_verdict"] == 4


def position_biased(req, j):
    """System 1 always says A (position bias); BSM scores the good answer higher; distilled answers right."""
    text = req.messages[-1]["content"]
    if text.endswith('"A", "B" or "tie".'):
        return "A"
    return bsm_responder(req, j)


def test_bsm_pipeline_on_fake_both_orders(tmp_path, monkeypatch):
    seen = []
    real = SwapConsistency.__call__

    def spy(self, task, examples, traces):
        seen.extend(e.gold for e in examples)
        return real(self, task, examples, traces)

    monkeypatch.setattr(SwapConsistency, "__call__", spy)
    cfg = load_checked(data={
        "name": "bsm", "backend": {"name": "fake"},
        "task": {"name": "judge", "n_train": 6, "n_eval": 8, "options": {"source": "pairs", "path": str(tmp_path / "p.jsonl")}},
        "method": {"name": "bsm", "n": 2, "max_tokens": 64, "options": {"max_criteria": 2}},
        "curate": {"name": "swap_consistency", "min_votes": 1}, "train": {"enabled": False},
        "eval": {"systems": ["system1", "system2"], "both_orders": True}})
    rows = [{"question": f"q{i}", "response_a": "good" if i % 2 else "bad", "response_b": "bad" if i % 2 else "good",
             "label": "A" if i % 2 else "B"} for i in range(28)]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    factory = lambda c, weights, trained: FakeBackend(position_biased, model_id="fake")  # noqa: E731
    report = Pipeline(cfg, run_dir=tmp_path / "run", backend_factory=factory, log=lambda s: None,
                      progress=False).run()
    r = {x["role"]: x for x in report["rows"]}
    assert r["system1"]["judge"]["inconsistent"] == 1.0 and r["system1"]["accuracy"] == 0.0
    assert r["system2"]["judge"]["inconsistent"] == 0.0 and r["system2"]["accuracy"] == 1.0
    assert r["system2"]["judge"]["tokens_per_verdict"] > r["system1"]["judge"]["tokens_per_verdict"]
    pairs = read_jsonl(tmp_path / "run" / "curate" / "pairs.jsonl")
    assert len(pairs) == 12 and sum(p["example_id"].endswith("~p0") for p in pairs) == 6  # both orders
    ev = read_jsonl(tmp_path / "run" / "eval" / "system1.jsonl")
    assert len(ev) == 8 and all(e["meta"]["orders"] == ["A", "B"] for e in ev)
    assert len(seen) == 6 and all(g is None for g in seen)  # the curator never sees a label (variants are built from these)
    with pytest.raises(ConfigError, match="both_orders"):
        load_checked(data={"backend": {"name": "fake"}, "task": {"name": "arithmetic"}, "eval": {"both_orders": True}})


# --- judge pairs from the model's own answers ------------------------------------------------------

def test_gsm8k_self_pairs_keep_questions_with_a_right_and_a_wrong_answer():
    from s2distill.judge_pairs import gsm8k_pairs

    rows = [{"question": "Q1: 2+2?", "answer": "2+2=4\n#### 4"}, {"question": "Q2: 3+3?", "answer": "#### 6"},
            {"question": "Q3: 5+5?", "answer": "#### 10"}]

    def responder(req, j):
        q = req.messages[0]["content"]
        if q.startswith("Q1"):
            return f"The answer is {4 if j % 2 else 5}."
        if q.startswith("Q2"):
            return "The answer is 6."  # always right: no pair
        return "I don't know." if j else "The answer is 11."  # wrong or unparseable: no pair

    backend = FakeBackend(responder)
    (p,) = gsm8k_pairs(backend, rows, samples=4, seed=1)
    assert backend.batches == [3] and backend.requests[0].params.n == 4
    good = p["response_a"] if p["label"] == "A" else p["response_b"]
    bad = p["response_b"] if p["label"] == "A" else p["response_a"]
    assert good == "The answer is 4." and bad == "The answer is 5." and p["question"] == "Q1: 2+2?"


def test_pairs_cli_mt_bench_consistency_only(tmp_path, shared_data):
    from s2distill.cli import main

    out = tmp_path / "mt.jsonl"
    assert main(["pairs", "mt_bench", "--data", str(shared_data / "mt_bench"), "--n", "3", "--out", str(out),
                 "--backend", "fake"]) == 0
    rows = read_jsonl(out)
    assert len(rows) == 3 and all(r["label"] is None for r in rows)
    task = JudgeTask(JudgeOptions(source="pairs", path=str(out), eval_fraction=0.5))
    exs = task.load("train", -1) + task.load("eval", -1)
    assert len(exs) == 3 and all(e.gold is None for e in exs)
    # no labels: agreement is undefined, position inconsistency is still measured
    recs = [EvalRecord("s", e.id, "A", None, False, 1, 1, 0.0, {}) for e in exs]
    s = summarize(combine_orders(task, recs, recs))
    assert s["judge"]["inconsistent"] == 1.0 and s["judge"]["n_non_tie"] == 0
    assert main(["pairs", "gsm8k", "--data", str(tmp_path / "missing"), "--out", str(out), "--backend", "fake"]) == 2
