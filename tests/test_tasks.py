import json
import random
from collections import Counter

import pytest

from s2distill.errors import ConfigError, DataError
from s2distill.tasks.arithmetic import ArithmeticOptions, ArithmeticTask, make_problem
from s2distill.tasks.gsm8k import GSM8KOptions, GSM8KTask, gold_from_solution
from s2distill.tasks.numeric import extract_number, normalize_number


@pytest.mark.parametrize("raw,want", [("1,234", "1234"), ("$5", "5"), ("7.0", "7"), ("7.50", "7.5"), ("-3", "-3"),
                                      ("12.", "12"), (" 42 ", "42"), ("abc", None), ("", None), (None, None)])
def test_normalize_number(raw, want):
    assert normalize_number(raw) == want


@pytest.mark.parametrize("text,want", [
    ("3 + 4 = 7. The answer is 7.", "7"),
    ("First 2, then 5. So the answer is $1,250.00", "1250"),
    ("Work: 10 * 2 = 20\n#### 20", "20"),
    ("\\boxed{36} and then 12", "36"),
    ("I think 5, no wait, 8", "8"),
    ("Answer: 15 apples", "15"),
    ("no digits here", None),
])
def test_extract_number(text, want):
    assert extract_number(text) == want


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_arithmetic_answers_are_exact(depth):
    task = ArithmeticTask(ArithmeticOptions(depth=depth, ops=["add", "sub", "mul", "div"]))
    for ex in task.load("train", 200, seed=3):
        steps = ex.meta["steps"]
        assert len(steps) == depth
        value = None
        for s in steps:  # replay the worked steps: each one must be true arithmetic
            lhs, rhs = s.split(" = ")
            a, op, b = lhs.split(" ")
            assert value is None or int(a) == value
            value = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b), "/": int(a) // int(b)}[op]
            if op == "/":
                assert int(a) % int(b) == 0
            assert value == int(rhs) and value >= 0
        assert ex.gold == str(value)


def test_arithmetic_is_seeded_and_splits_disjoint():
    t = ArithmeticTask(ArithmeticOptions(depth=2))
    a, b = t.load("train", 50, seed=1), t.load("train", 50, seed=1)
    assert [e.question for e in a] == [e.question for e in b]
    assert [e.question for e in t.load("train", 50, seed=2)] != [e.question for e in a]
    ev = t.load("eval", 50, seed=1)
    assert not {e.question for e in ev} & {e.question for e in a}
    assert len({e.question for e in ev}) == 50


def test_arithmetic_op_distribution_and_options():
    rng = random.Random(0)
    o = ArithmeticOptions(depth=1, ops=["add", "sub", "mul"])
    ops = Counter()
    for _ in range(600):
        _, _, steps = make_problem(rng, o)
        ops[steps[0].split(" ")[1]] += 1
    assert set(ops) == {"+", "-", "*"} and min(ops.values()) > 120  # roughly uniform
    with pytest.raises(ConfigError, match="depth"):
        ArithmeticTask(ArithmeticOptions(depth=9))
    with pytest.raises(ConfigError, match="ops"):
        ArithmeticTask(ArithmeticOptions(ops=["pow"]))


def test_arithmetic_scoring_and_prompt():
    t = ArithmeticTask()
    ex = t.load("eval", 1)[0]
    msgs = t.system1_messages(ex)
    assert msgs[-1]["role"] == "user" and ex.question in msgs[-1]["content"]
    assert t.score(t.extract(f"The answer is {ex.gold}."), ex.gold)
    assert not t.score(t.extract("The answer is 100000."), ex.gold)
    assert not t.score(None, ex.gold)


def test_gsm8k_local(shared_data):
    t = GSM8KTask(GSM8KOptions(source=str(shared_data / "gsm8k")))
    ev = t.load("eval", 30, seed=0)
    assert len(ev) == 30 and all(e.gold is not None for e in ev)
    assert ev == t.load("eval", 30, seed=0)
    assert len(t.load("eval", -1)) == 1319
    shots = t.exemplars(2)
    assert all("<<" not in w and w.endswith(".") and "The answer is" in w for _, w in shots)
    train_questions = {e.question for e in t.load("train", -1)}
    assert not {q for q, _ in t.exemplars(8)} & train_questions  # exemplars are never train inputs
    with pytest.raises(ConfigError, match="up to 8"):
        t.exemplars(9)


def test_gsm8k_gold_parsing():
    assert gold_from_solution("a\nb <<2*3=6>>6\n#### 1,080") == "1080"
    assert gold_from_solution("no marker") is None


def test_gsm8k_malformed_rows_name_file_and_line(tmp_path):
    d = tmp_path / "g"
    d.mkdir()
    (d / "test.jsonl").write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n{not json\n")
    with pytest.raises(DataError, match=r"test.jsonl line 2: invalid JSON"):
        GSM8KTask(GSM8KOptions(source=str(d))).load("eval", 5)
    (d / "test.jsonl").write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(DataError, match=r'line 1: missing field "answer"'):
        GSM8KTask(GSM8KOptions(source=str(d))).load("eval", 5)
    (d / "test.jsonl").write_text(json.dumps({"question": "q", "answer": "42"}) + "\n")
    with pytest.raises(DataError, match=r"row 1: answer has no '#### <number>'"):
        GSM8KTask(GSM8KOptions(source=str(d))).load("eval", 5)
    with pytest.raises(DataError, match="not found"):
        GSM8KTask(GSM8KOptions(source=str(tmp_path / "missing.jsonl"))).load("eval", 5)


def test_hub_rows_errors_name_the_offline_fix_and_rows_come_back(monkeypatch):
    import sys
    import types

    from s2distill.tasks import hub_rows

    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(ConfigError, match="pip install datasets.*or use a local file"):
        hub_rows("org/ds", "test", offline_fix="use a local file")
    calls = []

    def load_dataset(hf_id, config, split):
        calls.append((hf_id, config, split))
        if hf_id == "org/missing":
            raise FileNotFoundError("no such dataset")
        return [{"q": "x"}, {"q": "y"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(DataError, match="'org/missing' split 'test'.*offline\\? use a local file"):
        hub_rows("org/missing", "test", offline_fix="use a local file")
    assert hub_rows("org/ds", "validation", "rc", offline_fix="-") == [{"q": "x"}, {"q": "y"}]
    assert calls[-1] == ("org/ds", "rc", "validation")


def test_one_source_resolver_for_gsm8k_triviaqa_and_judge(tmp_path, monkeypatch):
    """tasks.common.resolve_source: a local file, a directory's split file, a local dataset copy or a hub id;
    a missing path is each task's own error."""
    from s2distill.tasks.common import resolve_source
    from s2distill.tasks.judge import JudgeOptions, JudgeTask
    from s2distill.tasks.triviaqa import TriviaQAOpinionTask, TriviaQAOptions

    f = tmp_path / "rows.jsonl"
    f.write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "test.jsonl").write_text(f.read_text())
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "README.md").write_text("a dataset card\n")
    (tmp_path / "empty").mkdir()
    res = lambda s, **kw: resolve_source(s, option="task.options.x", not_found="gone: {path}", **kw)  # noqa: E731
    assert res(str(f)) == f and res(str(tmp_path / "d"), split_file="test.jsonl") == tmp_path / "d" / "test.jsonl"
    assert res(str(tmp_path / "copy"), split_file="test.jsonl") == str(tmp_path / "copy")  # read like a hub id
    assert res(str(tmp_path / "empty")) == str(tmp_path / "empty") and res("org/ds") == "org/ds" == res("org/ds")
    assert res("gsm8k") == "gsm8k"
    with pytest.raises(DataError, match="empty/test.jsonl not found; task.options.x must hold test.jsonl"):
        res(str(tmp_path / "empty"), split_file="test.jsonl")
    for missing in (str(tmp_path / "nope"), "./nope", "~/nope-s2d", "nope.jsonl", "org/nope.json"):
        with pytest.raises(DataError, match="^gone: .*nope"):
            res(missing)
    # each task keeps its own wording
    with pytest.raises(DataError, match="^GSM8K file not found: .*nope.jsonl$"):
        GSM8KTask(GSM8KOptions(source="nope.jsonl")).load("eval", 1)
    with pytest.raises(DataError, match="^task.options.path not found: .*nope.jsonl .*mandarjoshi/trivia_qa"):
        TriviaQAOpinionTask(TriviaQAOptions(path=str(tmp_path / "nope.jsonl"))).load("eval", 1)
    with pytest.raises(DataError, match="^task.options.path not found: .*nope.jsonl$"):
        JudgeTask(JudgeOptions(source="mt_bench_human", path=str(tmp_path / "nope.jsonl"))).load("eval", 1)
    assert [e.gold for e in GSM8KTask(GSM8KOptions(source=str(f))).load("eval", -1)] == ["1"]
    hub = []
    monkeypatch.setattr("s2distill.tasks.judge.hub_rows", lambda hf_id, split, **kw: hub.append((hf_id, split)) or [])
    JudgeTask(JudgeOptions(source="oasst2", path=str(tmp_path / "copy"))).load("eval", 1)
    JudgeTask(JudgeOptions(source="oasst2")).load("eval", 1)
    assert hub == [(str(tmp_path / "copy"), "validation"), ("OpenAssistant/oasst2", "validation")]


def test_split_schemes_are_disjoint_cover_the_rows_and_are_named():
    from s2distill.tasks.splits import SCHEMES, split_indices

    ids = [f"row{i}" for i in range(50)]
    for scheme in SCHEMES:
        kw = dict(scheme=scheme, ids=ids, eval_fraction=0.3, split_key="k", order_key="o", seed=3)
        train, ev = split_indices("train", -1, **kw), split_indices("eval", -1, **kw)
        if scheme == "source":  # the source's own split: every row on either side
            assert sorted(train) == sorted(ev) == list(range(50))
            continue
        assert not set(train) & set(ev) and sorted(train + ev) == list(range(50)) and 5 < len(ev) < 25, scheme
        assert split_indices("eval", 4, **kw) == ev[:4]
    assert split_indices("train", -1, scheme="source", n_rows=10, skip=8, order_key="o") in ([8, 9], [9, 8])
    with pytest.raises(ConfigError, match="unknown split scheme 'hash'; schemes: fixed_shuffle, id_hash"):
        split_indices("train", 1, scheme="hash", ids=ids)


def test_eval_data_reads_jsonl_with_the_shared_reader_and_its_own_wording(tmp_path):
    from s2distill.eval_data import EXAMPLE_LINE, read_examples
    from s2distill.tasks.common import read_jsonl_rows

    p = tmp_path / "in.jsonl"
    for text, want in (('{"question": "q"}\n{"id": 2, \n', f"{p}, line 2: not valid JSON (Expecting property name "
                        f"enclosed in double quotes); fix: one JSON object per line, e.g. {EXAMPLE_LINE}"),
                       ('[1]\n', f"{p}, line 1: expected a JSON object, got list; fix: one object per line, e.g. "
                        f"{EXAMPLE_LINE}")):
        p.write_text(text)
        with pytest.raises(DataError) as e:
            read_examples(p)
        assert str(e.value) == want
    p.write_text('[1]\n')
    with pytest.raises(DataError) as e:
        read_jsonl_rows(p, ())
    assert str(e.value) == f"{p} line 1: expected a JSON object, got list"
