"""Errors before work starts: `s2distill validate` reads the task's data with the run's own code (the same
messages as `s2distill run`), and `s2distill eval --data` maps FILE like the run (`--answer-field` for its
gold) and says when FILE's inputs were training inputs. Fake backend only: no engine, no model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from s2distill.cli import main, parse
from s2distill.config import load_config
from s2distill.errors import ConfigError, DataError
from s2distill.eval_data import eval_on_file
from s2distill.pipeline import Pipeline
from s2distill.report import verdict_of_run
from s2distill.tasks.arithmetic import ArithmeticOptions, ArithmeticTask

from fakes import arithmetic_oracle, factory

ROOT = Path(__file__).resolve().parents[1]
ARITH = ArithmeticTask(ArithmeticOptions(depth=1))


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def arith_rows(split: str, n: int, start: int = 0, gold: str | None = "sol") -> list[dict]:
    """Rows in a user's own shape (uid, text, a gold field) holding arithmetic questions the fake oracle knows."""
    exs = ARITH.load(split, start + n, 0)[start:]
    return [{"uid": f"{split}{start + i}", "text": e.question, **({gold: e.gold} if gold else {})}
            for i, e in enumerate(exs)]


def config(tmp_path: Path, options: dict, **over) -> Path:
    data = {"name": "t", "backend": {"name": "fake"}, "train": {"enabled": False},
            "eval": {"systems": ["system1", "system2", "system2_maj"]}, "method": {"name": "cot", "n": 2},
            "task": {"name": "dataset", "n_train": -1, "n_eval": -1,
                     "options": {"question_field": "text", "answer_format": "number", **options}}, **over}
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump(data))
    return conf


def cli(capsys, args: list[str]) -> tuple[int, str, str]:
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def error_line(err: str) -> str:
    (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
    return line


def validate_and_run(capsys, tmp_path: Path, conf: Path, *overrides: str) -> tuple[str, str]:
    """The error line of `validate` and of `run` (fake backend) for the same config: both must fail."""
    rc_v, out_v, err_v = cli(capsys, ["validate", str(conf), *overrides])
    rc_r, _, err_r = cli(capsys, ["run", str(conf), *overrides, "--run-dir", str(tmp_path / "run"), "--no-progress"])
    assert rc_v == 2 and rc_r == 2 and "ok:" not in out_v, (out_v, err_v, err_r)
    return error_line(err_v), error_line(err_r)


# -- validate ---------------------------------------------------------------------------------------

def test_validate_reads_the_data_and_reports_what_it_read(capsys, tmp_path):
    f = jsonl(tmp_path / "q.jsonl", arith_rows("train", 12))
    ev = jsonl(tmp_path / "ev.jsonl", arith_rows("eval", 5))
    conf = config(tmp_path, {"path": str(f), "eval_path": str(ev), "answer_field": "sol", "id_field": "uid"})
    rc, out, err = cli(capsys, ["validate", str(conf)])
    assert rc == 0, err
    assert out.startswith(f"ok: {conf} (task=dataset") and "data: 12 train inputs, 5 eval inputs (5 labeled)" in out


def test_validate_catches_a_wrong_question_field_with_the_run_message(capsys, tmp_path):
    f = jsonl(tmp_path / "q.jsonl", [{"body": f"What is {i} plus 1?"} for i in range(10)])
    conf = config(tmp_path, {"path": str(f), "question_field": "body"})
    assert cli(capsys, ["validate", str(conf)])[0] == 0
    v, r = validate_and_run(capsys, tmp_path, conf, "task.options.question_field=txt")
    assert v == r
    assert f"{f} line 1: missing field \"txt\" (question_field); fields there: body" in v
    assert "fix: set task.options.question_field to one of them" in v
    assert not (tmp_path / "run" / "data" / "train.jsonl").exists()  # the run stopped at its data stage


def test_validate_catches_the_shipped_config_with_a_wrong_field(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the config's paths are relative to the repository
    rc, out, err = cli(capsys, ["validate", "configs/own_data.yaml"])
    assert rc == 0 and "3 few-shot exemplars" in out, err
    rc, out, err = cli(capsys, ["validate", "configs/own_data.yaml", "task.options.question_field=txt"])
    assert rc == 2 and "ok:" not in out
    assert 'examples/own_questions.jsonl line 1: missing field "txt" (question_field); fields there: ticket, body' \
        in error_line(err)


def test_validate_catches_an_empty_file_and_an_unparseable_gold(capsys, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    v, r = validate_and_run(capsys, tmp_path, config(tmp_path, {"path": str(empty)}))
    assert v == r and f"{empty} has no rows; fix:" in v
    f = jsonl(tmp_path / "q.jsonl", arith_rows("train", 6))
    bad = jsonl(tmp_path / "ev.jsonl", [*arith_rows("eval", 2), {"uid": "x", "text": "How many?", "sol": "lots"}])
    v, r = validate_and_run(capsys, tmp_path, config(tmp_path, {"path": str(f), "eval_path": str(bad),
                                                                 "answer_field": "sol", "id_field": "uid"}))
    assert v == r and f"{bad} line 3 (id x): gold answer 'lots' in field \"sol\" does not parse" in v


def test_validate_catches_a_bad_exemplars_file(capsys, tmp_path):
    f = jsonl(tmp_path / "q.jsonl", arith_rows("train", 6, gold=None))
    shots = jsonl(tmp_path / "shots.jsonl", [{"question": "What is 1 plus 1?", "worked": "1 + 1 = 2. The answer is 2."},
                                             {"question": "What is 2 plus 2?", "answer": "4"}])
    conf = config(tmp_path, {"path": str(f), "exemplars_path": str(shots)}, method={"name": "cot", "n": 2, "few_shot": 1})
    # a bad row the method would not reach yet (few_shot=1, or 0) still fails validate: the file is read whole
    rc, out, err = cli(capsys, ["validate", str(conf)])
    assert rc == 2 and f'{shots} line 2: missing field "worked" (exemplars_path); fields there: question, answer' \
        in error_line(err)
    assert 'fix: give every row of task.options.exemplars_path a "worked" field' in error_line(err)
    assert cli(capsys, ["validate", str(conf), "method.few_shot=0"])[0] == 2
    # the same message as the run, which reads the file when its generate stage builds the few-shot prompt
    v, r = validate_and_run(capsys, tmp_path, conf, "method.few_shot=2")
    assert v == r and "line 2: missing field \"worked\"" in v
    jsonl(shots, [{"question": "What is 1 plus 1?", "worked": "1 + 1 = 2. The answer is 2."}])
    v, r = validate_and_run(capsys, tmp_path, conf, "method.few_shot=3")
    assert v == r and f"method.few_shot=3 but {shots} has 1 worked examples" in v
    rc, out, _ = cli(capsys, ["validate", str(conf)])
    assert rc == 0 and "1 few-shot exemplars" in out
    # RaR few-shot also needs a rephrasing of every exemplar: the run's message
    v, r = validate_and_run(capsys, tmp_path, conf, "method.name=rar")
    assert v == r and "few-shot RaR needs a 'rephrased' field" in v


def test_validate_reads_other_file_backed_tasks_but_fetches_no_hub_dataset(capsys, tmp_path):
    rc, out, err = cli(capsys, ["validate", str(ROOT / "configs" / "demo.yaml"), "backend.name=fake"])
    assert rc == 0 and "data: 96 train inputs, 40 eval inputs (40 labeled)" in out, err
    gsm = tmp_path / "gsm"
    gsm.mkdir()
    jsonl(gsm / "train.jsonl", [{"question": f"q{i}?", "answer": f"so #### {i}"} for i in range(12)])
    jsonl(gsm / "test.jsonl", [{"question": "a?", "answer": "no marker"}])
    conf = str(ROOT / "configs" / "gsm8k_local.yaml")
    rc, out, err = cli(capsys, ["validate", conf, f"task.options.source={gsm}", "task.n_train=4", "task.n_eval=1"])
    assert rc == 2 and "row 1: answer has no '#### <number>'" in error_line(err)
    rc, out, err = cli(capsys, ["validate", conf, "task.options.source=openai/gsm8k"])
    assert rc == 0 and "data not read: 'openai/gsm8k' is an HF dataset" in out, err


# -- eval --data --------------------------------------------------------------------------------------

def run_cfg(tmp_path: Path, **over):
    f = jsonl(tmp_path / "q.jsonl", arith_rows("train", 10))
    ev = jsonl(tmp_path / "ev.jsonl", arith_rows("eval", 6))
    return load_config(data={"backend": {"name": "fake"}, "method": {"n": 4},
                             "task": {"name": "dataset", "n_train": -1, "n_eval": -1, "options": {
                                 "path": str(f), "eval_path": str(ev), "question_field": "text", "id_field": "uid",
                                 "answer_field": "sol", "answer_format": "number"}}, **over})


def trained_run(tmp_path: Path, monkeypatch, oracle) -> Path:
    """A fake run with a done 'train' stage (the distilled fake answers from the oracle)."""
    import s2distill.pipeline as pl

    monkeypatch.setattr(pl.Pipeline, "fit", lambda self: ([], {}))  # a train stage that trains nothing
    run = tmp_path / "run"
    Pipeline(run_cfg(tmp_path, eval={"systems": ["system1", "system2", "system2_maj", "distilled"]}), run_dir=run,
             backend_factory=factory(oracle), log=lambda s: None, progress=False).run()
    return run


def test_eval_answer_field_scores_gold_from_another_field(tmp_path):
    oracle = arithmetic_oracle()
    run = tmp_path / "run"
    Pipeline(run_cfg(tmp_path, train={"enabled": False}, eval={"systems": ["system1", "system2", "system2_maj"]}),
             run_dir=run, backend_factory=factory(oracle), log=lambda s: None, progress=False).run()
    labeled = jsonl(tmp_path / "labeled.jsonl", arith_rows("eval", 5, start=6, gold="label"))
    # the run's answer_field ("sol") applies to FILE: the same error as a run's bad row
    with pytest.raises(DataError, match=r'line 1: missing field "sol" \(answer_field\); fields there: uid, text, label'):
        eval_on_file(run, labeled, backend_factory=factory(oracle), log=lambda s: None, progress=False)
    rep, out = eval_on_file(run, labeled, answer_field="label", backend_factory=factory(oracle), log=lambda s: None,
                            progress=False)
    rows = {r["role"]: r for r in rep["rows"]}
    assert all(r["n"] == 5 and "n_labeled" not in r for r in rows.values())  # every input labeled
    assert rows["system1"]["accuracy"] == 0.0  # the fake's direct answer is always wrong: gold was read
    assert rows["system2_maj"]["accuracy"] > 0.5
    golds = [json.loads(x)["gold"] for x in open(out / "data" / "eval.jsonl")]
    assert golds == [r["label"] for r in arith_rows("eval", 5, start=6, gold="label")]
    assert yaml.safe_load((out / "config.yaml").read_text())["task"]["options"]["answer_field"] == "label"
    assert yaml.safe_load((run / "config.yaml").read_text())["task"]["options"]["answer_field"] == "sol"
    assert "training_inputs" not in rep and rep["evaluated"]["training_inputs"] == 0
    # a name YAML would read as a boolean stays a field name
    yes = jsonl(tmp_path / "yes.jsonl", [{"uid": "y1", "text": arith_rows("eval", 1, start=6)[0]["text"], "yes": "3"}])
    rep, _ = eval_on_file(run, yes, answer_field="yes", backend_factory=factory(oracle), log=lambda s: None,
                          progress=False)
    assert rep["rows"][0]["n"] == 1 and rep["rows"][0]["accuracy"] is not None


def test_eval_answer_field_cli_and_its_errors(tmp_path):
    args = parse(["eval", "runs/x", "--data", "f.jsonl", "--answer-field", "label", "eval.k=2"])
    assert args.answer_field == "label" and args.overrides == ["eval.k=2"]
    from s2distill.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "cmd").choices["eval"]
    help_text = " ".join(sub.format_help().split())
    assert "run's field mapping" in help_text and "question_field" in help_text and "--answer-field NAME" in help_text
    oracle = arithmetic_oracle()
    run = tmp_path / "run"
    Pipeline(load_config(data={"backend": {"name": "fake"}, "train": {"enabled": False}, "task": {"n_train": 4,
                                                                                                "n_eval": 2},
                               "eval": {"systems": ["system1"]}}),
             run_dir=run, backend_factory=factory(oracle), log=lambda s: None, progress=False).run()
    data = jsonl(tmp_path / "d.jsonl", [{"question": "What is 1 plus 1?", "answer": "2"}])
    with pytest.raises(ConfigError, match=r"task 'arithmetic' of this run has no task.options.answer_field; fix: "
                                          r"drop --answer-field"):
        eval_on_file(run, data, answer_field="answer", backend_factory=factory(oracle), log=lambda s: None,
                     progress=False)
    assert not (run / "evals").exists()


def test_eval_warns_about_training_inputs_and_does_not_call_them_held_out(tmp_path, monkeypatch):
    oracle = arithmetic_oracle()
    run = trained_run(tmp_path, monkeypatch, oracle)
    train = arith_rows("train", 10)
    new = arith_rows("eval", 4, start=6)
    same_text = {**train[5], "uid": "renamed"}  # a training question under another id: still a training input
    mixed = jsonl(tmp_path / "mixed.jsonl", [*train[:3], same_text, *new])
    logs: list[str] = []
    rep, out = eval_on_file(run, mixed, backend_factory=factory(oracle), log=logs.append, progress=False)
    warn = [m for m in logs if "training inputs" in m]
    assert len(warn) == 1 and "4 of 8 inputs were training inputs; their scores are not held-out" in warn[0]
    assert rep["training_inputs"] == {"n": 4, "of": 8} and rep["evaluated"]["training_inputs"] == 4
    seen = json.loads((out / "data" / "training_inputs.json").read_text())
    assert seen["ids"] == ["train0", "train1", "train2", "renamed"]
    line = rep["verdict"]["line"]
    assert rep["verdict"]["decision"] in ("ship", "cascade", "keep", "no_answer")
    assert "of 8 inputs (4 of them training inputs, not held out)" in line and "held-out inputs" not in line
    md = (out / "report.md").read_text()
    assert "**Warning: 4 of 8 inputs were training inputs; their scores are not held-out.**" in md
    assert "held-out inputs" not in md
    # a verdict rebuilt from the folder (other thresholds) keeps the wording
    rebuilt = verdict_of_run(out, ["eval.max_disagreement=0.5"])["line"]
    assert "4 of them training inputs" in rebuilt and "held-out inputs" not in rebuilt
    # new inputs only: no warning, and they are held-out inputs
    logs.clear()
    rep2, out2 = eval_on_file(run, jsonl(tmp_path / "new.jsonl", new), backend_factory=factory(oracle),
                              log=logs.append, progress=False)
    assert not any("training inputs" in m for m in logs) and "training_inputs" not in rep2
    assert "of 4 held-out inputs" in rep2["verdict"]["line"]
    assert "Warning" not in (out2 / "report.md").read_text()
