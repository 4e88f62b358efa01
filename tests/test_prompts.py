"""method.options.prompts.<step>: every System 2 prompt replaceable from config, placeholders checked at
validation time, and the defaults byte-identical to before (the sample cache keys of committed runs)."""
from __future__ import annotations

import pytest

from s2distill.backends.fake import FakeBackend
from s2distill.config import MethodConfig
from s2distill.checks import load_checked
from s2distill.errors import ConfigError
from s2distill.methods import bsm, cot, rar, s2a
from s2distill.tasks.arithmetic import ArithmeticTask
from s2distill.tasks.coin_flip import CoinFlipTask
from s2distill.tasks.judge import JudgeTask
from s2distill.types import Example, SamplingParams, stable_hash


def _requests(run, task, exs, cfg):
    b = FakeBackend(lambda r, j: "Score A: 7\nScore B: 3\nCorrectness: is it right\nThe answer is 3.")
    run(task, exs, b, SamplingParams(n=2, temperature=0.7, seed=5), cfg)
    return b.requests


def _keys(run, task, exs, cfg):
    return stable_hash([r.sample_key(0, "m") for r in _requests(run, task, exs, cfg)], 24)


# Hashes of every request's cache key, computed with the code from before prompts were configurable.
GOLDEN = {"cot0": "cc1effd76083192e5541f84e", "cot2": "4b43582c699ee0154337b3f5", "rar1": "7579527e3a39daf9f5a15295",
          "rar1fs": "125892f78cd4c4b3748c8396", "rar2": "3b72c340a66a65364a92af46", "s2a": "934ef6881d7c294264b76b8a",
          "bsm": "b2e01b4d83d930aedc305836"}
JUDGE_EX = [Example(id="j1", question="Which is better?", meta={"response_a": "x", "response_b": "y"})]


def test_default_prompts_give_the_same_requests_as_before():
    ar, cf = ArithmeticTask(), CoinFlipTask()
    exs, cexs = ar.load("eval", 2, 0), cf.load("eval", 2, 0)
    got = {
        "cot0": _keys(cot.run, ar, exs, MethodConfig(few_shot=0)),
        "cot2": _keys(cot.run, ar, exs, MethodConfig(few_shot=2)),
        "rar1": _keys(rar.run, cf, cexs, MethodConfig(few_shot=0, options={"steps": 1})),
        "rar1fs": _keys(rar.run, cf, cexs, MethodConfig(few_shot=2, options={"steps": 1})),
        "rar2": _keys(rar.run, cf, cexs, MethodConfig(few_shot=2)),
        "s2a": _keys(s2a.run, ar, exs, MethodConfig()),
        "bsm": _keys(bsm.run, JudgeTask(), JUDGE_EX, MethodConfig(options={"max_criteria": 2})),
    }
    assert got == GOLDEN


@pytest.mark.parametrize("method,step,template,marker,run,task", [
    ("cot", "zero_shot", "Q: {question}\nReason, then say The answer is {hint}.", "Reason, then say", cot.run,
     ArithmeticTask()),
    ("rar", "rephrase", "Reword: {question}", "Reword: ", rar.run, CoinFlipTask()),
    ("rar", "respond", "{question} / {rephrased} -> The answer is {hint}.", " -> The answer is <yes or no>.", rar.run,
     CoinFlipTask()),
    ("s2a", "rewrite", "Strip opinions from: {text}", "Strip opinions from: ", s2a.run, ArithmeticTask()),
    ("s2a", "answer", "{context}Q: {question}", "Q: ", s2a.run, ArithmeticTask()),
])
def test_an_overridden_prompt_reaches_the_model(method, step, template, marker, run, task):
    exs = task.load("eval", 1, 0)
    reqs = _requests(run, task, exs, MethodConfig(name=method, options={"prompts": {step: template}}))
    assert any(marker in r.messages[-1]["content"] for r in reqs)
    cfg = load_checked(data={"backend": {"name": "fake"}, "method": {"name": method, "options": {"prompts": {step: template}}},
                            "task": {"name": "coin_flip" if method == "rar" else "arithmetic"}})
    assert cfg.method.options["prompts"][step] == template


def test_bsm_prompts_override():
    reqs = _requests(bsm.run, JudgeTask(), JUDGE_EX, MethodConfig(options={
        "max_criteria": 2, "prompts": {"branch": "Criteria for: {question}", "solve": "{pair}\nJudge on {name} only."}}))
    assert reqs[0].messages[0]["content"] == "Criteria for: Which is better?"
    solve = [r.messages[0]["content"] for r in reqs[1:]]
    assert solve and all(s.startswith("[User Question]") and s.endswith(" only.") and "Judge on " in s for s in solve)


def test_cot_few_shot_template_override():
    reqs = _requests(cot.run, ArithmeticTask(), ArithmeticTask().load("eval", 1, 0),
                     MethodConfig(few_shot=1, options={"prompts": {"few_shot": "Problem: {question}"}}))
    assert reqs[0].messages[0]["content"].startswith("Problem: ")  # the exemplar turn
    assert reqs[0].messages[-1]["content"].startswith("Problem: ")


@pytest.mark.parametrize("method,prompts,needle", [
    ("cot", {"zero_shot": "Think step by step."}, "method.options.prompts.zero_shot lacks {question}; it must use "
                                                  "{question} and may use {hint}"),
    ("rar", {"respond": "{question}"}, "method.options.prompts.respond lacks {rephrased}"),
    ("s2a", {"rewrite": "{question}"}, "method.options.prompts.rewrite uses unknown placeholder(s) {question}"),
    ("cot", {"zero_shot": "{question} {answr_hint}"}, "unknown placeholder(s) {answr_hint}"),
    ("cot", {"zero_shot": "{question} {"}, "not a valid template"),
    ("cot", {"zero_shot": "{question} {0}"}, "positional placeholder"),
    ("cot", {"zeroshot": "{question}"}, "unknown prompt method.options.prompts.zeroshot for method 'cot'; did you mean "
                                        "'zero_shot'?"),
    ("cot", {"zero_shot": 3}, "expected a template string"),
    ("direct", {"answer": "{question}"}, "method 'direct' has no prompts to override"),
])
def test_bad_prompt_is_a_validation_error_naming_the_step(method, prompts, needle):
    task = "coin_flip" if method == "rar" else "arithmetic"
    with pytest.raises(ConfigError) as e:
        load_checked(data={"backend": {"name": "fake"}, "task": {"name": task},
                          "method": {"name": method, "options": {"prompts": prompts}}})
    assert needle in str(e.value)


def test_unknown_cot_option_is_rejected():
    with pytest.raises(ConfigError, match="unknown option method.options.promts for method 'cot'"):
        cot.run(ArithmeticTask(), [], FakeBackend(), SamplingParams(), MethodConfig(options={"promts": {}}))
