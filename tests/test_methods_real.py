"""RaR (1- and 2-step, few-shot) and BSM against a real llama-server with the embedded model."""
import pytest
from conftest import requires_server

from s2distill.config import MethodConfig
from s2distill.methods import bsm, rar
from s2distill.tasks.coin_flip import CoinFlipOptions, CoinFlipTask
from s2distill.tasks.judge import JudgeTask
from s2distill.tasks.last_letter import LastLetterTask
from s2distill.types import Example, SamplingParams

pytestmark = [requires_server, pytest.mark.server]



def test_rar_two_step_and_one_step_real(backend):
    task = LastLetterTask()
    exs = task.load("eval", 2)
    params = SamplingParams(max_tokens=96, temperature=0.7, n=2, seed=1)
    traces = rar.run(task, exs, backend, params, MethodConfig(name="rar", n=2, few_shot=1))
    for t in traces:
        assert len(t.samples) == 2
        for s in t.samples:
            reph, resp = s.calls
            assert reph.step == "rephrase" and reph.completion.text.strip() and reph.completion.completion_tokens > 0
            # the respond call saw the model's own rephrasing
            assert reph.completion.text.strip()[:40] in resp.messages[-1]["content"]
            assert s.answer == task.extract(s.response)
    coin = CoinFlipTask(CoinFlipOptions(n_people=1))
    (t,) = rar.run(coin, coin.load("eval", 1), backend, SamplingParams(max_tokens=128, n=1),
                   MethodConfig(name="rar", options={"steps": 1}))
    assert len(t.samples[0].calls) == 1 and t.samples[0].generated_tokens > 0


def test_bsm_real(backend):
    task = JudgeTask()
    ex = Example("p", "What is 17 + 25?", "A", {"response_a": "17 + 25 = 42. The answer is 42.",
                                                "response_b": "17 + 25 = 32. The answer is 32."})
    (t,) = bsm.run(task, [ex], backend, SamplingParams(max_tokens=96, temperature=0.0, n=1),
                   MethodConfig(name="bsm", options={"max_criteria": 2}))
    s = t.samples[0]
    assert s.calls[0].step == "branch" and 1 <= len(s.calls) - 1 <= 3  # parsed criteria or the 3 defaults
    assert all(c.step == "solve" and "17 + 25 = 32" in c.messages[0]["content"] for c in s.calls[1:])
    assert "Verdict:" in s.response and s.answer in ("A", "B", "tie", None)
    assert s.generated_tokens > 0


def test_mt_bench_self_pairs_real(backend):
    from s2distill.judge_pairs import SETTINGS, mt_bench_pairs

    q = {"question_id": 81, "category": "writing", "turns": ["Name two colours of the rainbow.", "And two more?"]}
    (p,) = mt_bench_pairs(backend, [q], max_tokens=32)
    assert p["label"] is None and p["question"] == q["turns"][0]
    assert p["response_a"].strip() and p["response_b"].strip()
    assert len(SETTINGS) == 2 and SETTINGS[0][1] == 0.0  # concise+greedy vs detailed+sampled
