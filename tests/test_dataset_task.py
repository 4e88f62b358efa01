"""The generic `dataset` task: sources, field mapping, the id-keyed split, answer formats, bad input."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from s2distill.config import TaskConfig
from s2distill.checks import load_checked
from s2distill.errors import ConfigError, DataError
from s2distill.tasks import make_task
from s2distill.tasks.dataset import DatasetTask

ROOT = Path(__file__).resolve().parents[1]


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def task(**opts) -> DatasetTask:
    return make_task(TaskConfig(name="dataset", options=opts))


def q_rows(n: int, start: int = 0) -> list[dict]:
    return [{"uid": f"u{i}", "text": f"What is {i} plus {i}?", "sol": str(2 * i)} for i in range(start, start + n)]


def test_jsonl_unusual_fields_labeled_and_unlabeled(tmp_path):
    f = jsonl(tmp_path / "q.jsonl", q_rows(50))
    t = task(path=str(f), question_field="text", id_field="uid", answer_field="sol", answer_format="number",
             eval_fraction=0.3)
    train, ev = t.load("train", -1), t.load("eval", -1)
    assert len(train) + len(ev) == 50 and {e.id for e in train}.isdisjoint({e.id for e in ev})
    assert 5 <= len(ev) <= 25  # ~30% held out by hash
    e = next(x for x in train + ev if x.id == "u7")
    assert e.question == "What is 7 plus 7?" and e.gold == "14"
    assert t.system1_messages(e)[-1]["content"].endswith("Answer with only the final number. Do not explain.")
    assert t.extract("7 + 7 = 14. The answer is 14.") == "14" and t.score("14", e.gold) and not t.score("15", e.gold)
    unl = task(path=str(f), question_field="text", id_field="uid", answer_format="number")
    assert all(x.gold is None for x in unl.load("train", -1) + unl.load("eval", -1))
    assert t.load("train", 5) == train[:5]  # n takes the first n of a fixed order


def test_split_is_keyed_on_id_not_position(tmp_path):
    rows = q_rows(80)
    a = task(path=str(jsonl(tmp_path / "a.jsonl", rows)), question_field="text", id_field="uid")
    # the same rows shuffled, plus 40 new ones in between: no existing row changes side
    more = rows[::-1][:40] + q_rows(40, start=1000) + rows[::-1][40:]
    b = task(path=str(jsonl(tmp_path / "b.jsonl", more)), question_field="text", id_field="uid")
    side = lambda t: {e.id: s for s in ("train", "eval") for e in t.load(s, -1)}  # noqa: E731
    sa, sb = side(a), side(b)
    assert all(sb[i] == s for i, s in sa.items())
    assert len(sb) == 120
    # ids from a hash of the question are stable across files too
    c = task(path=str(jsonl(tmp_path / "c.jsonl", [{"text": r["text"]} for r in rows])), question_field="text")
    d = task(path=str(jsonl(tmp_path / "d.jsonl", [{"text": r["text"]} for r in more])), question_field="text")
    sc, sd = side(c), side(d)
    assert len(sc) == 80 and all(sd[i] == s for i, s in sc.items())


def test_eval_path_and_overlap(tmp_path):
    f = jsonl(tmp_path / "train.jsonl", q_rows(10))
    g = jsonl(tmp_path / "eval.jsonl", q_rows(4, start=100))
    t = task(path=str(f), eval_path=str(g), question_field="text", id_field="uid")
    assert len(t.load("train", -1)) == 10 and {e.id for e in t.load("eval", -1)} == {"u100", "u101", "u102", "u103"}
    h = jsonl(tmp_path / "eval2.jsonl", q_rows(2, start=3))
    with pytest.raises(DataError, match="in both task.options.path and eval_path"):
        task(path=str(f), eval_path=str(h), question_field="text", id_field="uid").load("train", -1)


def test_csv_json_and_parquet(tmp_path):
    rows = q_rows(6)
    with open(tmp_path / "q.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["uid", "text", "sol"])
        w.writeheader()
        w.writerows(rows)
    (tmp_path / "q.json").write_text(json.dumps({"data": rows}))
    for name in ("q.csv", "q.json"):
        t = task(path=str(tmp_path / name), question_field="text", id_field="uid", answer_field="sol",
                 answer_format="number", eval_fraction=0.0)
        assert sorted(e.gold for e in t.load("train", -1)) == sorted(r["sol"] for r in rows)
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.DataFrame(rows).to_parquet(tmp_path / "q.parquet")
    t = task(path=str(tmp_path / "q.parquet"), question_field="text", id_field="uid", answer_field="sol",
             answer_format="number", eval_fraction=0.0)
    assert {e.id: e.gold for e in t.load("train", -1)} == {r["uid"]: r["sol"] for r in rows}


def test_parquet_without_pandas_names_the_package(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pandas(name, *a, **k):
        if name == "pandas":
            raise ImportError("no pandas")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    (tmp_path / "q.parquet").write_bytes(b"PAR1")
    with pytest.raises(ConfigError, match="pip install pandas pyarrow"):
        task(path=str(tmp_path / "q.parquet")).load("train", -1)


def test_template_with_lettered_choices_and_choice_gold(tmp_path):
    rows = [{"id": "m1", "stem": "Largest planet?", "options": ["Mars", "Jupiter", "Venus"], "key": "Jupiter"},
            {"id": "m2", "stem": "Smallest prime?", "options": ["2", "3"], "key": 0},
            {"id": "m3", "stem": "Capital of France?", "options": ["Rome", "Paris", "Oslo", "Bern"], "key": "B"}]
    t = task(path=str(jsonl(tmp_path / "mc.jsonl", rows)), template="Q: {stem}\n{options}", choices_field="options",
             id_field="id", answer_field="key", answer_format="choice", eval_fraction=0.0)
    exs = {e.id: e for e in t.load("train", -1)}
    assert exs["m1"].question == "Q: Largest planet?\nA. Mars\nB. Jupiter\nC. Venus"
    assert [exs[i].gold for i in ("m1", "m2", "m3")] == ["B", "A", "B"]
    assert t.extract("Jupiter is the biggest. The answer is (B).") == "B" and t.score("B", exs["m1"].gold)
    assert t.answer_hint == "<letter>"
    # without a template the choices are appended to the question
    t2 = task(path=str(tmp_path / "mc.jsonl"), question_field="stem", choices_field="options", id_field="id",
              answer_format="choice", eval_fraction=0.0)
    assert {e.id: e.question for e in t2.load("train", -1)}["m2"] == "Smallest prime?\nA. 2\nB. 3"


def test_instruction_override_and_hint(tmp_path):
    t = task(path=str(jsonl(tmp_path / "q.jsonl", [{"question": "Is 4 even?"}])), answer_format="yes_no",
             instruction="Reply yes or no in lower case.", eval_fraction=0.0)
    (ex,) = t.load("train", -1)
    assert t.system1_messages(ex) == [{"role": "system", "content": ""},  # task.system_prompt: "" by default
                                      {"role": "user", "content": "Is 4 even?\nReply yes or no in lower case."}]
    assert t.answer_hint == "<yes or no>" and t.extract("Four is even, so the answer is yes.") == "yes"


def test_missing_field_names_file_line_and_fields(tmp_path):
    f = jsonl(tmp_path / "q.jsonl", [{"text": "a?"}, {"txt": "b?", "extra": 1}])
    with pytest.raises(DataError) as e:
        task(path=str(f), question_field="text").load("train", -1)
    msg = str(e.value)
    assert f"{f} line 2" in msg and 'missing field "text"' in msg and "fields there: txt, extra" in msg


def test_unparseable_gold_names_the_row(tmp_path):
    f = jsonl(tmp_path / "q.jsonl", [{"uid": "a", "text": "1+1?", "sol": "2"}, {"uid": "b", "text": "2+2?", "sol": "four"}])
    with pytest.raises(DataError) as e:
        task(path=str(f), question_field="text", id_field="uid", answer_field="sol", answer_format="number").load("train", 1)
    assert f"{f} line 2 (id b)" in str(e.value) and "'four'" in str(e.value) and "answer_format=number" in str(e.value)
    yn = jsonl(tmp_path / "yn.jsonl", [{"question": "x?", "a": "perhaps"}])
    with pytest.raises(DataError, match="line 1 .*does not parse as answer_format=yes_no"):
        task(path=str(yn), answer_field="a", answer_format="yes_no").load("train", -1)


def test_duplicate_ids_and_questions_are_errors(tmp_path):
    f = jsonl(tmp_path / "q.jsonl", [{"uid": "a", "text": "1?"}, {"uid": "b", "text": "2?"}, {"uid": "a", "text": "3?"}])
    with pytest.raises(DataError, match=r"line 3: duplicate of .*line 1: id 'a'"):
        task(path=str(f), question_field="text", id_field="uid").load("train", -1)
    g = jsonl(tmp_path / "g.jsonl", [{"text": "1?"}, {"text": "1?"}])
    with pytest.raises(DataError, match="same question.*set task.options.id_field"):
        task(path=str(g), question_field="text").load("train", -1)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="has no rows"):
        task(path=str(tmp_path / "e.jsonl")).load("train", -1)
    with pytest.raises(DataError, match="not found"):
        task(path=str(tmp_path / "nope.jsonl")).load("train", -1)
    (tmp_path / "bad.jsonl").write_text('{"question": "a"}\n{oops\n')
    with pytest.raises(DataError, match="bad.jsonl line 2: invalid JSON"):
        task(path=str(tmp_path / "bad.jsonl")).load("train", -1)
    (tmp_path / "q.txt").write_text("x")
    with pytest.raises(ConfigError, match="unknown file type '.txt'"):
        task(path=str(tmp_path / "q.txt")).load("train", -1)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="exactly one source"):
        task()
    with pytest.raises(ConfigError, match="not both"):
        task(path="x.jsonl", question_field="q", template="{q}")
    with pytest.raises(ConfigError, match="did you mean 'answer_format'"):
        task(path="x.jsonl", answer_fromat="number")
    with pytest.raises(ConfigError, match="did you mean 'number'"):
        task(path="x.jsonl", answer_format="numbr")
    with pytest.raises(ConfigError, match="eval_fraction"):
        task(path="x.jsonl", eval_fraction=1.5)
    with pytest.raises(ConfigError, match="needs exactly one, the answer"):
        load_checked(data={"backend": {"name": "fake"}, "task": {"name": "dataset", "options": {
            "path": "x.jsonl", "answer_format": "regex", "pattern": "(a)(b)"}}})


def test_exemplars_from_file(tmp_path):
    f = jsonl(tmp_path / "q.jsonl", q_rows(4))
    ex = jsonl(tmp_path / "shots.jsonl", [{"question": "What is 1 plus 1?", "worked": "1 + 1 = 2. The answer is 2.",
                                            "rephrased": "Add one and one."},
                                           {"text": "What is 9 plus 9?", "worked": "9 + 9 = 18. The answer is 18."}])
    t = task(path=str(f), question_field="text", answer_format="number", exemplars_path=str(ex))
    assert t.exemplars(2) == [("What is 1 plus 1?", "1 + 1 = 2. The answer is 2."),
                              ("What is 9 plus 9?", "9 + 9 = 18. The answer is 18.")]
    assert t.rephrase_exemplar("What is 1 plus 1?") == "Add one and one."
    with pytest.raises(ConfigError, match="has 2 worked examples"):
        t.exemplars(3)
    with pytest.raises(ConfigError, match="exemplars_path"):
        task(path=str(f), question_field="text").exemplars(1)


def test_examples_shipped_with_the_repo_load():
    t = task(path=str(ROOT / "examples" / "own_questions.jsonl"), question_field="body", id_field="ticket",
             answer_format="number", exemplars_path=str(ROOT / "examples" / "own_exemplars.jsonl"))
    train, ev = t.load("train", -1), t.load("eval", -1)
    assert len(train) + len(ev) == 300 and all(e.gold is None for e in train + ev)
    assert len(t.exemplars(3)) == 3
    yn = task(path=str(ROOT / "examples" / "own_yes_no.jsonl"), question_field="claim", id_field="key",
              answer_format="yes_no", exemplars_path=str(ROOT / "examples" / "own_yes_no_exemplars.jsonl"))
    assert len(yn.load("train", -1)) + len(yn.load("eval", -1)) == 120 and len(yn.exemplars(3)) == 3


def test_rerun_after_adding_rows_keeps_the_old_split_and_reruns_data(tmp_path):
    """Appending rows to the file reruns the data stage (the file's content is in its fingerprint); every
    old row stays on its side, and the samples already generated come from the cache."""
    from s2distill.pipeline import Pipeline

    f = jsonl(tmp_path / "q.jsonl", q_rows(20))
    cfg = load_checked(data={"backend": {"name": "fake"}, "train": {"enabled": False},
                            "eval": {"systems": ["system1"]}, "method": {"n": 2},
                            "task": {"name": "dataset", "n_train": -1, "n_eval": -1, "options": {
                                "path": str(f), "question_field": "text", "id_field": "uid",
                                "answer_format": "number", "eval_fraction": 0.25}}})
    Pipeline(cfg, run_dir=tmp_path / "run", progress=False, log=lambda s: None).run()
    side = lambda: {json.loads(x)["id"]: s for s in ("train", "eval")  # noqa: E731
                    for x in open(tmp_path / "run" / "data" / f"{s}.jsonl")}
    before = side()
    jsonl(f, q_rows(20) + q_rows(10, start=50))
    logs: list[str] = []
    Pipeline(cfg, run_dir=tmp_path / "run", progress=False, log=logs.append).run()
    after = side()
    assert len(after) == 30 and all(after[i] == s for i, s in before.items())
    assert any(m.startswith("[data] running") for m in logs)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    n_new_train = sum(1 for i, s in after.items() if s == "train" and i not in before)
    assert manifest["stages"]["generate"]["generated"] == 2 * n_new_train  # only the new inputs were sampled


def test_hf_dataset_through_datasets(tmp_path):
    """hf_id goes through `datasets` like the hub loaders (here a local save_to_disk copy: no network)."""
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(q_rows(12)).save_to_disk(str(tmp_path / "ds"))
    t = task(hf_id=str(tmp_path / "ds"), split="train", question_field="text", id_field="uid", answer_field="sol",
             answer_format="number", eval_fraction=0.25)
    exs = t.load("train", -1) + t.load("eval", -1)
    assert sorted(e.id for e in exs) == sorted(r["uid"] for r in q_rows(12)) and all(e.gold for e in exs)
    assert "row" in t._source_rows()[3].where


def test_csv_choices_as_json_list_and_template_field_error(tmp_path):
    with open(tmp_path / "mc.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["q", "opts", "key"])
        w.writerow(["Pick the even one", '["3", "4"]', "4"])
    t = task(path=str(tmp_path / "mc.csv"), question_field="q", choices_field="opts", answer_field="key",
             answer_format="choice", eval_fraction=0.0)
    (ex,) = t.load("train", -1)
    assert ex.question == "Pick the even one\nA. 3\nB. 4" and ex.gold == "B"
    with pytest.raises(DataError, match=r"mc.csv line 2: missing field \"stem\" \(template\); fields there: q, opts, "
                                        r"key; fix: use only these fields in task.options.template"):
        task(path=str(tmp_path / "mc.csv"), template="{stem}", eval_fraction=0.0).load("train", -1)
