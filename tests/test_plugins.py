"""Extension points: package.module:attr names, the config's `plugins:` key, entry points, and
backends built through the registry; a task and a backend defined outside the package run through
`s2distill run`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import requires_server
from s2distill import registry
from s2distill.backends import BACKENDS
from s2distill.curate import CURATORS
from s2distill.methods import METHODS
from s2distill.tasks import TASKS
from s2distill.config import RunConfig
from s2distill.checks import load_checked
from s2distill.errors import ConfigError
from s2distill.pipeline import backend_model_id, backend_spec

ROOT = Path(__file__).resolve().parents[1]

TASK_MODULE = textwrap.dedent('''
    """A task defined outside s2distill: 'How many letters in WORD?'"""
    from dataclasses import dataclass, field

    from s2distill.tasks import TASKS
    from s2distill.tasks.answers import extract_number, normalize_number
    from s2distill.tasks.base import Task
    from s2distill.types import Example

    WORDS = ["apple", "kiwi", "banana", "fig", "cherry", "plum", "mango", "pear", "lemon", "lime", "grape", "date"]


    @dataclass(frozen=True)
    class LetterCountOptions:
        words: list = field(default_factory=lambda: list(WORDS))


    @TASKS.register("letter_count")
    class LetterCountTask(Task):
        name = "letter_count"
        Options = LetterCountOptions
        answer_hint = "<number>"
        direct_instruction = "Answer with only the number."

        def __init__(self, options=None):
            self.options = options or LetterCountOptions()

        def load(self, split, n, seed=0):
            words = self.options.words[::2] if split == "train" else self.options.words[1::2]
            return [Example(id=f"{split}-{w}", question=f"How many letters are in the word '{w}'?", gold=str(len(w)))
                    for w in words][: n if n >= 0 else None]

        def extract(self, text):
            return extract_number(text)

        def normalize(self, answer):
            return normalize_number(answer)
''')

BACKEND_MODULE = textwrap.dedent('''
    """A backend defined outside s2distill: the llama.cpp server backend, logging every completion."""
    import json
    import os

    from s2distill.backends import BACKENDS
    from s2distill.backends.llamacpp import LlamaCppBackend


    class LoggingLlamaCpp(LlamaCppBackend):
        name = "logging_llamacpp"

        @classmethod
        def config_kwargs(cls, cfg, weights, trained):
            return {**super().config_kwargs(cfg, weights, trained), "parallel": 2, "ctx_per_slot": 768}

        def iter_generate(self, requests):
            for i, j, c in super().iter_generate(requests):
                with open(os.environ["PLUGIN_LOG"], "a") as fh:
                    fh.write(json.dumps({"text": c.text, "tokens": c.completion_tokens}) + "\\n")
                yield i, j, c


    BACKENDS.register("logging_llamacpp", LoggingLlamaCpp)
''')


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    pkg = tmp_path / "plug" / "my_plugins"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tasks.py").write_text(TASK_MODULE)
    (pkg / "backends.py").write_text(BACKEND_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "plug"))
    yield tmp_path / "plug"
    for m in [m for m in sys.modules if m.startswith("my_plugins")]:
        del sys.modules[m]
    TASKS._entries.pop("letter_count", None)
    TASKS._objects.pop("letter_count", None)
    BACKENDS._entries.pop("logging_llamacpp", None)


def cli(args: list[str], cwd: Path, extra_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {}),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(extra_path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "s2distill.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def test_module_attr_names_and_plugins_key(plugin_dir):
    cfg = load_checked(data={"backend": {"name": "fake"}, "task": {"name": "my_plugins.tasks:LetterCountTask"}})
    assert cfg.task.name == "my_plugins.tasks:LetterCountTask"
    cfg = load_checked(data={"plugins": ["my_plugins.tasks"], "backend": {"name": "fake"},
                            "task": {"name": "letter_count", "options": {"words": ["ab", "abc"]}}})
    assert cfg.plugins == ["my_plugins.tasks"] and "letter_count" in TASKS.names()
    with pytest.raises(ConfigError, match="cannot import module 'my_plugins.nope'"):
        load_checked(data={"backend": {"name": "fake"}, "task": {"name": "my_plugins.nope:X"}})
    with pytest.raises(ConfigError, match="has no attribute 'Nope'"):
        load_checked(data={"backend": {"name": "fake"}, "task": {"name": "my_plugins.tasks:Nope"}})
    with pytest.raises(ConfigError, match="plugins: cannot import 'no_such_pkg'"):
        load_checked(data={"plugins": ["no_such_pkg"], "backend": {"name": "fake"}})
    with pytest.raises(ConfigError, match="does not meet the Task contract"):
        load_checked(data={"backend": {"name": "fake"}, "task": {"name": "my_plugins.tasks:WORDS"}})


def test_unknown_name_mentions_the_extension_points():
    with pytest.raises(ConfigError, match="did you mean 'arithmetic'.*package.module:attr"):
        load_checked(data={"task": {"name": "arithmetc"}})


def test_entry_points_are_read(tmp_path, monkeypatch, plugin_dir):
    dist = tmp_path / "site" / "my_plugins_dist-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugins-dist\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[s2distill.tasks]\nletters_ep = my_plugins.tasks:LetterCountTask\n"
                                           "[s2distill.curators]\nmy_none = s2distill.curate:NoFilter\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for reg in (TASKS, CURATORS):
        monkeypatch.setattr(reg, "_entry_points_read", False)
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
    cfg = load_checked(data={"backend": {"name": "fake"}, "task": {"name": "letters_ep"}, "curate": {"name": "my_none"}})
    assert TASKS.get(cfg.task.name).__name__ == "LetterCountTask"
    assert CURATORS.get("my_none").__name__ == "NoFilter"
    assert TASKS.group == "s2distill.tasks" and BACKENDS.group == "s2distill.backends"
    assert METHODS.group == "s2distill.methods" and CURATORS.group == "s2distill.curators"


def test_register_forms():
    r = registry.Registry("thing", {})
    r.register("a", "json:dumps")

    @r.register("b")
    def b():
        return 1

    assert r.get("a") is json.dumps and r.get("b") is b and r.names() == ["a", "b"]
    with pytest.raises(ConfigError, match="not 'package.module:attr'"):
        r.register("c", "not a path")


def test_backends_are_built_through_the_registry_with_the_same_model_ids(tmp_path):
    """Every built-in backend says its own arguments; the model ids (cache keys) are as before."""
    cfg = RunConfig()
    cls, kw = backend_spec(cfg, "base", {})
    assert cls.__name__ == "LlamaCppBackend" and kw["model"] == "default" and kw["lora"] == [] and kw["parallel"] == 16
    cls, kw = backend_spec(cfg, "distilled", {"lora_gguf": "/x/distilled-lora.gguf"})
    assert kw["lora"] == ["/x/distilled-lora.gguf"]
    o = load_checked(data={"backend": {"name": "openai", "base_url": "http://127.0.0.1:9/v1", "served_model": "m"},
                          "eval": {"distilled_served_model": "d"}})
    assert backend_spec(o, "base", {})[1]["served_model"] == "m" and backend_spec(o, "distilled", {})[1]["served_model"] == "d"
    assert backend_model_id(o, "base", {}) == "http://127.0.0.1:9/v1#m"
    f = load_checked(data={"backend": {"name": "fake"}})
    assert backend_model_id(f, "base", {}) == "fake:base"
    t = load_checked(data={"backend": {"name": "transformers"}, "model": "some/hf-model"})
    assert backend_spec(t, "distilled", {"adapter": "/a"})[1] == {"model": "some/hf-model", "adapter": "/a",
                                                                   "batch_size": 16, "threads": None,
                                                                   "device": "auto", "dtype": "auto"}
    with pytest.raises(ConfigError, match="not a subclass of s2distill.backends.base.Backend; fix:"):
        load_checked(data={"backend": {"name": "json:dumps"}})  # refused when the config is read
    import dataclasses

    bad = dataclasses.replace(f, backend=dataclasses.replace(f.backend, name="json:dumps"))
    with pytest.raises(ConfigError, match="not a subclass"):  # and where a backend is built
        backend_spec(bad, "base", {})


def test_backend_without_config_kwargs_says_the_fix(tmp_path, monkeypatch):
    (tmp_path / "bare_backend.py").write_text(
        "from s2distill.backends.base import Backend\nclass Bare(Backend):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load_checked(data={"backend": {"name": "bare_backend:Bare"}})
    with pytest.raises(ConfigError, match="define classmethod config_kwargs"):
        backend_spec(cfg, "base", {})


def test_task_defined_outside_runs_end_to_end_through_s2distill_run(plugin_dir, tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump({
        "name": "plug", "plugins": ["my_plugins.tasks"], "backend": {"name": "fake"},
        "task": {"name": "letter_count", "n_train": 4, "n_eval": 3}, "method": {"name": "cot", "n": 3},
        "train": {"enabled": False}, "eval": {"systems": ["system1", "system2", "system2_maj"]}}))
    res = cli(["run", str(conf), "--run-dir", str(tmp_path / "run"), "--no-progress"], tmp_path, plugin_dir)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["task"] == "letter_count"
    traces = [json.loads(line) for line in open(tmp_path / "run" / "traces" / "train.jsonl")]
    assert len(traces) == 4 and all(len(t["samples"]) == 3 for t in traces)
    assert "How many letters are in the word 'apple'?" in traces[0]["samples"][0]["calls"][0]["messages"][-1]["content"]
    # the same class by module:attr, no plugins key
    res = cli(["validate", str(conf), "plugins=[]", "task.name=my_plugins.tasks:LetterCountTask"], tmp_path, plugin_dir)
    assert res.returncode == 0 and "task=my_plugins.tasks:LetterCountTask" in res.stdout, res.stderr


@requires_server
def test_backend_defined_outside_runs_a_real_server_through_s2distill_run(plugin_dir, tmp_path):
    """A plug-in backend (a subclass of the llama.cpp backend, in a module outside the package) is built
    through the registry from the config and serves every model call of `s2distill run`."""
    data, held = tmp_path / "q.jsonl", tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps({"k": f"q{i}", "txt": f"What is {i} plus {i + 1}?"}) + "\n" for i in range(3)))
    held.write_text("".join(json.dumps({"k": f"e{i}", "txt": f"What is {i} plus {i + 2}?"}) + "\n" for i in range(3)))
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump({
        "name": "plugbackend", "plugins": ["my_plugins.backends"], "backend": {"name": "logging_llamacpp"},
        "task": {"name": "dataset", "n_train": 2, "n_eval": 2, "options": {
            "path": str(data), "eval_path": str(held), "question_field": "txt", "id_field": "k",
            "answer_format": "number"}},
        "method": {"name": "cot", "n": 2, "max_tokens": 48}, "train": {"enabled": False},
        "eval": {"systems": ["system1", "system2"], "max_tokens_system1": 8}}))
    log = tmp_path / "calls.jsonl"
    res = cli(["run", str(conf), "--run-dir", str(tmp_path / "run"), "--no-progress"], tmp_path, plugin_dir,
              env={"PLUGIN_LOG": str(log)})
    assert res.returncode == 0, res.stderr[-3000:]
    calls = [json.loads(line) for line in open(log)]
    assert len(calls) == 2 * 2 + 2 + 2  # CoT on 2 train inputs x 2 samples, System 1 and System 2 on 2 eval inputs
    assert all(c["tokens"] > 0 for c in calls) and any(c["text"].strip() for c in calls)
    assert "starting logging_llamacpp (base)" in res.stderr
    recs = [json.loads(line) for line in open(tmp_path / "run" / "eval" / "system2.jsonl")]
    assert len(recs) == 2 and all(r["generated_tokens"] > 0 for r in recs)


def test_the_registries_live_with_what_they_register():
    """``s2distill.registry`` holds the mechanism only; an old import names the new home."""
    for name, home in (("TASKS", "s2distill.tasks"), ("METHODS", "s2distill.methods"),
                       ("CURATORS", "s2distill.curate"), ("BACKENDS", "s2distill.backends")):
        with pytest.raises(AttributeError, match=f"moved to {home}; fix: `from {home} import {name}`"):
            getattr(registry, name)
