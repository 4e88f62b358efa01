import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import arithmetic_oracle, factory

from s2distill.config import load_config
from s2distill.errors import ConfigError
from s2distill.pipeline import Pipeline
from s2distill.rundir import read_jsonl

HERE = Path(__file__).parent


def cfg(**over):
    data = {"name": "t", "backend": {"name": "fake"}, "task": {"n_train": 12, "n_eval": 8}, "method": {"n": 4},
            "train": {"enabled": False}, "eval": {"systems": ["system1", "system2", "system2_maj"], "k": 3}}
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(data=data)


def test_pipeline_end_to_end_on_fake(tmp_path):
    oracle = arithmetic_oracle()
    logs = []
    report = Pipeline(cfg(), run_dir=tmp_path, backend_factory=factory(oracle), log=logs.append, progress=False).run()
    rows = {r["system"]: r for r in report["rows"]}
    assert set(rows) == {"system1", "cot", "cot_maj@3"}
    assert rows["system1"]["accuracy"] == 0.0 and rows["system1"]["n"] == 8
    assert rows["cot"]["mean_generated_tokens"] > rows["system1"]["mean_generated_tokens"]
    assert rows["cot_maj@3"]["calls_per_answer"] == 3
    for f in ("config.yaml", "env.json", "manifest.json", "data/train.jsonl", "data/eval.jsonl", "traces/train.jsonl",
              "curate/pairs.jsonl", "curate/rejects.jsonl", "curate/chat.jsonl", "eval/system1.jsonl", "report.md"):
        assert (tmp_path / f).exists(), f
    train = read_jsonl(tmp_path / "data" / "train.jsonl")
    assert all(r["gold"] is None for r in train)  # what curation reads is unlabeled
    pairs = read_jsonl(tmp_path / "curate" / "pairs.jsonl")
    rejects = read_jsonl(tmp_path / "curate" / "rejects.jsonl")
    assert len(pairs) + len(rejects) == 12 and pairs
    chat = read_jsonl(tmp_path / "curate" / "chat.jsonl")
    assert chat[0]["messages"][-1] == {"role": "assistant", "content": pairs[0]["target"]}
    assert "step by step" not in json.dumps(chat)  # reasoning dropped from the training pairs
    q = report["curation"]["quality_checked_afterwards"]
    assert q["checked"] == len(pairs) and 0 <= q["target_accuracy"] <= 1

    # a rerun with nothing changed skips every stage and generates nothing
    logs.clear()
    Pipeline(cfg(), run_dir=tmp_path, backend_factory=factory(oracle), log=logs.append, progress=False).run()
    assert sum("skipped" in m for m in logs) == 6
    # changing the curator reruns curate only (generation is reused)
    logs.clear()
    Pipeline(cfg(curate={"min_agreement": 1.0}), run_dir=tmp_path, backend_factory=factory(oracle), log=logs.append,
             progress=False).run()
    assert any(m.startswith("[curate] running") for m in logs) and not any(m.startswith("[generate] running")
                                                                           for m in logs)


def test_curate_stage_never_sees_gold(tmp_path, monkeypatch):
    seen = []
    from s2distill import curate

    real = curate.SelfConsistency.__call__

    def spy(self, task, examples, traces):
        seen.extend(e.gold for e in examples)
        return real(self, task, examples, traces)

    monkeypatch.setattr(curate.SelfConsistency, "__call__", spy)
    Pipeline(cfg(), run_dir=tmp_path, backend_factory=factory(arithmetic_oracle()), log=lambda s: None,
             progress=False).run(until="curate")
    assert len(seen) == 12 and all(g is None for g in seen)


def test_distilled_stage_uses_trained_model(tmp_path, monkeypatch):
    import s2distill.pipeline as pl

    calls = {}

    def fake_fit(self):
        calls["train"] = read_jsonl(self.rd / "curate" / "pairs.jsonl")
        return [], {}

    monkeypatch.setattr(pl.Pipeline, "fit", fake_fit)
    c = cfg(eval={"systems": ["system1", "distilled"]}, train={"enabled": True})
    report = Pipeline(c, run_dir=tmp_path, backend_factory=factory(arithmetic_oracle()), log=lambda s: None,
                      progress=False).run()
    rows = {r["system"]: r for r in report["rows"]}
    assert calls["train"] and rows["distilled"]["accuracy"] == 1.0 and rows["system1"]["accuracy"] == 0.0


def _lines(p: Path) -> int:
    return sum(1 for _ in open(p)) if p.exists() else 0


def test_kill_9_mid_generation_resumes_without_loss_or_duplicates(tmp_path):
    """Really kill a subprocess mid-generation; the rerun generates exactly the missing samples."""
    run_dir, total = tmp_path / "run", 30 * 4 + 5
    cache = run_dir / "cache" / "samples.jsonl"
    log1, log2 = tmp_path / "calls1.log", tmp_path / "calls2.log"
    proc = subprocess.Popen([sys.executable, str(HERE / "resume_worker.py"), str(run_dir), str(log1), "0.03"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while _lines(cache) < 40 and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cached_at_kill = len({json.loads(line)["key"] for line in open(cache) if line.endswith("\n")})
    assert 40 <= cached_at_kill < 120, "the kill must land mid-generation"
    assert not (run_dir / "traces" / "train.jsonl").exists()

    subprocess.run([sys.executable, str(HERE / "resume_worker.py"), str(run_dir), str(log2), "0"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    keys = [json.loads(line)["key"] for line in open(cache)]
    assert len(keys) == len(set(keys)) == total  # nothing duplicated, nothing missing
    assert _lines(log2) == total - cached_at_kill  # the rerun generated exactly the missing samples
    assert _lines(log1) - cached_at_kill <= 1  # at most the one in-flight sample was lost at the kill

    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, str(HERE / "resume_worker.py"), str(fresh), str(tmp_path / "c3.log"), "0"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert (run_dir / "traces" / "train.jsonl").read_text() == (fresh / "traces" / "train.jsonl").read_text()


def test_openai_distilled_needs_a_served_name():
    from s2distill.errors import ConfigError
    from s2distill.pipeline import default_backend_factory

    c = load_config(data={"backend": {"name": "openai", "base_url": "http://127.0.0.1:9/v1"}})
    with pytest.raises(ConfigError, match="eval.distilled_served_model"):
        default_backend_factory(c, "distilled", {})


def test_empty_curation_stops_before_training_with_a_fix(tmp_path):
    from s2distill.errors import ConfigError

    c = cfg(curate={"min_agreement": 1.0, "min_votes": 5}, train={"enabled": True},
            eval={"systems": ["system1", "distilled"]})
    with pytest.raises(ConfigError, match="curation kept no examples"):
        Pipeline(c, run_dir=tmp_path, backend_factory=factory(arithmetic_oracle()), log=lambda s: None,
                 progress=False).run()
    assert (tmp_path / "eval" / "system1.jsonl").exists()  # what was computed before is kept


def test_evaluate_base_runs_only_data_and_the_base_evaluations(tmp_path):
    logs = []
    p = Pipeline(cfg(), run_dir=tmp_path, backend_factory=factory(arithmetic_oracle()), log=logs.append,
                 progress=False)
    report = p.evaluate_base(("system1", "system2"))
    assert [r["role"] for r in report["rows"]] == ["system1", "system2"]
    assert not (tmp_path / "traces").exists() and not (tmp_path / "curate").exists()  # no train sampling
    assert (tmp_path / "report.md").exists()
    assert not any(m.startswith("[generate]") for m in logs)
    with pytest.raises(ConfigError, match="evaluate_base"):
        p.evaluate_base(("distilled",))


def test_the_log_says_which_stage_of_how_many(tmp_path, monkeypatch):
    """Every stage of a run logs its place in the whole ("stage 5 of 8") and the time since the run started;
    the plan is exactly the stages the run goes through, in order (a skipped stage keeps its number)."""
    import re

    import s2distill.pipeline as pl

    monkeypatch.setattr(pl.Pipeline, "fit", lambda self: ([], {}))
    c = cfg(eval={"systems": ["system1", "system2", "system2_maj", "distilled"]}, train={"enabled": True})
    for rerun in (False, True):
        logs = []
        Pipeline(c, run_dir=tmp_path, backend_factory=factory(arithmetic_oracle()), log=logs.append,
                 progress=False).run()
        placed = [re.match(r"\[(\w+)\] (running|unchanged, skipped) \(stage (\d+) of (\d+), \d+m\d\ds into the run\)", m)
                  for m in logs if " of " in m and "into the run" in m]
        assert [(m[1], int(m[3]), int(m[4])) for m in placed] == [
            (name, k, 10) for k, name in enumerate(["data", "generate", "curate", "eval_system1", "eval_system2",
                                                   "eval_system2_maj", "train", "eval_distilled",
                                                   "eval_distilled_votes", "retention"], 1)]
        assert all(m[2] == ("unchanged, skipped" if rerun else "running") for m in placed if m[1] != "train")
    p = Pipeline(c, run_dir=tmp_path / "u", backend_factory=factory(arithmetic_oracle()))
    assert p.stage_plan("curate") == ["data", "generate", "curate"]
    assert p.stage_plan("eval") == ["data", "generate", "curate", "eval_system1", "eval_system2", "eval_system2_maj"]
    assert p.stage_plan("train") == p.stage_plan("eval") + ["train"]
    off = cfg(eval={"systems": ["system1", "system2", "system2_maj", "distilled"], "cascade_k": 0, "retention": False},
              train={"enabled": True})
    assert Pipeline(off, run_dir=tmp_path / "v", backend_factory=factory(arithmetic_oracle())).stage_plan()[-1] \
        == "eval_distilled"  # no vote signal asked for: no sampled answers
    no_maj = cfg(eval={"systems": ["system1", "distilled"], "retention": False}, train={"enabled": True})
    assert Pipeline(no_maj, run_dir=tmp_path / "w", backend_factory=factory(arithmetic_oracle())).stage_plan()[-1] \
        == "eval_distilled"  # no maj@k: no cascade to calibrate, so no samples for it


@pytest.mark.parametrize("over", [
    {},
    {"eval": {"systems": ["system1", "system2", "system2_maj", "distilled"], "rewordings": 2}, "train": {"enabled": True},
     "task": {"name": "coin_flip", "n_train": 4, "n_eval": 8}},
    {"eval": {"systems": ["system1", "distilled"], "retention": True}, "train": {"enabled": True}},
])
def test_stages_are_declared_with_their_upstream_before_them(tmp_path, over):
    """Each declared stage names its --until step and its upstream stages; every upstream stage comes earlier in
    the list (or is the data stage a file evaluation brings), names are unique and the steps never go back."""
    from s2distill.stages import STEPS, Stage

    p = Pipeline(cfg(**over), run_dir=tmp_path, backend_factory=factory(arithmetic_oracle()), log=lambda s: None)
    stages = p.stages()
    names = [s.name for s in stages]
    assert all(isinstance(s, Stage) for s in stages) and len(set(names)) == len(names)
    for i, s in enumerate(stages):
        assert set(s.upstream) <= set(names[:i]), (s.name, s.upstream)
    steps = [STEPS.index(s.step) for s in stages]
    assert steps == sorted(steps)
    assert p.stage_plan() == names
    if over.get("eval", {}).get("rewordings"):
        assert {"eval_system1_reworded", "eval_distilled_reworded"} <= set(names)
    for until in STEPS[:4]:  # --until cuts the list after its step, never in the middle of one
        cut = p.stage_plan(until)
        assert cut == names[:len(cut)] and {s.step for s in stages[:len(cut)]} <= set(STEPS[:STEPS.index(until) + 1])
        assert len(cut) == len(names) or STEPS.index(stages[len(cut)].step) > STEPS.index(until)
    assert p.stage_plan("train")[-1] == "train"  # asked for: it trains even when the config does not
    with pytest.raises(ValueError, match="step 'evaluate'"):
        Stage("x", "evaluate", (), lambda r: "", lambda r: ([], {}))


def test_the_report_is_a_type_that_writes_the_same_report_json(tmp_path):
    """report_types.Report reads every report.json and writes it back identical (key order included); its rows are
    SystemRow objects; a run's report on disk round-trips, and an unknown row key is refused."""
    from s2distill.report_types import Report, SystemRow

    c = cfg(eval={"systems": ["system1", "system2", "system2_maj"]})
    Pipeline(c, run_dir=tmp_path, backend_factory=factory(arithmetic_oracle()), log=lambda s: None, progress=False).run()
    d = json.loads((tmp_path / "report.json").read_text())
    r = Report.load(tmp_path)
    assert json.dumps(r.to_json()) == json.dumps(d)
    assert isinstance(r.rows[0], SystemRow) and r.row("system1").accuracy == 0.0 and r.row("distilled") is None
    assert r.row("system2").ci95[0] <= r.row("system2").accuracy <= r.row("system2").ci95[1]
    with pytest.raises(ValueError, match="unknown keys"):
        SystemRow.from_json({**d["rows"][0], "accuracy_typo": 1})
