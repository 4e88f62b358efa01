import dataclasses

import pytest

from s2distill.curate import NoFilter, SelfConsistency, majority_vote, plurality_answer
from s2distill.evaluate import score_traces, summarize, wilson_ci
from s2distill.tasks.arithmetic import ArithmeticTask
from s2distill.types import Call, Completion, Example, Sample, Trace


def trace(eid, answers, tokens=10):
    return Trace(eid, "cot", tuple(Sample(f"The answer is {a}", a, (Call("reason", (), Completion("x", tokens)),))
                                   for a in answers))


def test_majority_vote_counts_unparseable_and_ties():
    v = majority_vote(["5", "5", None, "7"])
    assert v.winner == "5" and v.top == 2 and v.n == 4 and v.unparseable == 1 and v.agreement == 0.5
    t = majority_vote(["5", "7", None])
    assert t.winner is None and t.tie
    e = majority_vote([None, None])
    assert e.winner is None and not e.votes and not e.tie


def test_plurality_answer_breaks_ties_by_first_occurrence():
    assert plurality_answer(["7", "5", "5", "7"]) == "7"
    assert plurality_answer([None, "3"]) == "3"
    assert plurality_answer([None]) is None


def test_self_consistency_keeps_and_rejects_with_reasons():
    task = ArithmeticTask()
    exs = [Example(str(i), f"q{i}") for i in range(5)]
    traces = [trace("0", ["4", "4", "4", "9"]), trace("1", ["4", "9", "4", "9"]), trace("2", ["1", "2", "3", None]),
              trace("3", [None] * 4)]
    pairs, rejects = SelfConsistency(min_agreement=0.75, min_votes=2)(task, exs, traces)
    assert [(p.example_id, p.target) for p in pairs] == [("0", "4")]
    assert pairs[0].meta["votes"] == {"4": 3, "9": 1} and pairs[0].messages == tuple(task.system1_messages(exs[0]))
    assert {r.example_id: r.reason for r in rejects} == {"1": "tie", "2": "tie", "3": "no_parseable_answer",
                                                         "4": "no_trace"}
    pairs, rejects = SelfConsistency(min_agreement=0.8, min_votes=2)(task, exs[:1], traces[:1])
    assert not pairs and rejects[0].reason == "low_agreement"


def test_no_filter_takes_first_sample():
    task = ArithmeticTask()
    pairs, rejects = NoFilter()(task, [Example("a", "q"), Example("b", "q")], [trace("a", ["3", "4"]),
                                                                               trace("b", [None, "4"])])
    assert [p.target for p in pairs] == ["3"] and rejects[0].reason == "no_parseable_answer"


@pytest.mark.parametrize("curator", [SelfConsistency(min_agreement=0.5), NoFilter()])
def test_curation_ignores_gold(curator):
    """Curation output is identical whatever the gold labels say: it never reads them."""
    task = ArithmeticTask()
    exs = task.load("train", 10)
    traces = [trace(e.id, [e.gold, e.gold, "1"]) for e in exs]
    wrong = [dataclasses.replace(e, gold="-999") for e in exs]
    none = [e.unlabeled() for e in exs]
    outs = [curator(task, x, traces) for x in (exs, wrong, none)]
    assert outs[0] == outs[1] == outs[2]


def test_wilson_interval():
    lo, hi = wilson_ci(9, 10)
    assert 0.59 < lo < 0.6 and 0.98 < hi < 0.99
    assert wilson_ci(0, 0) == (0.0, 0.0)
    lo, hi = wilson_ci(0, 20)
    assert lo == 0.0 and 0.16 < hi < 0.17


def test_score_traces_single_and_vote_sum_costs():
    task = ArithmeticTask()
    exs = [Example("a", "q", gold="4"), Example("b", "q", gold="9")]
    traces = [trace("a", ["4", "5", "5"], tokens=10), trace("b", ["9", "9", "1"], tokens=20)]
    single = score_traces("cot", task, exs, traces)
    assert [r.correct for r in single] == [True, True] and [r.generated_tokens for r in single] == [10, 20]
    voted = score_traces("cot_maj", task, exs, traces, vote=True)
    assert [r.correct for r in voted] == [False, True]
    assert [r.generated_tokens for r in voted] == [30, 60] and [r.calls for r in voted] == [3, 3]
    s = summarize(voted, wall_s=4.0)
    assert s["n"] == 2 and s["accuracy"] == 0.5 and s["mean_generated_tokens"] == 45 and s["wall_s_per_answer"] == 2.0


@pytest.mark.parametrize("system_prompt", ["", "Be brief.", None])
def test_the_distilled_model_is_trained_on_the_prompt_it_is_asked_with(system_prompt):
    """One System 1 prompt in both places: a curated pair's messages are the messages the direct method sends
    (System 1 and the distilled model), led by ``task.system_prompt`` ("" by default: an empty system turn, so a
    chat template's default system prompt is not added; null: no system turn)."""
    from s2distill.backends.fake import FakeBackend
    from s2distill.config import load_config
    from s2distill.methods import direct
    from s2distill.tasks import make_task
    from s2distill.types import SamplingParams

    cfg = load_config(data={"task": {"name": "arithmetic", "system_prompt": system_prompt}})
    task = make_task(cfg.task)
    ex = task.load("train", 1)[0]
    fake = FakeBackend(lambda req, j: "7")
    direct.run(task, [ex], fake, SamplingParams())
    (pair,), _ = SelfConsistency(min_agreement=0.5)(task, [ex], [trace(ex.id, ["7", "7"])])
    assert list(pair.messages) == list(fake.requests[0].messages)
    lead = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    assert list(pair.messages[:-1]) == lead and pair.messages[-1]["role"] == "user"
