"""RaR method, last_letter / coin_flip tasks and the input-perturbation curator (fake backend only)."""
import dataclasses
import json
import re
from collections import Counter

import pytest

from s2distill.backends.fake import FakeBackend
from s2distill.config import MethodConfig
from s2distill.errors import ConfigError, DataError
from s2distill.methods import rar
from s2distill.perturb import InputPerturbation, expand
from s2distill.tasks import parse_options
from s2distill.tasks.arithmetic import ArithmeticTask
from s2distill.tasks.coin_flip import CoinFlipOptions, CoinFlipTask, coin_answer, extract_yes_no, parse_question
from s2distill.tasks.last_letter import LastLetterOptions, LastLetterTask, extract_letters, last_letters
from s2distill.tasks.names import COMMON_US_FIRST_NAMES, load_names
from s2distill.types import Call, Completion, Example, Sample, SamplingParams, Trace

PHRASE = re.compile(r'"([^"]+)"')


def ll_gold(question: str) -> str:
    return last_letters(PHRASE.search(question).group(1).split())


def coin_gold(question: str) -> str:
    return coin_answer([f for _, f in parse_question(question)[0]])


# --- RaR method ----------------------------------------------------------------------------------

def responder(req, j):
    text = req.messages[-1]["content"]
    if text.startswith("(original)"):
        return f"Reasoning. The answer is {'nk' if 'Elon' in text else 'xy'}."
    return f"  Rephrased #{j}: what are the last letters?  "


def test_rar_two_step_prompts_batching_and_seeds():
    task = LastLetterTask()
    exs = [Example("a", 'Take the last letters of the words in "Elon Musk" and concatenate them.'),
           Example("b", 'Take the last letters of the words in "Ann Bob" and concatenate them.')]
    backend = FakeBackend(responder)
    params = SamplingParams(temperature=0.7, n=3, seed=11, max_tokens=99)
    traces = rar.run(task, exs, backend, params, MethodConfig(name="rar", n=3))
    assert backend.batches == [2, 6]  # one batched call per step; step 2: n * examples
    step1, step2 = backend.requests[:2], backend.requests[2:]
    assert step1[0].messages == ({"role": "user", "content": '"' + exs[0].question + '"\nGiven the above question, '
                                  "rephrase and expand it to help you do better answering. Maintain all information "
                                  "in the original question."},)
    assert step1[0].params == params
    assert step2[1].messages[0]["content"] == (
        "(original) " + exs[0].question + "\n(rephrased) Rephrased #1: what are the last letters?\n"
        'Use your answer for the rephrased question to answer the original question. '
        'Finish with "The answer is <letters>."')
    assert [r.params.seed for r in step2] == [11, 12, 13] * 2
    assert {(r.params.n, r.params.temperature, r.params.max_tokens) for r in step2} == {(1, 0.7, 99)}
    assert len({r.sample_key(0) for r in step2}) == 6  # every sample has its own identity
    assert [t.example_id for t in traces] == ["a", "b"] and all(t.method == "rar" for t in traces)
    assert [s.answer for s in traces[0].samples] == ["nk"] * 3 and traces[1].samples[0].answer == "xy"
    s = traces[0].samples[2]
    assert [c.step for c in s.calls] == ["rephrase", "respond"] and s.response == s.calls[1].completion.text
    assert s.calls[1].messages == step2[2].messages
    again = FakeBackend(responder)
    rar.run(task, exs, again, params, None)  # default: 2 steps; content is a function of the step-1 outputs
    assert again.requests == backend.requests


def test_rar_one_step_prompt_and_options():
    task = CoinFlipTask()
    ex = Example("a", "A coin is heads up. Ann flips the coin. Is the coin still heads up?")
    backend = FakeBackend(lambda r, j: "Rephrased... so no. The answer is no.")
    traces = rar.run(task, [ex], backend, SamplingParams(n=2), MethodConfig(name="rar", options={"steps": 1}))
    assert backend.batches == [1]
    assert backend.requests[0].messages[0]["content"] == (
        '"' + ex.question + '"\nRephrase and expand the question, and respond. '
        'Finish with "The answer is <yes or no>."')
    assert [s.answer for s in traces[0].samples] == ["no", "no"] and len(traces[0].samples[0].calls) == 1
    for bad in ({"steps": 3}, {"steps": True}, {"step": 2}):
        with pytest.raises(ConfigError, match="steps"):
            rar.run(task, [ex], backend, SamplingParams(), MethodConfig(name="rar", options=bad))


def test_rar_rephrase_backend():
    main, helper = FakeBackend(responder), FakeBackend(lambda r, j: "helper rephrasing")
    rar.run(LastLetterTask(), [Example("a", 'x "Elon Musk"')], main, SamplingParams(n=2), None, rephrase_backend=helper)
    assert helper.batches == [1] and main.batches == [2]
    assert all("(rephrased) helper rephrasing\n" in r.messages[0]["content"] for r in main.requests)


@pytest.mark.parametrize("task", [LastLetterTask(), CoinFlipTask()], ids=["last_letter", "coin_flip"])
def test_rar_few_shot_exemplars(task):
    ex = task.load("eval", 1)[0]
    shots = task.exemplars(2)
    # 2 steps: the rephrase call sees exemplar rephrasings, the respond call sees worked answers
    backend = FakeBackend(responder)
    rar.run(task, [ex], backend, SamplingParams(n=1), MethodConfig(name="rar", few_shot=2))
    first, second = backend.requests
    assert [m["role"] for m in first.messages] == ["user", "assistant"] * 2 + ["user"]
    assert first.messages[1]["content"] == task.rephrase_exemplar(shots[0][0])
    assert shots[0][0] in first.messages[0]["content"] and ex.question in first.messages[-1]["content"]
    assert second.messages[1]["content"] == shots[0][1] and second.messages[3]["content"] == shots[1][1]
    assert second.messages[0]["content"].startswith("(original) " + shots[0][0] + "\n(rephrased) You are given"
                                                    if task.name == "last_letter" else
                                                    "(original) " + shots[0][0] + "\n(rephrased) A coin starts")
    assert all(q not in ex.question for q, _ in shots)  # exemplars are never the asked question
    # 1 step: the exemplar answer shows the rephrasing, then the worked solution
    one = FakeBackend(responder)
    rar.run(task, [ex], one, SamplingParams(n=1), MethodConfig(name="rar", few_shot=2, options={"steps": 1}))
    (req,) = one.requests
    assert len(req.messages) == 5
    assert req.messages[1]["content"] == f"Rephrased question: {task.rephrase_exemplar(shots[0][0])}\n{shots[0][1]}"
    # exemplar rephrasings keep all the information: every name appears, in order
    names = [p[0] for p in parse_question(shots[0][0])[0]] if task.name == "coin_flip" else \
        PHRASE.search(shots[0][0]).group(1).split()
    reph = task.rephrase_exemplar(shots[0][0])
    assert [reph.index(n) for n in names] == sorted(reph.index(n) for n in names)


def test_rar_few_shot_needs_task_exemplar_rephrasings():
    from s2distill.tasks.arithmetic import ArithmeticTask as Arith

    with pytest.raises(ConfigError, match="few_shot=0"):
        rar.run(Arith(), [Example("a", "1+1?")], FakeBackend(responder), SamplingParams(), MethodConfig(name="rar",
                                                                                                         few_shot=2))


# --- last letter ---------------------------------------------------------------------------------

def test_builtin_names():
    assert len(COMMON_US_FIRST_NAMES) >= 150 and len(set(COMMON_US_FIRST_NAMES)) == len(COMMON_US_FIRST_NAMES)
    assert all(n.isalpha() and n[0].isupper() for n in COMMON_US_FIRST_NAMES)


def test_names_file_formats(tmp_path):
    (tmp_path / "mf.json").write_text(json.dumps({"M": ["Al", "Bo", "Cy", "Mary Ann"], "F": ["Di", "Al", "Ed"]}))
    assert load_names(str(tmp_path / "mf.json"), top_n=2) == ["Al", "Bo", "Di"]  # dedup, one-word names only
    (tmp_path / "l.json").write_text(json.dumps(["Zed", "Amy", "Jo-Ann", 3]))
    assert load_names(str(tmp_path / "l.json")) == ["Zed", "Amy"]
    with pytest.raises(DataError, match="names_file"):
        load_names(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text('{"x": 1}')
    with pytest.raises(DataError, match="bad.json"):
        load_names(str(tmp_path / "bad.json"))


def test_last_letter_generator():
    task = LastLetterTask(LastLetterOptions(n_names=4))
    train, eval_ = task.load("train", 300, seed=1), task.load("eval", 300, seed=1)
    assert train == task.load("train", 300, seed=1) and train != task.load("train", 300, seed=2)
    assert not {e.question for e in train} & {e.question for e in eval_}
    assert not {e.question for e in task.load("train", 300, seed=2)} & {e.question for e in eval_}
    shots = {q for q, _ in task.exemplars(20)}
    assert not shots & ({e.question for e in train} | {e.question for e in eval_})
    for e in train + eval_:
        names = e.meta["names"]
        assert len(names) == 4 == len(set(names)) and e.gold == last_letters(names) == ll_gold(e.question)
        assert e.question == f'Take the last letters of the words in "{" ".join(names)}" and concatenate them.'
    assert len({e.question for e in train}) == 300
    assert train[0].id == "train-0" and eval_[0].id == "eval-0"
    with pytest.raises(ConfigError):
        task.load("test", 1)


def test_last_letter_options_and_prompts():
    opts = parse_options(LastLetterOptions, {"n_names": 2, "instruction": 1}, "last_letter")
    task = LastLetterTask(opts)
    ex = task.load("eval", 1)[0]
    assert ex.question.startswith("Take the last letters of each words in")
    assert task.system1_messages(ex) == [{"role": "user", "content": ex.question +
                                          "\nAnswer with only the letters, nothing else."}]
    assert task.answer_hint == "<letters>" and task.format_target("nk") == "nk"
    with pytest.raises(ConfigError, match="n_names"):
        parse_options(LastLetterOptions, {"n_name": 2}, "last_letter")
    for bad in (LastLetterOptions(instruction=9), LastLetterOptions(n_names=0), LastLetterOptions(eval_fraction=1.0)):
        with pytest.raises(ConfigError):
            LastLetterTask(bad)
    q, worked = task.exemplars(1)[0]
    names = PHRASE.search(q).group(1).split()
    assert worked.endswith(f'Concatenating them gives "{last_letters(names)}". The answer is {last_letters(names)}.')
    assert worked.startswith(f'"{names[0]}" is spelled {"-".join(names[0])}, so its last letter is "{names[0][-1]}".')


@pytest.mark.parametrize("text,want", [
    ("The answer is nk.", "nk"),
    ('so the answer is "NK".', "nk"),
    ("The answer is: **nk**", "nk"),
    ("Answer: 'ya'", "ya"),
    ("answer is n k", "n"),
    ('The last letter of "Elon" is "n". Concatenating them gives "nk".', "nk"),
    ("nk", "nk"),
    ("  ye.\n", "ye"),
    ('The answer is <letters>. Concatenating them gives "ab".', "ab"),
    ("The answer is ab. Wait, the answer is cd.", "cd"),
    ("The answer is ab.\nFinal answer: cd", "cd"),
    ("To answer this, take the letters. The answer is ab.", "ab"),
    ("", None),
    ("123", None),
])
def test_extract_letters(text, want):
    assert extract_letters(text) == want


def test_last_letter_score():
    task = LastLetterTask()
    assert task.score("yaea", "yaeA") and task.score('"n k".', "nk") and task.score("NK", "nk")
    assert not task.score("nk", "kn") and not task.score(None, "nk") and not task.score("", "") \
        and not task.score("nk", None)


# --- coin flip -----------------------------------------------------------------------------------

@pytest.mark.parametrize("n_people", [1, 2, 4])
def test_coin_flip_generator(n_people):
    task = CoinFlipTask(CoinFlipOptions(n_people=n_people))
    for n in (40, 41):
        exs = task.load("train", n, seed=3)
        c = Counter(e.gold for e in exs)
        assert c["yes"] + c["no"] == n and abs(c["yes"] - c["no"]) == n % 2  # exactly balanced
    train, eval_ = task.load("train", 40, seed=3), task.load("eval", 40, seed=3)
    assert train == task.load("train", 40, seed=3) and train != task.load("train", 40, seed=4)
    assert not {e.question for e in train} & {e.question for e in eval_}
    assert not {q for q, _ in task.exemplars(10)} & {e.question for e in train + eval_}
    for e in train + eval_:
        people = e.meta["people"]
        assert len(people) == n_people and len({p for p, _ in people}) == n_people
        assert e.gold == coin_answer([f for _, f in people]) == coin_gold(e.question)
        assert e.question.endswith('Is the coin still heads up? Note that "flip" here means "reverse".')


def test_coin_flip_flips_are_fair():
    exs = CoinFlipTask(CoinFlipOptions(n_people=4)).load("train", 2000)
    rate = sum(f for e in exs for _, f in e.meta["people"]) / (4 * len(exs))
    assert 0.47 < rate < 0.53


def test_coin_flip_prompts_and_exemplars():
    task = CoinFlipTask(CoinFlipOptions(instruction=1))
    ex = task.load("eval", 1)[0]
    assert ex.question.endswith(".  Is the coin still heads up? Flip means reverse.")  # RaR's double space
    assert task.system1_messages(ex)[0]["content"] == ex.question + "\nAnswer with only yes or no."
    assert task.answer_hint == "<yes or no>"
    for q, worked in task.exemplars(4):
        assert worked.startswith("The coin starts heads up.") and worked.endswith(f"The answer is {coin_gold(q)}.")


@pytest.mark.parametrize("text,want", [
    ("The answer is yes.", "yes"),
    ("No, the coin is not heads up.", "no"),
    ("Yes. Wait... Final answer: no", "no"),
    ("The answer is yes. Answer: no", "no"),
    ("To answer yes or no: the coin was flipped once. The answer is no", "no"),
    ('The answer is "No".', "no"),
    ("The answer is **yes**", "yes"),
    ("It was flipped twice, so yes, it is heads up. Is there any doubt? no", "no"),
    ("**Yes**", "yes"),
    ("The answer is <yes or no>. It is heads up, yes.", "yes"),
    ("Nothing to say", None),
    ("", None),
])
def test_extract_yes_no(text, want):
    assert extract_yes_no(text) == want


def test_coin_score():
    task = CoinFlipTask()
    assert task.score("Yes.", "yes") and task.score("no", "No") and not task.score("yes", "no")
    assert not task.score(None, "yes") and not task.score("maybe", "yes")


# --- published files -----------------------------------------------------------------------------

@pytest.mark.parametrize("name,size,k", [("rar/last_letter_concatenation_gpt-4.json", 219, 2),
                                         ("rar/last_letter_concatenation4_gpt-4.json", 220, 4),
                                         ("zero_shot_cot/last_letters.json", 500, 4)])
def test_last_letter_published(shared_data, name, size, k):
    task = LastLetterTask(LastLetterOptions(source=str(shared_data / name)))
    train, eval_ = task.load("train", -1), task.load("eval", -1)
    assert len(train) + len(eval_) == size and abs(len(train) - len(eval_)) <= 1
    assert not {e.id for e in train} & {e.id for e in eval_}
    assert task.load("eval", 5, seed=1) != task.load("eval", 5, seed=2)
    assert {e.id for e in task.load("eval", -1, seed=7)} == {e.id for e in eval_}  # seed never moves the cut
    exs = train + eval_
    assert Counter(len(e.meta["phrase"].split()) for e in exs).most_common(1)[0][0] == k
    # the published gold is the per-name answer (a few names have two words); most match the word rule
    assert sum(e.gold == ll_gold(e.question) for e in exs) >= size - 15
    assert all(task.score(task.extract(f"The answer is {e.gold}."), e.gold) for e in exs)
    if name.startswith("rar/"):
        assert all(e.meta["refined_question"] for e in exs)


@pytest.mark.parametrize("name,size", [("rar/coin_val_gpt-4.json", 220), ("zero_shot_cot/coin_flip.json", 500),
                                       ("rar/raw_coin_val.json", 1333)])
def test_coin_flip_published(shared_data, name, size):
    task = CoinFlipTask(CoinFlipOptions(source=str(shared_data / name)))
    exs = task.load("train", -1) + task.load("eval", -1)
    assert len(exs) == size and len({e.id for e in exs}) == size
    assert all(e.gold == coin_gold(e.question) for e in exs)
    if name == "rar/raw_coin_val.json":  # RaR's own preprocessing: coin_val questions come out verbatim
        rar_qs = {r["question"] for r in json.loads((shared_data / "rar/coin_val_gpt-4.json").read_text())}
        assert rar_qs <= {e.question for e in exs}


@pytest.mark.parametrize("content,match", [
    ("{not json", "invalid JSON"),
    ("[]", "non-empty"),
    ('[{"question": "Take \\"Ann Bo\\"", "answer": "no"}, 5]', "record 1: expected a JSON object"),
    ('{"examples": [{"question": "Take \\"Ann Bo\\"", "answer": "no"}, {"question": "q"}]}', "record 1: missing"),
    ('[{"question": "no quotes here", "answer": "ab"}]', "record 0: no quoted"),
])
def test_last_letter_malformed_file(tmp_path, content, match):
    p = tmp_path / "ll.json"
    p.write_text(content)
    with pytest.raises(DataError, match=match) as e:
        LastLetterTask(LastLetterOptions(source=str(p))).load("train", 5)
    assert str(p) in str(e.value)


def test_coin_flip_malformed_file(tmp_path):
    p = tmp_path / "coin.json"
    p.write_text(json.dumps([{"question": "A coin is heads up. Al flips the coin. Is it up?", "answer": "no"},
                             {"question": "Take the last letters.", "answer": "yes"}]))
    with pytest.raises(DataError, match=r"coin.json record 1: not a coin-flip"):
        CoinFlipTask(CoinFlipOptions(source=str(p))).load("eval", 5)
    with pytest.raises(DataError, match="not found"):
        CoinFlipTask(CoinFlipOptions(source=str(tmp_path / "nope.json"))).load("eval", 5)


# --- perturbations -------------------------------------------------------------------------------

def test_last_letter_perturbations_preserve_answer():
    task = LastLetterTask(LastLetterOptions(n_names=4))
    for ex in task.load("train", 20):
        variants = [task.perturb(ex, i) for i in range(task.n_perturbations)]
        assert len({v.question for v in variants} | {ex.question}) == task.n_perturbations + 1
        for v in variants:
            assert PHRASE.search(v.question).group(1) == " ".join(ex.meta["names"])  # same names, same order
            assert ll_gold(v.question) == ex.gold and v.gold == ex.gold and v.id == ex.id
    with pytest.raises(ConfigError):
        task.perturb(ex, task.n_perturbations)


def test_coin_flip_perturbations_preserve_answer():
    for opts in (CoinFlipOptions(n_people=4), CoinFlipOptions(n_people=1, instruction=1)):
        task = CoinFlipTask(opts)
        for ex in task.load("train", 20):
            variants = [task.perturb(ex, i) for i in range(task.n_perturbations)]
            assert len({v.question for v in variants} | {ex.question}) == task.n_perturbations + 1
            for v in variants:
                assert coin_gold(v.question) == ex.gold
                assert sorted(map(tuple, v.meta["people"])) == sorted(map(tuple, ex.meta["people"]))
    ex = CoinFlipTask(CoinFlipOptions(n_people=3)).load("eval", 1)[0]
    names = [n for n, _ in ex.meta["people"]]
    assert [n for n, _ in parse_question(CoinFlipTask().perturb(ex, 0).question)[0]] == names[::-1]


# --- input-perturbation curator ------------------------------------------------------------------

def tr(eid, answers):
    return Trace(eid, "rar", tuple(Sample(f"The answer is {a}.", a, (Call("respond", (), Completion("x", 3)),))
                                   for a in answers))


def test_expand_ids_and_meta():
    task = CoinFlipTask()
    exs = task.load("train", 2)
    out = expand(task, exs, 2)
    assert [e.id for e in out] == ["train-0", "train-0~p0", "train-0~p1", "train-1", "train-1~p0", "train-1~p1"]
    assert out[2].meta["variant_of"] == "train-0" and out[2].meta["variant"] == 1 and out[0] is exs[0]
    with pytest.raises(ConfigError, match="n_variants"):
        expand(task, exs, task.n_perturbations + 1)
    with pytest.raises(ConfigError, match="self_consistency"):
        expand(ArithmeticTask(), ArithmeticTask().load("train", 1), 1)
    with pytest.raises(ConfigError, match="perturb"):
        InputPerturbation()(ArithmeticTask(), [], [])


def _scenario(task):
    exs = expand(task, task.load("train", 7), 2)
    ids = [e.id for e in exs if "variant_of" not in e.meta]
    plan = {  # per original: answers of original, ~p0, ~p1
        ids[0]: (["yes", "yes", "no"], ["yes"], ["yes", "yes"]),  # keep
        ids[1]: (["yes"], ["no"], ["yes"]),  # variants_disagree
        ids[2]: ([None, None], ["yes"], ["yes"]),  # no_parseable_answer
        ids[3]: (["yes", "no"], ["yes"], ["yes"]),  # tie
        ids[4]: (["no", None, None], ["no"], ["no"]),  # low_agreement (1/3 < 0.5)
        ids[5]: (["no"], ["no"], None),  # no_trace (~p1 missing)
        ids[6]: (["no", "no"], ["no", None], ["no"]),  # keep (agreement 0.5)
    }
    traces = [tr(i + suffix, a) for i, answers in plan.items()
              for suffix, a in zip(("", "~p0", "~p1"), answers) if a is not None]
    return exs, ids, traces


def test_input_perturbation_keep_and_reject_reasons():
    task = CoinFlipTask()
    exs, ids, traces = _scenario(task)
    pairs, rejects = InputPerturbation(min_agreement=0.5, n_variants=2)(task, exs, traces)
    assert [(p.example_id, p.target) for p in pairs] == [(ids[0], "yes"), (ids[6], "no")]
    assert pairs[0].messages == tuple(task.system1_messages(exs[0]))  # the ORIGINAL System 1 prompt
    assert [v["id"] for v in pairs[0].meta["variants"]] == [ids[0], ids[0] + "~p0", ids[0] + "~p1"]
    assert {r.example_id: r.reason for r in rejects} == {
        ids[1]: "variants_disagree", ids[2]: "no_parseable_answer", ids[3]: "tie", ids[4]: "low_agreement",
        ids[5]: "no_trace"}
    originals = [e for e in exs if "variant_of" not in e.meta]
    assert InputPerturbation(n_variants=2)(task, originals, traces) == (pairs, rejects)  # originals only is fine
    pairs, _ = InputPerturbation(min_votes=2, n_variants=2)(task, exs, traces)
    assert pairs == []  # ~p0 of ids[0] has one vote
    pairs, _ = InputPerturbation(n_variants=1)(task, exs, traces)
    assert [p.example_id for p in pairs] == [ids[0], ids[5], ids[6]]


def test_input_perturbation_never_reads_gold():
    task = LastLetterTask()
    exs = expand(task, task.load("train", 6), 2)
    traces = [tr(e.id, [e.gold, e.gold, "zz"] if int(e.id.split("-")[1][0]) % 2 else ["ab", "cd"]) for e in exs]
    curator = InputPerturbation(n_variants=2)
    outs = [curator(task, x, traces) for x in (exs, [dataclasses.replace(e, gold="qq") for e in exs],
                                               [e.unlabeled() for e in exs])]
    assert outs[0] == outs[1] == outs[2] and outs[0][0] and outs[0][1]
