"""`s2distill continue`: a next round from a serve inbox or a plain file, with its bookkeeping (merged inputs,
reused System 2 samples, the same held-out inputs, the chain of rounds in the report), on fake engines."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cascade_run import ORACLE, factory, make_run, stand_in_train

import s2distill.pipeline as pl
from s2distill.continual import merge, run_round, start
from s2distill.errors import ConfigError, DataError
from s2distill.rundir import read_json, read_jsonl
from s2distill.types import Example

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stand_in_training(monkeypatch):
    monkeypatch.setattr(pl.Pipeline, "fit", stand_in_train)


def _served(run: Path, questions: list[str]) -> Path:
    """Send ``questions`` through the run's cascade (no HTTP: the service the server wraps); the inbox."""
    from s2distill.serve import CascadeService

    svc = CascadeService(run, backend_factory=factory(), log=lambda s: None)
    try:
        paths = [svc.answer(q)["path"] for q in questions]
    finally:
        svc.close()
    assert "system2" in paths and "system1" in paths  # both routes taken: only the routed ones reach the inbox
    return run / "serve" / "inbox.jsonl"


def test_merge_dedupes_and_keeps_held_out_inputs_out() -> None:
    parent = [Example("a", "q a"), Example("b", "q b")]
    held = [Example("e", "q e")]
    new = [Example("a", "other text"), Example("x", "q b "), Example("y", "q e"), Example("z", "q z"),
           Example("z2", "q z")]
    out, counts = merge(parent, new, held)
    assert [e.id for e in out] == ["a", "b", "z"]
    assert counts == {"parent": 2, "new": 5, "duplicates": 3, "held_out_dropped": 1, "added": 1, "total": 3}


def test_a_round_from_the_serve_inbox_reuses_its_samples(tmp_path, stand_in_training) -> None:
    run = tmp_path / "run"
    make_run(run, n_eval=60, fallback="maj")  # maj@k samples: enough for the curator's vote, reused
    parent_train = list(read_jsonl(run / "data" / "train.jsonl"))
    held = {d["question"] for d in read_jsonl(run / "data" / "eval.jsonl")}
    fresh = [q for q in ORACLE if q not in held and q not in {d["question"] for d in parent_train}][:12]
    inbox = _served(run, fresh + fresh[:2])  # two asked twice
    routed = {r["question"] for r in map(json.loads, inbox.read_text().splitlines())}
    new = start(run, inbox)
    assert new == tmp_path / "run-r2"
    info = read_json(new / "round.json")
    assert info["round"] == 2 and (new / info["parent"]).resolve() == run.resolve()
    assert info["inputs"]["added"] == len(routed) and info["reused_samples"] > 0 and info["too_few_samples"] == 0
    rep = run_round(new, progress=False, log=lambda s: None, backend_factory=factory())
    train = list(read_jsonl(new / "data" / "train.jsonl"))
    assert [d["id"] for d in train[:len(parent_train)]] == [d["id"] for d in parent_train]
    assert {d["question"] for d in train[len(parent_train):]} == routed and all(d.get("gold") is None for d in train)
    assert (new / "data" / "eval.jsonl").read_text() == (run / "data" / "eval.jsonl").read_text()  # same held-out
    man = read_json(new / "manifest.json")["stages"]
    assert man["generate"]["reused_inputs"] == len(routed)
    assert man["generate"]["generated"] == 0  # the parent's inputs from its copied cache, the new from the inbox
    assert all(man[f"eval_{s}"]["generated"] == 0 for s in ("system1", "system2", "system2_maj"))  # frozen base
    traces = {d["example_id"]: d for d in read_jsonl(new / "traces" / "train.jsonl")}
    served = {r["id"]: r for r in map(json.loads, inbox.read_text().splitlines())}
    some = next(i for i in traces if i in served)
    assert traces[some]["samples"] == served[some]["samples"]  # the very samples the server paid for
    assert man["curate"]["kept"] >= read_json(run / "manifest.json")["stages"]["curate"]["kept"]
    assert [r["round"] for r in rep["rounds"]] == [1, 2] and rep["rounds"][1]["inputs"] == len(train)
    assert "Rounds (each trained from the base model" in (new / "report.md").read_text()
    html = (new / "report.html").read_text()
    assert 'id="rounds-table"' in html and html.count("<tr>", html.index('id="rounds-table"')) >= 3
    # a third round from a plain file, continuing the second: the chain has three rows
    plain = tmp_path / "more.jsonl"
    plain.write_text("".join(json.dumps({"question": q}) + "\n" for q in fresh + [next(iter(held))]))
    third = start(new, plain)
    assert third == tmp_path / "run-r3" and read_json(third / "round.json")["inputs"]["held_out_dropped"] == 1
    rep3 = run_round(third, progress=False, log=lambda s: None, backend_factory=factory())
    assert [r["round"] for r in rep3["rounds"]] == [1, 2, 3]
    gen3 = read_json(third / "manifest.json")["stages"]["generate"]
    assert gen3["generated"] > 0  # unrouted inputs: sampled
    assert gen3["reused_inputs"] == len(routed)  # round 2's inbox samples carried into round 3, not drawn again


def test_continue_errors_name_the_fix(tmp_path, stand_in_training) -> None:
    with pytest.raises(ConfigError, match="no config.yaml; fix: continue from a run directory"):
        start(tmp_path, tmp_path / "x.jsonl")
    run = tmp_path / "run"
    make_run(run, n_eval=40)
    with pytest.raises(DataError, match="not found; fix: pass RUN_DIR/serve/inbox.jsonl"):
        start(run, tmp_path / "missing.jsonl")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps({"question": "1 + 1"}) + "\n")
    b.write_text(json.dumps({"question": "2 + 2"}) + "\n")
    new = start(run, a)
    assert start(run, a) == new  # the same file: the same round, resumed
    with pytest.raises(ConfigError, match="from another file; fix: pass --run-dir NEW"):
        start(run, b)


def test_continue_from_the_command_line(tmp_path, stand_in_training) -> None:
    """The CLI wiring: a bad file is an error naming the fix, and the command's help is there."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run = tmp_path / "run"
    make_run(run, n_eval=40)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "no question field"}\n')
    r = subprocess.run([sys.executable, "-m", "s2distill.cli", "continue", str(run), "--data", str(bad)],
                       capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "no 'question' text" in r.stderr and "fix:" in r.stderr
    assert not (tmp_path / "run-r2").exists() or not any((tmp_path / "run-r2").iterdir())


def test_a_round_from_the_parents_adapter(tmp_path, stand_in_training) -> None:
    """--from-parent-adapter: refused without a trained parent adapter; recorded in round.json; the round's
    train stage gets the parent's adapter and a fingerprint that says so."""
    from s2distill import fingerprints
    from s2distill.config import load_config
    from s2distill.continual import RoundPipeline

    run = tmp_path / "run"
    make_run(run, n_eval=40)
    new_inputs = tmp_path / "new.jsonl"
    new_inputs.write_text(json.dumps({"question": "3 + 4"}) + "\n")
    adapter = run / "model" / "adapter"
    if adapter.exists():
        import shutil

        shutil.rmtree(adapter)
    with pytest.raises(ConfigError, match="no trained LoRA adapter.*fix:"):
        start(run, new_inputs, from_parent_adapter=True)
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    new = start(run, new_inputs, from_parent_adapter=True)
    assert read_json(new / "round.json")["init_adapter"] == "../run/model/adapter"
    with pytest.raises(ConfigError, match="with --from-parent-adapter; fix: pass --run-dir NEW"):
        start(run, new_inputs)
    cfg = load_config(new / "config.yaml")
    path, fp = RoundPipeline(cfg, run_dir=new, backend_factory=factory(), log=lambda s: None).init_adapter()
    assert path == adapter.resolve() and fp == read_json(run / "manifest.json")["stages"]["train"]["fingerprint"]
    assert fingerprints.train(cfg, "c", fp) != fingerprints.train(cfg, "c") == fingerprints.train(cfg, "c", None)


def test_training_continues_from_an_adapter(tiny_base: Path, tmp_path: Path) -> None:
    """The real trainer: a second training from the first's adapter (what a round from its parent runs);
    only in this process (a curriculum or the accelerate launcher is refused by name)."""
    from s2distill.config import load_config
    from s2distill.rundir import write_jsonl
    from s2distill.train import train_distilled

    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, [{"example_id": f"p{i}", "messages": [{"role": "user", "content": f"{i} + {i}?"}],
                         "target": f"The answer is {2 * i}."} for i in range(4)])
    cfg = load_config(ROOT / "configs" / "demo.yaml", [f"train.base_model={tiny_base}", "train.max_steps=1",
                                                       "train.per_device_batch_size=2",
                                                       "train.gradient_accumulation_steps=1"])
    first = train_distilled(cfg, pairs, tmp_path / "r1", progress=False, log=lambda s: None)
    second = train_distilled(cfg, pairs, tmp_path / "r2", progress=False, log=lambda s: None,
                             init_adapter=Path(first["adapter_dir"]))
    assert second["init_adapter"] == first["adapter_dir"] and second["steps"] == 1
    assert (tmp_path / "r2" / "adapter" / "adapter_model.safetensors").is_file()
    stepwise = load_config(ROOT / "configs" / "demo.yaml", ["train.curriculum=stepwise"])
    with pytest.raises(ConfigError, match="in this process only; fix:"):
        train_distilled(stepwise, pairs, tmp_path / "r3", init_adapter=Path(first["adapter_dir"]))


def test_a_greedy_fallbacks_single_samples_are_sampled_again(tmp_path, stand_in_training) -> None:
    """One greedy sample per routed input cannot pass a vote of method.n samples: those inputs are sampled as
    new inputs (counted in round.json), not reused and then rejected by curation."""
    run = tmp_path / "run"
    make_run(run, n_eval=60)  # eval.cascade_fallback greedy
    held = {d["question"] for d in read_jsonl(run / "data" / "eval.jsonl")}
    train_q = {d["question"] for d in read_jsonl(run / "data" / "train.jsonl")}
    fresh = [q for q in ORACLE if q not in held and q not in train_q][:10]
    inbox = _served(run, fresh)
    routed = {r["id"] for r in map(json.loads, inbox.read_text().splitlines())}
    new = start(run, inbox)
    info = read_json(new / "round.json")
    assert info["too_few_samples"] == len(routed) and info["reused_samples"] == 0
    run_round(new, progress=False, log=lambda s: None, backend_factory=factory())
    man = read_json(new / "manifest.json")["stages"]
    assert "reused_inputs" not in man["generate"] and man["generate"]["generated"] >= len(routed)


def _row(k: int, verdict: str, cascade: float | None, distilled: float = 3.0, risk: str = "answered") -> dict:
    return {"round": k, "run_dir": f"runs/r{k}", "verdict": verdict, "cascade_tokens": cascade,
            "distilled_tokens": distilled, "cascade_target": {"risk": risk, "max_disagreement": 0.1, "delta": 0.05,
                                                              "fallback": "maj"}}


def test_the_round_to_serve_deploys_the_same_guarantee_for_fewest_tokens() -> None:
    from s2distill.rounds import round_to_serve

    assert round_to_serve([_row(1, "cascade", 30.0), _row(2, "cascade", 20.0)]) is None  # the last is cheapest
    assert round_to_serve([_row(1, "cascade", 30.0), _row(2, "cascade", 17.0), _row(3, "cascade", 24.0)])["round"] == 2
    assert round_to_serve([_row(1, "cascade", 30.0), _row(2, "keep", 30.0)])["round"] == 1  # keep: System 2's cost
    assert round_to_serve([_row(1, "ship", None, 3.0), _row(2, "cascade", 5.0)])["round"] == 1  # ship: distilled
    assert round_to_serve([_row(1, "keep", 30.0), _row(2, "keep", 30.0)]) is None
    # another target, risk or fallback is another guarantee: never compared
    assert round_to_serve([_row(1, "cascade", 10.0, risk="all"), _row(2, "cascade", 20.0)]) is None
    assert round_to_serve([_row(1, "cascade", 10.0), {**_row(2, "cascade", 20.0), "cascade_target": None}]) is None


def test_a_round_that_deploys_worse_than_its_parent_says_so(tmp_path, stand_in_training) -> None:
    """The chain's report, verdict (--json) and server name the earlier round that deploys the same guarantee
    for fewer tokens; built on a real round (fake engines), its parent's report made cheaper."""
    from s2distill.checks import load_checked
    from s2distill.report import build_report
    from s2distill.rounds import deployed_tokens
    from s2distill.rundir import write_json

    run = tmp_path / "run"
    make_run(run, n_eval=60, fallback="maj")
    held = {d["question"] for d in read_jsonl(run / "data" / "eval.jsonl")}
    train_q = {d["question"] for d in read_jsonl(run / "data" / "train.jsonl")}
    new = start(run, _served(run, [q for q in ORACLE if q not in held and q not in train_q][:10]))
    rep = run_round(new, progress=False, log=lambda s: None, backend_factory=factory())
    mine = deployed_tokens(rep["rounds"][-1])
    parent_row = rep["rounds"][0]
    assert "serve_instead" not in rep["verdict"] or rep["verdict"]["serve_instead"]["round"] == 1
    # the parent deploys its cascade for fewer tokens than whatever this round deploys
    prep = read_json(run / "report.json")
    cheaper = (mine or 100.0) / 2
    best = prep["cascade"]["best"] or "logprob"
    sig = prep["cascade"]["signals"][best]
    prep["cascade"]["best"] = best
    sig["cascade"] = {**sig.get("cascade", {}), "tokens": cheaper, "coverage": 0.9}
    prep["verdict"] = {**prep["verdict"], "decision": "cascade"}
    write_json(run / "report.json", prep)
    assert parent_row["cascade_target"] == rep["rounds"][-1]["cascade_target"]
    report = build_report(new, load_checked(new / "config.yaml"))
    v = report["verdict"]
    assert v["serve_instead"]["round"] == 1 and v["serve_instead"]["tokens"] == cheaper
    assert Path(v["serve_instead"]["run_dir"]).resolve() == run.resolve()
    assert "round 1 deploys the same guarantee for fewer tokens" in v["line"] and "s2distill serve" in v["line"]
    write_json(new / "report.json", report)
    out = subprocess.run([sys.executable, "-m", "s2distill.cli", "verdict", str(new), "--json"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert json.loads(out.stdout)["serve_instead"]["round"] == 1
    from s2distill.serve import CascadeService

    lines: list[str] = []
    CascadeService(new, backend_factory=factory(), log=lines.append).close()
    assert any("round 1 deploys the same guarantee" in s for s in lines)
    # another target for this round: another guarantee, not compared
    other = build_report(new, load_checked(new / "config.yaml", ["eval.max_disagreement=0.2"]))
    assert "serve_instead" not in other["verdict"]
    # labels settle this round's verdict: the round deploys what the settled verdict says, and the earlier round
    # is named against that (here: the parent's cascade made cheaper than anything this round can deploy)
    from s2distill.spotcheck import draw

    sig["cascade"]["tokens"] = 0.01
    write_json(run / "report.json", prep)
    path, _ = draw(new, 20, seed=0)
    (new / "spotcheck").mkdir(exist_ok=True)
    (new / "spotcheck" / "labels.jsonl").write_text("".join(
        json.dumps({**d, "gold": ORACLE[d["question"]]}) + "\n" for d in read_jsonl(path)))
    settled = build_report(new, load_checked(new / "config.yaml"))
    v = settled["verdict"]
    assert v["decision"] and "spot-check labels" in v["line"] and "label_free_verdict" in v
    assert settled["rounds"][-1]["verdict"] == v["decision"]
    assert v["serve_instead"]["round"] == 1 and "round 1 deploys the same guarantee" in v["line"]
    assert "serve_instead" not in v["label_free_verdict"]
