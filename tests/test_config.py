from pathlib import Path

import pytest

from s2distill.config import RunConfig, load_config
from s2distill.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)
    assert cfg.name == path.stem


def test_shipped_configs_exist():
    assert {p.stem for p in CONFIGS} >= {"demo", "gsm8k_paper", "gsm8k_local"}


def test_unknown_key_has_did_you_mean(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nmethod:\n  nn: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'method.nn'; did you mean 'n'\?"):
        load_config(p)


def test_overrides_are_typed_and_strict():
    cfg = load_config(data={"name": "x"}, overrides=["method.n=8", "task.options.depth=3", "backend.threads=null",
                                                      "eval.systems=[system1]"])
    assert cfg.method.n == 8 and cfg.task.options["depth"] == 3 and cfg.backend.threads is None
    assert cfg.eval.systems == ["system1"]
    with pytest.raises(ConfigError, match="method.n: expected an integer"):
        load_config(data={"name": "x"}, overrides=["method.n=many"])
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(data={"name": "x"}, overrides=["method.n"])
    for bad in ("-1", "1"):  # one sample has no vote share
        with pytest.raises(ConfigError, match=r"eval.cascade_k .*0 \(off\) or >= 2.*e.g. eval.cascade_k=4"):
            load_config(data={"name": "x"}, overrides=[f"eval.cascade_k={bad}"])
    assert load_config(data={"name": "x"}, overrides=["eval.cascade_k=0"]).eval.cascade_k == 0


def test_unknown_names_are_errors_with_suggestions():
    from s2distill.checks import load_checked

    with pytest.raises(ConfigError, match="unknown task 'arithmetc'; did you mean 'arithmetic'"):
        load_checked(data={"task": {"name": "arithmetc"}})
    with pytest.raises(ConfigError, match="did you mean 'depth'"):
        load_checked(data={"task": {"name": "arithmetic", "options": {"dpth": 2}}})
    with pytest.raises(ConfigError, match="unknown eval system"):
        load_config(data={"eval": {"systems": ["sytem1"]}})
    with pytest.raises(ConfigError, match="base_url"):
        load_config(data={"backend": {"name": "openai"}})


def test_missing_config_file_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_one_openai_base_url_check_for_the_backend_and_the_teacher_backend():
    """config.BackendConfig.check_server is the one home; both sections keep their message."""
    url_fix = "needs {0}.base_url (e.g. http://127.0.0.1:8000/v1)"
    for data, where in (({"backend": {"name": "openai"}}, "backend"),
                        ({"teacher": {"model": "x", "backend": {"name": "openai"}}}, "teacher.backend")):
        with pytest.raises(ConfigError) as e:
            load_config(data=data)
        assert str(e.value) == f"{where}.name=openai " + url_fix.format(where)
    ok = load_config(data={"backend": {"name": "openai"}, "distributed": {"enabled": True,
                                                                          "endpoints": ["http://127.0.0.1:1/v1"]}})
    assert ok.backend.base_url is None  # endpoints serve it
    assert load_config(data={"backend": {"name": "openai", "base_url": "http://h/v1"},
                             "teacher": {"model": "x"}}).teacher.backend.base_url == "http://h/v1"  # inherited


def test_load_config_only_parses_and_imports_the_config_layer():
    """``load_config`` type-checks and runs the config's own checks, importing at most 6 package modules; the
    component checks (names, task options) are ``s2distill.checks``, which ``Pipeline`` runs when it is built."""
    import subprocess
    import sys

    code = ("import sys; from s2distill.config import load_config; "
            "load_config(data={'task': {'name': 'no_such_task', 'options': {'x': 1}}}); "
            "print(sorted(m for m in sys.modules if m == 's2distill' or m.startswith('s2distill.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    mods = eval(out)
    assert len(mods) <= 6 and "s2distill.registry" not in mods and "s2distill.tasks" not in mods, mods
    from s2distill.checks import check
    from s2distill.pipeline import Pipeline

    cfg = load_config(data={"task": {"name": "no_such_task"}})
    with pytest.raises(ConfigError, match="unknown task 'no_such_task'"):
        check(cfg)
    with pytest.raises(ConfigError, match="unknown task 'no_such_task'"):
        Pipeline(cfg, run_dir="/nonexistent/never-made")


def test_every_key_has_help_and_docs_config_md_is_current():
    """One place for what a key means: the field's help metadata, printed by `validate --explain` and listed in
    docs/config.md (regenerate: python -m s2distill.config > docs/config.md)."""
    from pathlib import Path

    from s2distill.config import RunConfig, keys_markdown
    from s2distill.keys import explain, key_docs

    docs = key_docs(RunConfig)
    assert len(docs) > 100 and not [d.key for d in docs if not d.help]
    assert (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text() == keys_markdown(), \
        "docs/config.md is stale; fix: python -m s2distill.config > docs/config.md"
    assert explain(RunConfig, "eval.max_disagreement").startswith("eval.max_disagreement (float, default 0.1): ")
    assert "  teacher.backend.base_url (" in explain(RunConfig, "teacher.backend")
    with pytest.raises(ConfigError, match="did you mean 'eval.max_disagreement'"):
        explain(RunConfig, "eval.max_disagrement")
