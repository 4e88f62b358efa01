"""Label-free evaluation, the ship/keep verdict, unlabeled eval records, `s2distill eval --data`."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import arithmetic_oracle, factory

from s2distill.config import load_config
from s2distill.errors import ConfigError, DataError
from s2distill.evaluate import ci95, score_traces, summarize
from s2distill.eval_data import eval_on_file, read_examples
from s2distill.label_free import label_free, verdict
from s2distill.pipeline import Pipeline
from s2distill.report import to_markdown
from s2distill.rundir import read_json, read_jsonl, write_jsonl
from s2distill.tasks.arithmetic import ArithmeticTask
from s2distill.tasks.base import FileInputs
from s2distill.types import Call, Completion, EvalRecord, Example, Sample, Trace

ROOT = Path(__file__).resolve().parents[1]


def rec(system, eid, pred, gold=None, tokens=3, answers=None):
    correct = None if gold is None else pred == gold
    meta = {"answers": answers} if answers is not None else {"response": pred or ""}
    return EvalRecord(system, eid, pred, gold, correct, tokens, 1, 0.1, meta)


VOTES = {"a": ["5", "5", "5", "5"],  # share 1.0, majority 5
         "b": ["3", "3", "4", None],  # share 0.5, majority 3
         "c": ["7", "7", "7", "8"],  # share 0.75 (confident at the default), majority 7
         "d": [None, None, None, None]}  # nothing parsed: no majority


def write_eval(d: Path, preds: dict[str, dict[str, str | None]]):
    write_jsonl(d / "system2_maj.jsonl", [rec("system2_maj", k, v[0], answers=v, tokens=40) for k, v in VOTES.items()])
    for system, p in preds.items():
        write_jsonl(d / f"{system}.jsonl", [rec(system, k, v) for k, v in p.items()])


def test_label_free_metrics_on_known_answers(tmp_path):
    # "7.0" is the same answer as "7" after the task's normalisation; a None prediction never agrees
    write_eval(tmp_path, {"system1": {"a": "5", "b": "4", "c": "7.0", "d": "1"},
                          "distilled": {"a": "5", "b": "3", "c": "8", "d": None}})
    lf = label_free(tmp_path, ArithmeticTask())
    assert lf["system2_maj"]["mean_vote_share"] == pytest.approx((1 + 0.5 + 0.75 + 0) / 4)
    assert lf["system2_maj"]["n_confident"] == 2 and lf["system2_maj"]["k"] == 4
    s1 = lf["system1"]
    assert s1["n"] == 4 and s1["agreement"] == 0.5 and s1["agreement_ci95"] == ci95(2, 4)
    assert s1["n_confident"] == 2 and s1["confident_agreement"] == 1.0  # a and c
    assert s1["support_share"] == pytest.approx((1 + 0.25 + 0.75 + 0) / 4)
    d = lf["distilled"]
    assert d["agreement"] == 0.5 and d["confident_agreement"] == 0.5  # a agrees, c does not
    assert d["support_share"] == pytest.approx((1 + 0.5 + 0.25 + 0) / 4)
    assert "system2" not in lf  # no file, no row
    strict = label_free(tmp_path, ArithmeticTask(), confident_share=0.9)
    assert strict["system1"]["n_confident"] == 1 and strict["system1"]["confident_agreement"] == 1.0
    none_confident = label_free(tmp_path, ArithmeticTask(), confident_share=1.0)
    assert none_confident["distilled"]["n_confident"] == 1
    assert label_free(tmp_path, ArithmeticTask(), systems=("system1", "system2")) is None  # no maj@k: nothing
    assert label_free(tmp_path / "missing", ArithmeticTask()) is None


def rows(dist_tokens=3.0, s2_tokens=20.0, with_system2=True, with_distilled=True):
    out = [{"role": "system1", "system": "system1", "mean_generated_tokens": 3.0, "accuracy": None}]
    if with_system2:
        out.append({"role": "system2", "system": "cot", "mean_generated_tokens": s2_tokens, "accuracy": 0.9})
    out.append({"role": "system2_maj", "system": "cot_maj@4", "mean_generated_tokens": 4 * s2_tokens, "accuracy": 0.9})
    if with_distilled:
        out.append({"role": "distilled", "system": "distilled", "mean_generated_tokens": dist_tokens, "accuracy": 0.8})
    return out


def lf_of(k=96, n=100, mvs=0.9):
    return {"system2_maj": {"mean_vote_share": mvs, "n": n, "n_confident": n, "k": 4},
            "distilled": {"agreement": k / n, "agreement_ci95": ci95(k, n), "n": n, "confident_agreement": k / n,
                          "n_confident": n, "support_share": 0.9}}


def test_verdict_ships_when_every_check_passes():
    v = verdict(rows(), lf_of(k=99, n=100))
    lo, hi = ci95(99, 100)
    assert v["decision"] == "ship" and v["token_saving"] == pytest.approx(1 - 3 / 20)
    assert v["line"] == (f"ship distilled: agrees with System 2's majority on 99.0% (95% CI {100 * lo:.1f}-"
                         f"{100 * hi:.1f}) of 100 held-out inputs at 3.0 vs 20.0 tokens")
    assert len(v["reasons"]) == 3 and v["system2_reference"] == "system2"


def test_verdict_keeps_system2_for_each_reason():
    v = verdict(rows(), lf_of(k=90, n=100))  # lower CI ~0.83: disagreement may be ~17% > 10%
    assert v["decision"] == "keep" and len(v["reasons"]) == 1 and "disagreement" in v["reasons"][0]
    assert v["line"].startswith("keep System 2: disagreement with System 2's majority is at most")
    assert verdict(rows(), lf_of(k=90, n=100), max_disagreement=0.2)["decision"] == "ship"
    v = verdict(rows(), lf_of(k=99, n=100, mvs=0.6))  # System 2 inconsistent: no label-free answer, not "keep"
    assert v["decision"] == "no_answer" and v["reasons"] == [
        "System 2 is unreliable: mean vote share 60.0% < eval.confident_share 75.0%"]
    assert v["line"].startswith("no label-free answer: System 2 is inconsistent (mean vote share 60.0%")
    v = verdict(rows(dist_tokens=25.0), lf_of(k=99, n=100))
    assert v["decision"] == "keep" and v["reasons"][0].startswith("no token saving: 25.0 vs 20.0")
    assert v["token_saving"] < 0
    v = verdict(rows(dist_tokens=25.0), lf_of(k=50, n=100, mvs=0.5))
    assert v["decision"] == "no_answer" and len(v["reasons"]) == 3


def test_verdict_compares_tokens_per_system2_answer_and_says_when_none_is_possible():
    v = verdict(rows(with_system2=False, s2_tokens=20.0), lf_of(k=99, n=100))  # maj@4: 80 tokens for 4 answers
    assert v["system2_reference"] == "system2_maj" and v["system2_tokens"] == 20.0
    v = verdict(rows(with_distilled=False), {"system2_maj": lf_of()["system2_maj"]})
    assert v["decision"] is None and "no distilled model" in v["line"] and "train.enabled=true" in v["fix"]
    v = verdict(rows(), None)
    assert v["decision"] is None and "system2_maj" in v["fix"]


def test_unlabeled_records_through_score_summarize_and_markdown():
    task = ArithmeticTask()
    exs = [Example("u1", "q1"), Example("u2", "q2"), Example("l1", "q3", gold="4")]
    samples = {"u1": "The answer is 3.", "u2": "nothing", "l1": "The answer is 4."}
    traces = [Trace(e, "cot", (Sample(t, task.extract(t), (Call("answer", (), Completion(t, 5)),)),))
              for e, t in samples.items()]
    records = score_traces("system2", task, exs, traces)
    assert [r.correct for r in records] == [None, None, True]
    s = summarize(records)
    assert s["n"] == 3 and s["n_labeled"] == 1 and s["accuracy"] == 1.0 and s["ci95"] == ci95(1, 1)
    s = summarize(records[:2])
    assert s["accuracy"] is None and s["ci95"] is None and s["correct"] is None and "n_labeled" in s
    assert s["mean_generated_tokens"] == 5 and s["unparsed"] == 1
    assert summarize([])["accuracy"] == 0.0  # unchanged for no records
    full = summarize([rec("s", "x", "1", gold="1"), rec("s", "y", "2", gold="1")])
    assert full["accuracy"] == 0.5 and "n_labeled" not in full  # labeled runs: the same keys as before
    row = {"system": "cot", "role": "system2", **s}
    md = to_markdown({"task": "t", "method": "cot", "model": "m", "rows": [row], "run_dir": "r"})
    assert "| cot | 2 | - | - |" in md


def cfg(**over):
    data = {"name": "t", "backend": {"name": "fake"}, "task": {"n_train": 12, "n_eval": 8}, "method": {"n": 4},
            "train": {"enabled": False}, "eval": {"systems": ["system1", "system2", "system2_maj"], "k": 3}}
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(data=data)


def test_report_thresholds_are_validated_and_do_not_touch_eval_fingerprints(tmp_path):
    for bad in ("0", "1.5", "-0.1"):
        with pytest.raises(ConfigError, match="eval.confident_share is a fraction"):
            load_config(data={"backend": {"name": "fake"}}, overrides=[f"eval.confident_share={bad}"])
    with pytest.raises(ConfigError, match="eval.max_disagreement"):
        load_config(data={"backend": {"name": "fake"}}, overrides=["eval.max_disagreement=0"])
    logs = []
    oracle = arithmetic_oracle()
    r1 = Pipeline(cfg(), run_dir=tmp_path, backend_factory=factory(oracle), log=logs.append, progress=False).run()
    assert r1["label_free"]["system1"]["n"] == 8 and r1["verdict"]["decision"] is None  # no distilled model
    fps = {k: v["fingerprint"] for k, v in read_json(tmp_path / "manifest.json")["stages"].items()}
    logs.clear()
    r2 = Pipeline(cfg(eval={"confident_share": 0.9, "max_disagreement": 0.05}), run_dir=tmp_path,
                  backend_factory=factory(oracle), log=logs.append, progress=False).run()
    assert sum("skipped" in m for m in logs) == 6  # nothing reruns: only the report reads the thresholds
    assert {k: v["fingerprint"] for k, v in read_json(tmp_path / "manifest.json")["stages"].items()} == fps
    assert r2["label_free"]["system2_maj"]["confident_share"] == 0.9
    md = (tmp_path / "report.md").read_text()
    assert "Label-free" in md and "**Verdict: no verdict: no distilled model" in md


def _trained_run(tmp_path, monkeypatch, oracle, **over):
    """A fake run with a 'train' stage in its manifest (the distilled fake answers from the oracle)."""
    import s2distill.pipeline as pl

    monkeypatch.setattr(pl.Pipeline, "fit", lambda self: ([], {}))  # a train stage that trains nothing
    c = cfg(train={"enabled": True}, eval={"systems": ["system1", "system2", "system2_maj", "distilled"]}, **over)
    run = tmp_path / "run"
    report = Pipeline(c, run_dir=run, backend_factory=factory(oracle), log=lambda s: None, progress=False).run()
    return run, report


def test_eval_data_on_new_unlabeled_inputs_end_to_end_and_resumes(tmp_path, monkeypatch):
    oracle = arithmetic_oracle()
    run, report = _trained_run(tmp_path, monkeypatch, oracle)
    assert report["verdict"]["decision"] in ("ship", "cascade", "keep", "no_answer") and report["label_free"]["distilled"]["n"] == 8
    new = ArithmeticTask().load("eval", 14, 0)[8:]
    data = tmp_path / "more.jsonl"
    data.write_text("".join(json.dumps({"id": e.id, "question": e.question}) + "\n" for e in new))
    cache = run / "cache" / "samples.jsonl"
    before = len(cache.read_text().splitlines())
    logs = []
    rep, out = eval_on_file(run, data, backend_factory=factory(oracle), log=logs.append, progress=False)
    assert out.parent == run / "evals" and out.name.startswith("more-")
    assert [r["role"] for r in rep["rows"]] == ["system1", "system2", "system2_maj", "distilled"]
    assert all(r["accuracy"] is None and r["n"] == 6 for r in rep["rows"])  # unlabeled: no accuracy
    lf = rep["label_free"]
    assert lf["distilled"]["n"] == 6 and lf["system1"]["n"] == 6 and "mean_vote_share" in lf["system2_maj"]
    assert rep["verdict"]["decision"] in ("ship", "cascade", "keep", "no_answer") and rep["evaluated"]["data"] == str(data)
    for f in ("eval/system1.jsonl", "eval/distilled.jsonl", "eval/system2_maj.jsonl", "report.json", "report.md",
              "data/eval.jsonl"):
        assert (out / f).is_file(), f
    assert not (out / "cache").exists()  # the run's cache is shared
    after = len(cache.read_text().splitlines())
    assert after > before  # new inputs, new samples, appended to the run's cache
    # the distilled model answers from the oracle: it agrees with the (mostly right) System 2 majority
    assert lf["distilled"]["agreement"] > lf["system1"]["agreement"]
    # rerun: every stage skipped, nothing generated
    logs.clear()
    rep2, out2 = eval_on_file(run, data, backend_factory=factory(oracle), log=logs.append, progress=False)
    # data, four systems and the distilled model's sampled answers (the cascade's vote signal)
    assert out2 == out and sum("skipped" in m for m in logs) == 6 and not any("running" in m for m in logs)
    assert len(cache.read_text().splitlines()) == after and rep2["label_free"] == lf
    # the run's own eval inputs: every answer is already in the run's cache, with gold: accuracy too
    rep3, out3 = eval_on_file(run, run / "data" / "eval.jsonl", name="own", backend_factory=factory(oracle),
                              log=lambda s: None, progress=False)
    assert len(cache.read_text().splitlines()) == after
    man = read_json(out3 / "manifest.json")["stages"]
    assert all(man[f"eval_{s}"]["generated"] == 0 for s in ("system1", "system2", "system2_maj", "distilled",
                                                            "distilled_votes"))
    assert [r["accuracy"] for r in rep3["rows"]] == [r["accuracy"] for r in report["rows"]]
    assert rep3["label_free"] == report["label_free"]


def test_eval_data_bad_input_names_file_line_and_fix(tmp_path):
    oracle = arithmetic_oracle()
    run = tmp_path / "run"
    Pipeline(cfg(), run_dir=run, backend_factory=factory(oracle), log=lambda s: None, progress=False).run()
    cases = {"json": ('{"id": "1", "question": "q"}\n{"id": 2, \n', "line 2: not valid JSON"),
             "field": ('{"id": "1", "text": "q", "answer": 3}\n', "line 1: no 'question' text (fields present: id, "
                                                                   "text, answer)"),
             "dup": ('{"id": "1", "question": "a"}\n\n{"id": "1", "question": "b"}\n',
                     "line 3: duplicate id '1' (also on line 1)"),
             "empty": ("\n", "has no rows"),
             "list": ("[1, 2]\n", "line 1: expected a JSON object")}
    for name, (text, msg) in cases.items():
        p = tmp_path / f"{name}.jsonl"
        p.write_text(text)
        with pytest.raises(DataError, match=msg.replace("(", r"\(").replace(")", r"\)")) as e:
            eval_on_file(run, p, backend_factory=factory(oracle), log=lambda s: None, progress=False)
        assert str(p) in str(e.value)
    assert not (run / "evals").exists()  # nothing written for bad input
    with pytest.raises(DataError, match="file not found"):
        eval_on_file(run, tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match="config.yaml not found"):
        eval_on_file(tmp_path / "nothing", tmp_path / "json.jsonl")
    exs = read_examples(_write(tmp_path / "ok.jsonl", [{"question": "How many?", "gold": 12}, {"id": 7, "question": "x"}]))
    assert exs[0].gold == "12" and exs[0].id and exs[1].id == "7" and exs[1].gold is None


def _write(p: Path, rows: list[dict]) -> Path:
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


SEEN_FILES: list = []


class OwnFileArithmetic(ArithmeticTask, FileInputs):
    """A plug-in task with the FileInputs ability: ``eval --data`` reads its files through ``load_file``."""

    def load_file(self, path):
        SEEN_FILES.append(path)
        return [dataclasses.replace(e, id=f"mine-{i}") for i, e in enumerate(ArithmeticTask().load("eval", 3, 0))]


def test_eval_data_uses_a_task_load_file_hook(tmp_path):
    oracle = arithmetic_oracle()
    run = tmp_path / "run"
    Pipeline(cfg(task={"name": "test_label_free:OwnFileArithmetic"}), run_dir=run, backend_factory=factory(oracle),
             log=lambda s: None, progress=False).run()
    SEEN_FILES.clear()
    data = tmp_path / "own.csv"
    data.write_text("anything the task can read\n")
    rep, out = eval_on_file(run, data, backend_factory=factory(oracle), log=lambda s: None, progress=False)
    assert SEEN_FILES == [data] and [e["id"] for e in read_jsonl(out / "data" / "eval.jsonl")] == ["mine-0", "mine-1",
                                                                                                   "mine-2"]
    assert [r["role"] for r in rep["rows"]] == ["system1", "system2", "system2_maj"]  # untrained: no distilled
    assert rep["verdict"]["decision"] is None


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "s2distill.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_verdict_command_exit_codes(tmp_path):
    for decision, code in (("ship", 0), ("keep", 1), (None, 2)):
        d = tmp_path / str(decision)
        d.mkdir()
        (d / "report.json").write_text(json.dumps({"verdict": {"decision": decision, "line": f"line {decision}",
                                                               "reasons": [], "token_saving": 0.5,
                                                               **({"fix": "do x"} if decision is None else {})}}))
        r = _cli("verdict", str(d), cwd=tmp_path)
        assert r.returncode == code and r.stdout.strip() == f"line {decision}", r.stderr
        assert ("fix: do x" in r.stderr) == (decision is None)
    r = _cli("verdict", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert r.returncode == 2 and "no report.json or config.yaml" in r.stderr

    # a real (fake-backend) run made by the CLI, 40 eval inputs, all System 2 samples agree ("The answer is 42.")
    run = tmp_path / "run"
    r = _cli("run", str(ROOT / "configs" / "demo.yaml"), "backend.name=fake", "train.enabled=false", "task.n_train=4",
             "task.n_eval=40", "eval.systems=[system1,system2,system2_maj]", "--run-dir", str(run), "--no-progress",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Label-free" in r.stdout and "no verdict" in r.stdout
    r = _cli("verdict", str(run), cwd=tmp_path)
    assert r.returncode == 2 and "no distilled model" in r.stdout and "train.enabled=true" in r.stderr
    # a distilled model that says the same in one token: ship; with as many tokens as System 2: keep
    s1 = read_jsonl(run / "eval" / "system1.jsonl")
    for tokens, code in ((1, 0), (9, 1)):
        write_jsonl(run / "eval" / "distilled.jsonl", [{**d, "system": "distilled", "generated_tokens": tokens}
                                                       for d in s1])
        r = _cli("verdict", str(run), "eval.systems=[system1,system2,system2_maj,distilled]", cwd=tmp_path)
        assert r.returncode == code, r.stdout + r.stderr
        assert r.stdout.startswith("ship distilled: agrees with System 2's majority on 100.0%" if code == 0
                                   else "keep System 2: no token saving")
    # `s2distill eval RUN --data FILE` from the command line; bad input: exit 2 with file, line and fix
    data = _write(tmp_path / "new.jsonl", [{"id": "n1", "question": "Tom has 2 apples. How many apples?"}])
    r = _cli("eval", str(run), "--data", str(data), "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "| system1 | 1 | - | - |" in r.stdout and "Label-free" in r.stdout and "written to" in r.stderr
    out = next((run / "evals").iterdir())
    assert read_json(out / "report.json")["label_free"]["system1"]["agreement"] == 1.0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "n1", "text": "q"}\n')
    r = _cli("eval", str(run), "--data", str(bad), cwd=tmp_path)
    assert r.returncode == 2 and f"{bad}, line 1: no 'question' text" in r.stderr and "fix:" in r.stderr


def test_verdict_says_how_many_inputs_would_settle_a_close_call():
    from s2distill.label_free import inputs_needed

    assert inputs_needed(0.90, 0.10) is None and inputs_needed(0.85, 0.10) is None  # no n would do
    n = inputs_needed(0.975, 0.10)
    assert n is not None and 40 < n < 200
    lo, _ = ci95(round(0.975 * n), n)
    assert 1 - lo <= 0.10 + 1e-3  # at that n the bound is met
    v = verdict(rows(), lf_of(k=39, n=40))  # 97.5% agreement, but 40 inputs: bound ~12.9%
    assert v["decision"] == "keep" and v["inputs_needed"] == n
    assert f"40 held-out inputs are too few to tell: at 97.5% agreement about {n} would" in v["reasons"][0]
    v = verdict(rows(), lf_of(k=90, n=100))  # 90% agreement: more inputs would not help
    assert v["inputs_needed"] is None and "too few" not in v["reasons"][0]
