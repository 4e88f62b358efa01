"""Stepwise internalization (s2distill.stepwise): step splitting, the stage schedule, the optimizer reset,
resume by stage, and that curation picks the kept trace by the vote, never by gold."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fakes import arithmetic_oracle, factory

from s2distill import stepwise
from s2distill.config import CurriculumSection, TrainSection
from s2distill.checks import load_checked
from s2distill.curate import NoFilter, SelfConsistency
from s2distill.errors import ConfigError, DataError
from s2distill.pipeline import Pipeline
from s2distill.fingerprints import train_items
from s2distill.rundir import read_jsonl
from s2distill.tasks.arithmetic import ArithmeticTask
from s2distill.types import Call, Completion, Example, Sample, Trace, TrainPair


def test_split_steps_sentences_lines_equations_and_answer_cut() -> None:
    assert stepwise.split_steps("3 + 5 = 8. 8 * 2 = 16. The answer is 16.") == ["3 + 5 = 8.", "8 * 2 = 16."]
    assert stepwise.split_steps("First add.\nThen 8 * 2 = 16\n\nThe answer is 16") == ["First add.", "Then 8 * 2 = 16"]
    assert stepwise.split_steps("3 + 5 = 8, 8 * 2 = 16, so the answer is 16.") == ["3 + 5 = 8,", "8 * 2 = 16,"]
    assert stepwise.split_steps("He has 1,000 coins and 2.5 kg. So 1,000 / 2 = 500.") == [
        "He has 1,000 coins and 2.5 kg.", "So 1,000 / 2 = 500."]  # no split inside numbers
    assert stepwise.split_steps("The answer is 4.") == []
    assert stepwise.split_steps("compute everything at once to get sixteen") == ["compute everything at once to get sixteen"]


def _pair(i: int, trace: str | None, target: str = "16") -> TrainPair:
    meta = {"votes": {target: 3}} if trace is None else {"votes": {target: 3}, "trace": trace}
    return TrainPair(example_id=f"p{i}", messages=({"role": "user", "content": f"q{i}"},), target=target, meta=meta)


def test_step_schedule_one_step_per_stage_last_stage_is_plain_distillation() -> None:
    pairs = [_pair(0, "a = 1. b = 2. c = 3. The answer is 16."), _pair(1, "x = 16. The answer is 16."),
             _pair(2, "The answer is 16.")]
    plan = stepwise.plan_steps(pairs)
    assert plan.n_stages == 4 and plan.n_steps == (3, 1, 0)
    assert plan.unsplittable == 1 and plan.no_trace == 1  # the one-step trace is counted
    targets = [[p.target for p in ps] for ps in plan.stage_pairs]
    assert targets[0] == ["a = 1. b = 2. c = 3. The answer is 16.", "x = 16. The answer is 16.", "16"]
    assert targets[1] == ["b = 2. c = 3. The answer is 16.", "16", "16"]  # unsplittable: removed whole at stage 1
    assert targets[2] == ["c = 3. The answer is 16.", "16", "16"]
    assert targets[3] == [p.target for p in pairs]  # the answer alone: exactly plain distillation's target
    assert [p.meta["stage"] for p in plan.stage_pairs[2]] == [2, 2, 2]
    assert plan.summary()["unsplittable_traces"] == 1


def test_fixed_stage_count_removes_a_proportional_share() -> None:
    pairs = [_pair(0, "a. b. c. d. The answer is 16."), _pair(1, "x. y. The answer is 16."), _pair(2, "z.")]
    plan = stepwise.plan_steps(pairs, stages=3)
    assert plan.n_stages == 3
    t = [[p.target for p in ps] for ps in plan.stage_pairs]
    assert t[0][0].startswith("a. b. c. d.") and t[1][0] == "c. d. The answer is 16." and t[2][0] == "16"
    assert t[1][1] == "y. The answer is 16." and t[1][2] == "16"  # ceil(1/2 * 1) = 1: the unsplittable one goes
    assert stepwise.removed_steps(0, 5, 3, True) == 0 and stepwise.removed_steps(2, 5, 3, True) == 5


def test_token_schedule_with_removal_smoothing() -> None:
    def tok(text: str) -> list[str]:
        return [w + " " for w in text.split()]

    pairs = [_pair(i, " ".join(f"w{j}" for j in range(9)) + ". The answer is 16.") for i in range(40)]
    sharp = stepwise.plan_tokens(pairs, tok, per_stage=3, lam=float("inf"))
    assert sharp.n_stages == 4 and sharp.unit == "tokens"
    assert [sharp.stage_pairs[k][0].target for k in range(4)] == [
        "w0 w1 w2 w3 w4 w5 w6 w7 w8. The answer is 16.", "w3 w4 w5 w6 w7 w8. The answer is 16.",
        "w6 w7 w8. The answer is 16.", "16"]
    smooth = stepwise.plan_tokens(pairs, tok, per_stage=3, lam=0.5, seed=1)
    kept1 = [len(p.target.split()) for p in smooth.stage_pairs[1]]
    assert max(kept1) == 10 and min(kept1) < 10  # some rows lose extra tokens, none fewer than scheduled
    assert all(p.target.split()[0] in {"w0"} for p in smooth.stage_pairs[0])  # stage 0 never smoothed
    rng = random.Random(0)
    offs = [stepwise.smoothing_offset(rng, 4.0) for _ in range(2000)]
    assert 0.95 < offs.count(0) / len(offs) <= 1.0 and stepwise.smoothing_offset(rng, float("inf")) == 0


def test_pairs_without_a_trace_fail_with_the_fix() -> None:
    with pytest.raises(DataError, match="no System 2 trace.*fix: use curate.name=self_consistency"):
        stepwise.plan_steps([_pair(0, None)])


@pytest.mark.parametrize("key,value,msg", [("name", "stepwize", "unknown train.curriculum.name"),
                                           ("epochs_per_stage", 0, "epochs_per_stage must be > 0"),
                                           ("stages", 1, "train.curriculum.stages must be 0"),
                                           ("remove_per_stage", -1, "remove_per_stage must be >= 0")])
def test_config_checks(key, value, msg) -> None:
    with pytest.raises(ConfigError, match=msg):
        load_checked(data={"name": "t", "backend": {"name": "fake"}, "train": {"curriculum": {key: value}}})


def test_default_curriculum_keys_leave_the_train_fingerprint_alone() -> None:
    keys = train_items(TrainSection())
    assert not {"curriculum", "epochs_per_stage", "stages", "remove_per_stage", "removal_smoothing"} & set(keys)
    on = train_items(TrainSection(curriculum=CurriculumSection(name="stepwise")))
    assert on["curriculum"] == "stepwise"


def _sample(text: str, answer: str) -> Sample:
    return Sample(response=text, answer=answer, calls=(Call("cot", (), Completion(text, 5)),))


def test_curation_keeps_a_trace_that_agrees_with_the_vote_not_with_gold() -> None:
    task = ArithmeticTask()
    ex = Example(id="e0", question="Tom has 2 apples.", gold="5")  # gold 5; the majority says 4
    tr = Trace("e0", "cot", (_sample("2 + 3 = 5. The answer is 5.", "5"), _sample("2 + 2 = 4. The answer is 4.", "4"),
                             _sample("2 * 2 = 4. The answer is 4.", "4")))
    pairs, _ = SelfConsistency(min_agreement=0.5)(task, [ex.unlabeled()], [tr])
    assert pairs[0].target == "4" and pairs[0].meta["trace"] == "2 + 2 = 4. The answer is 4."
    pairs_g, _ = SelfConsistency(min_agreement=0.5)(task, [ex], [tr])  # even a labeled input changes nothing
    assert pairs_g[0].meta["trace"] == pairs[0].meta["trace"]
    nf, _ = NoFilter()(task, [ex.unlabeled()], [tr])
    assert nf[0].meta["trace"] == "2 + 3 = 5. The answer is 5."  # the first sample, as its answer


def _cfg(tiny_base: Path, **train) -> object:
    return load_checked(data={
        "name": "t", "backend": {"name": "fake"}, "task": {"n_train": 8, "n_eval": 4, "options": {"depth": 2}},
        "method": {"n": 3},
        "train": {"base_model": str(tiny_base), "curriculum": "stepwise", "epochs_per_stage": 1,
                  "per_device_batch_size": 4, "gradient_accumulation_steps": 1, "lora_r": 4, "lora_alpha": 8,
                  "max_length": 128, "threads": 1, **train},
        "eval": {"systems": ["system1", "distilled"]}})


def test_stepwise_pipeline_stages_optimizer_reset_and_resume(tiny_base: Path, tmp_path: Path, monkeypatch) -> None:
    """Real training steps (tiny random Qwen2), fake serving: every stage continues the previous adapter with a
    fresh optimizer; a run killed in stage 1 continues there; the report carries every stage's point."""
    import s2distill.train as train_mod

    oracle = arithmetic_oracle(depth=2)
    real, calls = train_mod.train_lora, []

    def dies_in_stage1(pairs, base, out, cfg, progress=True, init_adapter=None):
        calls.append(Path(out).name)
        if Path(out).name == "stage1" and calls.count("stage1") == 1:
            raise KeyboardInterrupt("killed in stage 1")
        return real(pairs, base, out, cfg, progress=progress, init_adapter=init_adapter)

    monkeypatch.setattr(train_mod, "train_lora", dies_in_stage1)
    cfg = _cfg(tiny_base, stages=3)
    with pytest.raises(KeyboardInterrupt):
        Pipeline(cfg, run_dir=tmp_path, backend_factory=factory(oracle), progress=False).run()
    assert calls == ["stage0", "stage1"]
    logs: list[str] = []
    report = Pipeline(cfg, run_dir=tmp_path, backend_factory=factory(oracle), log=logs.append, progress=False).run()
    assert calls == ["stage0", "stage1", "stage1", "stage2"]  # stage 0 was not trained again
    assert "[train_stage0] unchanged, skipped" in logs and "[eval_stage0] unchanged, skipped" in logs

    t = report["train"]
    assert t["curriculum"] == "stepwise" and [r["stage"] for r in t["stages"]] == [0, 1, 2]
    assert all(r["optimizer_state_at_start"] == 0 for r in t["stages"])  # a fresh optimizer every stage
    assert t["stages"][0]["init_adapter"] is None
    assert t["stages"][1]["init_adapter"] == t["stages"][0]["adapter_dir"]  # ... on the previous stage's adapter
    assert t["stages"][2]["init_adapter"] == t["stages"][1]["adapter_dir"]
    assert t["steps"] == sum(r["steps"] for r in t["stages"]) and t["stages"][0]["steps"] >= 1
    pairs = read_jsonl(tmp_path / "curate" / "pairs.jsonl")
    assert all("trace" in p["meta"] for p in pairs)
    s0 = [json.loads(x) for x in (tmp_path / "model" / "stages" / "stage0" / "loss.jsonl").read_text().splitlines()]
    assert s0  # real optimizer steps happened
    chars = t["plan"]["mean_target_chars"]
    assert chars[0] > chars[1] > chars[2]  # the trace shrinks stage by stage
    assert (tmp_path / "model" / "adapter" / "adapter_config.json").exists()  # the last stage = the distilled model
    sw = report["stepwise"]
    assert [r.get("accuracy") is not None for r in sw["stages"]] == [True, True, True]
    dist = next(r for r in report["rows"] if r["role"] == "distilled")
    assert sw["stages"][-1]["accuracy"] == dist["accuracy"]
    assert sw["best_partial_stage"]["stage"] in (0, 1)
    rows, _ = spec_table(report)  # the benchmark's experiment spec reads this real report's stages
    stage_rows = [r for r in rows if r["role"] == "stage" and r["label"].startswith("stage ")]
    assert [r["optimizer_steps"] for r in stage_rows] == [sum(x["steps"] for x in t["stages"][:k + 1]) for k in range(3)]
    assert stage_rows[-1]["accuracy"] == dist["accuracy"] and stage_rows[-1]["optimizer_steps"] == t["steps"]
    md = (tmp_path / "report.md").read_text()
    assert "Stepwise curriculum (3 stages by steps" in md
    assert f"Best partial stage: {sw['best_partial_stage']['stage']} (" in md and "model/stages/stage" in md
    html = (tmp_path / "report.html").read_text()
    assert "stage 0" in html and "stage 1" in html


def spec_table(report: dict) -> tuple[list[dict], str]:
    """The rows and markdown benchmarks/experiments/stepwise.yaml makes of ``report`` (its stepwise run) and two
    constructed runs (one-shot, base)."""
    from s2distill.experiment import each_values, load_experiment, render, result_of, run_values

    exp = load_experiment(Path(__file__).resolve().parents[1] / "benchmarks" / "experiments" / "stepwise.yaml")
    row = {"n": 40, "accuracy": 0.5, "ci95": [0.35, 0.65], "mean_generated_tokens": 10.0, "system": "x"}
    reports = {"stepwise": report, "oneshot": {"rows": [{**row, "role": "distilled"}], "train": {"steps": 30}},
               "base": {"rows": [{**row, "role": "system1"}, {**row, "role": "system2"}]}}
    done = {}
    for spec in exp.runs:
        labels = {"run": spec.name, **spec.labels}
        done[spec.name] = {"config": "c", "overrides": [], "labels": labels, "note": None, "setup": {},
                           "info": {"n_train": 1, "n_eval": 1}, "systems": run_values(exp, reports[spec.name], labels),
                           "each": each_values(exp, spec.name, reports[spec.name], labels)}
    res = result_of(exp, done, [])
    return [{**r["values"], "role": r["role"]} for r in res["rows"]], render(res)


def test_the_stepwise_experiment_names_what_the_issue_asks_for() -> None:
    """benchmarks/experiments/stepwise.yaml: System 1, CoT, one-shot and stepwise distilled, the best partial stage
    and every stage, with the optimizer steps up to each (a report's stage list, read by the spec's ``each`` rows)."""
    row = {"n": 40, "accuracy": 0.5, "ci95": [0.35, 0.65], "mean_generated_tokens": 10.0}
    stages = [{**row, "stage": 0, "steps": 10, "steps_so_far": 10, "mean_target_chars": 40.0, "accuracy": 0.7},
              {**row, "stage": 1, "steps": 10, "steps_so_far": 20, "mean_target_chars": 20.0},
              {**row, "stage": 2, "steps": 10, "steps_so_far": 30, "mean_target_chars": 2.0, "accuracy": 0.1}]
    rep = {"rows": [{**row, "role": "distilled", "system": "d"}], "train": {"steps": 30},
           "stepwise": {"total_steps": 30, "stages": stages, "best_partial_stage": stages[0]}}
    rows, md = spec_table(rep)
    assert [r["label"] for r in rows] == ["System 1", "CoT", "one-shot distilled", "stepwise distilled",
                                          "stepwise best partial (stage 0)", "stage 0", "stage 1", "stage 2"]
    assert [r["optimizer_steps"] for r in rows] == [None, None, 30, 30, 10, 10, 20, 30]
    assert [r["trace_left"] for r in rows][-3:] == [40.0, 20.0, 2.0] and rows[4]["accuracy"] == 0.7
    assert "| arith_d2 | stepwise best partial (stage 0) | 40 | 70.0 |" in md
    rep["stepwise"]["best_partial_stage"] = None  # no partial stage beat the last: no such row
    assert "stepwise best partial" not in spec_table(rep)[1]


@pytest.mark.slow
def test_stepwise_on_the_embedded_model(tmp_path: Path) -> None:
    """Real optimizer steps on the embedded 0.5B: two stages of one step each, the second continuing the first's
    adapter with a fresh optimizer (serving faked: the eval only has to run)."""
    from s2distill.errors import ModelError
    from s2distill.models import resolve_hf_model

    try:
        resolve_hf_model("default")
    except ModelError as e:
        pytest.skip(f"embedded model not available: {e}")
    cfg = load_checked(data={
        "name": "t", "backend": {"name": "fake"}, "task": {"n_train": 6, "n_eval": 3, "options": {"depth": 2}},
        "method": {"n": 3}, "curate": {"min_agreement": 0.5},
        "train": {"curriculum": "stepwise", "stages": 2, "epochs_per_stage": 1, "per_device_batch_size": 8,
                  "gradient_accumulation_steps": 1, "max_length": 160},
        "eval": {"systems": ["distilled"]}})
    report = Pipeline(cfg, run_dir=tmp_path, backend_factory=factory(arithmetic_oracle(depth=2)), progress=False).run()
    st = report["train"]["stages"]
    assert [r["steps"] for r in st] == [1, 1] and [r["optimizer_state_at_start"] for r in st] == [0, 0]
    assert st[1]["init_adapter"] == st[0]["adapter_dir"] and report["train"]["trainable_params"] > 1_000_000
    assert all(r["final_loss"] > 0 for r in st)
