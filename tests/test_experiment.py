"""``s2distill experiment SPEC``: an experiment is one YAML file (runs, overrides, rows, columns), run by one
runner into one result (JSON + markdown + HTML) that re-renders from its JSON alone."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import arithmetic_oracle, factory

from s2distill.errors import ConfigError
from s2distill.experiment import figure, load_experiment, render, run_experiment
from s2distill.results import footer

ROOT = Path(__file__).resolve().parents[1]

SPEC = """
name: depth
title: Does CoT help at depth 1 and 2?
intro: "{n_eval} held-out inputs per run."
setup: {n_eval: task.n_eval}
config: CONFIG
overrides: [task.n_train=6, task.n_eval=8, method.n=2, "eval.systems=[system1,system2]", train.enabled=false]
run_root: ROOT/runs
results: ROOT/results
runs:
  - {name: d1, overrides: [task.options.depth=1], labels: {depth: 1}}
  - {name: d1_again, overrides: [task.options.depth=1, eval.k=3], cache_from: d1, labels: {depth: 1}}
rows:
  - {label: direct, run: d1, system: system1}
  - {label: CoT, run: d1, system: system2}
  - {label: CoT (second run), run: d1_again, system: system2}
columns:
  - label
  - {key: depth, path: labels.depth, format: int}
  - n
  - accuracy
  - tokens
  - {key: task, header: task name, path: report.task}
notes: [a note of the spec]
"""


def _spec(tmp_path: Path, text: str = SPEC) -> Path:
    cfg = tmp_path / "base.yaml"
    cfg.write_text("name: base\nbackend: {name: fake}\ntask: {name: arithmetic}\n")
    p = tmp_path / "depth.yaml"
    p.write_text(text.replace("CONFIG", str(cfg)).replace("ROOT", str(tmp_path)))
    return p


def test_an_experiment_is_one_file_run_by_the_runner(tmp_path: Path) -> None:
    """A spec in the user's own folder: two runs (the second starts from the first's sample cache), three picked
    rows, built-in and custom columns; the result re-renders from its JSON, and --render reruns nothing."""
    exp = load_experiment(_spec(tmp_path))
    res, out = run_experiment(exp, backend_factory=factory(arithmetic_oracle()), log=lambda s: None)
    assert out == tmp_path / "results"
    assert [r["label"] for r in res["rows"]] == ["direct", "CoT", "CoT (second run)"]
    direct, cot, again = (r["values"] for r in res["rows"])
    assert direct["accuracy"] == 0.0 and cot["accuracy"] > 0.5  # the fake: direct always wrong, CoT mostly right
    assert again["accuracy"] == cot["accuracy"] and again["task"] == "arithmetic" and direct["depth"] == 1
    stats = json.loads((tmp_path / "runs" / "d1_again" / "manifest.json").read_text())["stages"]["eval_system2"]
    assert stats["cache_hits"] > 0 and stats["generated"] == 0  # same greedy requests: answered from d1's cache
    md = (out / "depth.md").read_text()
    saved = json.loads((out / "depth.json").read_text())
    assert md == render(saved) + footer(saved)
    assert "| row | depth | n | accuracy % | mean generated tokens | task name |" in md
    assert "8 held-out inputs per run." in md and "- a note of the spec" in md and "<svg" in figure(saved)
    assert "<svg" in (out / "depth.html").read_text()
    again_res, _ = run_experiment(exp, render_only=True, backend_factory=None)  # no engine needed
    assert again_res["rows"] == saved["rows"]


def test_running_some_runs_on_a_fresh_clone_adds_to_the_committed_table(tmp_path: Path) -> None:
    """A fresh clone has the committed result but no partial file: running one run keeps the others' rows
    (their run folders are gone too) and the notes a person added to the result."""
    import shutil

    exp = load_experiment(_spec(tmp_path))
    first, out = run_experiment(exp, backend_factory=factory(arithmetic_oracle()), log=lambda s: None)
    saved = json.loads((out / "depth.json").read_text())
    (out / "depth.json").write_text(json.dumps({**saved, "notes_added_after_the_run": ["checked by hand"]}))
    (out / "depth.partial.json").unlink()
    shutil.rmtree(tmp_path / "runs")
    res, _ = run_experiment(exp, only=["d1_again"], backend_factory=factory(arithmetic_oracle()), log=lambda s: None)
    assert [r["label"] for r in res["rows"]] == ["direct", "CoT", "CoT (second run)"]
    assert [r["values"] for r in res["rows"]] == [r["values"] for r in first["rows"]]
    assert res["notes_added_after_the_run"] == ["checked by hand"] and "- checked by hand" in (out / "depth.md").read_text()
    assert not (tmp_path / "runs" / "d1").exists()  # d1 was not run again
    res, _ = run_experiment(exp, render_only=True)
    assert len(res["rows"]) == 3


def test_experiment_errors_name_the_fix(tmp_path: Path) -> None:
    p = _spec(tmp_path, SPEC.replace("- accuracy\n", "- acuracy\n"))
    with pytest.raises(ConfigError, match="unknown column 'acuracy'.*did you mean 'accuracy'"):
        load_experiment(p)
    p = _spec(tmp_path, SPEC.replace("{label: CoT, run: d1,", "{label: CoT, run: d2,"))
    with pytest.raises(ConfigError, match="run 'd2' is not one of"):
        load_experiment(p)
    p = _spec(tmp_path, SPEC.replace("cache_from: d1,", "cache_from: d3,"))
    with pytest.raises(ConfigError, match="cache_from 'd3' is not a run before it"):
        load_experiment(p)
    p = _spec(tmp_path, SPEC.replace("task.n_train=6", '"task.n_train=${n}"'))
    with pytest.raises(ConfigError, match=r"\$\{n\} is not a var.*--var NAME=VALUE"):
        run_experiment(load_experiment(p), backend_factory=factory(arithmetic_oracle()), log=lambda s: None)
    exp = load_experiment(p, ["n=6"])
    with pytest.raises(ConfigError, match="--runs d9: not a run of depth"):
        run_experiment(exp, only=["d9"])
    with pytest.raises(ConfigError, match="no run has finished yet"):
        run_experiment(exp, render_only=True)


def test_each_rows_and_alternative_paths(tmp_path: Path) -> None:
    """``each: report.X``: one row per item of a list in the report (a mapping is one item), ``row.`` reading the
    item; ``a or b`` reads b where a is missing; a bad ``each`` or item field is an error that names the fix."""
    from s2distill.experiment import each_values, run_values

    spec = SPEC.split("rows:")[0] + """rows:
  - {label: CoT, run: d1, system: system2}
  - {label: "part {k}", run: d1, system: part, each: report.parts}
columns:
  - label
  - accuracy
  - {key: steps, path: row.steps or report.train.steps, format: int}
"""
    exp = load_experiment(_spec(tmp_path, spec))
    rep = {"rows": [{"role": "system2", "system": "CoT", "accuracy": 0.5}], "train": {"steps": 9},
           "parts": [{"k": 0, "accuracy": 0.25, "steps": 3}, {"k": 1, "accuracy": 0.75}]}
    items = each_values(exp, "d1", rep, {})["part|report.parts|part {k}"]
    assert [(i["label"], i["values"]["accuracy"], i["values"]["steps"]) for i in items] == \
        [("part 0", 0.25, 3), ("part 1", 0.75, 9)]
    assert run_values(exp, rep, {})["system2"]["values"]["steps"] == 9
    assert each_values(exp, "d1", {**rep, "parts": {"k": 5}}, {})["part|report.parts|part {k}"][0]["label"] == "part 5"
    assert each_values(exp, "d1", {"rows": []}, {})["part|report.parts|part {k}"] == []  # no list: no rows
    with pytest.raises(ConfigError, match="no field 'k'.*fix: name one of accuracy"):
        each_values(exp, "d1", {**rep, "parts": [{"accuracy": 1.0}]}, {})
    with pytest.raises(ConfigError, match="must be a report path"):
        load_experiment(_spec(tmp_path, spec.replace("each: report.parts", "each: parts")))


def test_the_cli_runs_an_experiment(tmp_path: Path) -> None:
    """``s2distill experiment --render`` on a finished experiment: the table from the partial file, no engine."""
    exp = load_experiment(_spec(tmp_path))
    run_experiment(exp, backend_factory=factory(arithmetic_oracle()), log=lambda s: None)
    (tmp_path / "results" / "depth.md").unlink()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    p = subprocess.run([sys.executable, "-m", "s2distill.cli", "experiment", str(tmp_path / "depth.yaml"), "--render"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "| direct | 1 | 8 | 0.0 |" in p.stdout and (tmp_path / "results" / "depth.md").is_file()
    assert json.loads((tmp_path / "results" / "depth.json").read_text())["command"].startswith("s2distill experiment ")
    p = subprocess.run([sys.executable, "-m", "s2distill.cli", "experiment", str(tmp_path / "depth.yaml"), "--list"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 0 and "d1 [finished]" in p.stdout and "d1_again [finished]" in p.stdout
    assert "task.options.depth=1 eval.k=3" in p.stdout


@pytest.mark.slow
def test_an_experiment_on_the_embedded_model(tmp_path: Path) -> None:
    """The real thing: one spec, two runs on the embedded model through llama-server (System 1 only, 6 inputs)."""
    spec = tmp_path / "real.yaml"
    spec.write_text(f"""
name: real
title: System 1 on two depths, embedded model
config: {ROOT / 'configs' / 'demo.yaml'}
overrides: [task.n_train=2, task.n_eval=6, "eval.systems=[system1]", train.enabled=false, method.n=1]
run_root: {tmp_path / 'runs'}
runs:
  - {{name: d1, overrides: [task.options.depth=1]}}
  - {{name: d2, overrides: [task.options.depth=2]}}
""")
    res, out = run_experiment(load_experiment(spec), log=lambda s: None)
    assert [(r["run"], r["values"]["system"], r["values"]["n"]) for r in res["rows"]] == [("d1", "system1", 6),
                                                                                          ("d2", "system1", 6)]
    assert all(0 < r["values"]["tokens"] < 16 for r in res["rows"])
    assert (out / "real.md").read_text().startswith("# System 1 on two depths, embedded model")


def test_the_project_experiments_load_and_their_runs_configure() -> None:
    """Every spec under benchmarks/experiments/ parses, and each run's config loads with its overrides."""
    from s2distill.checks import load_checked
    from s2distill.experiment import _subst

    specs = sorted((ROOT / "benchmarks" / "experiments").glob("*.yaml"))
    assert specs
    cwd = os.getcwd()
    os.chdir(ROOT)  # the specs' paths are relative to the repository
    try:
        for p in specs:
            exp = load_experiment(p)
            assert exp.results == "benchmarks/results", p
            for r in exp.runs:
                load_checked(_subst(r.config or exp.config, exp.vars),
                             [_subst(o, exp.vars) for o in (*exp.overrides, *r.overrides)])
    finally:
        os.chdir(cwd)


def test_the_readme_experiment_file_loads(tmp_path: Path) -> None:
    """README's example experiment file is a valid spec, and each of its runs configures."""
    from s2distill.checks import load_checked

    text = (ROOT / "README.md").read_text()
    block = text.split("### Several runs, one table: an experiment file", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    p = tmp_path / "depth.yaml"
    p.write_text(block.replace("configs/demo.yaml", str(ROOT / "configs" / "demo.yaml")))
    exp = load_experiment(p)
    assert [r.name for r in exp.runs] == ["d1", "d2"] and [c.key for c in exp.table_columns][:2] == ["run", "depth"]
    for r in exp.runs:
        assert load_checked(exp.config, [*exp.overrides, *r.overrides]).task.options["depth"] == r.labels["depth"]


GRID = """
name: sweep
title: A grid of settings
config: CONFIG
overrides: [task.n_train=4, task.n_eval=6, method.n=2, train.enabled=false]
run_root: ROOT/runs
results: ROOT/results
grid:
  - {name: d1, overrides: [task.options.depth=1], labels: {depth: 1}}
  - {name: d2, overrides: [task.options.depth=2], labels: {depth: 2}}
runs:
  - {name: base, base_only: true, overrides: ["eval.systems=[system1]"]}
  - {name: full, overrides: ["eval.systems=[system1,system2]"]}
rows:
  - {label: System 1, run: base, system: system1}
  - {label: CoT, run: full, system: system2}
columns: [{key: depth, path: labels.depth, format: int}, label, n, accuracy]
"""


def test_a_grid_repeats_runs_and_rows_per_setting(tmp_path: Path) -> None:
    """``grid:`` runs every run per setting (folder <setting>/<run>, the setting's overrides first); ``base_only``
    evaluates the base model without sampling train inputs; ``--runs d1`` runs one setting's runs."""
    exp = load_experiment(_spec(tmp_path, GRID))
    assert [r.name for r in exp.runs] == ["d1/base", "d1/full", "d2/base", "d2/full"]
    assert exp.runs[2].overrides[0] == "task.options.depth=2" and exp.runs[2].run_name == "d2-base"
    res, _ = run_experiment(exp, only=["d1"], backend_factory=factory(arithmetic_oracle()), log=lambda s: None)
    assert [(r["values"]["depth"], r["label"]) for r in res["rows"]] == [(1, "System 1"), (1, "CoT")]
    assert not (tmp_path / "runs" / "d1" / "base" / "traces").exists()  # base only: no System 2 on train inputs
    assert (tmp_path / "runs" / "d1" / "full" / "traces" / "train.jsonl").is_file()
    res, _ = run_experiment(exp, only=["d2/full"], backend_factory=factory(arithmetic_oracle(depth=2)), log=lambda s: None)
    assert [(r["values"]["depth"], r["label"]) for r in res["rows"]] == [(1, "System 1"), (1, "CoT"), (2, "CoT")]
    assert "- d1/base: evaluation only (6 held-out inputs)" in (tmp_path / "results" / "sweep.md").read_text()


def test_a_config_beside_the_spec_and_another_systems_value(tmp_path: Path) -> None:
    """``config: base.yaml`` is found beside the spec from any working directory; ``system.system2.accuracy`` puts
    System 2's accuracy on the System 1 row."""
    text = SPEC.replace(str("CONFIG"), "base.yaml").replace("  - {key: task, header: task name, path: report.task}\n",
                                                            "  - {key: s2, path: system.system2.accuracy, format: pct}\n")
    spec = _spec(tmp_path, text)
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        res, _ = run_experiment(load_experiment(spec), backend_factory=factory(arithmetic_oracle()), log=lambda s: None)
    finally:
        os.chdir(cwd)
    direct, cot, _ = (r["values"] for r in res["rows"])
    assert direct["s2"] == cot["accuracy"] > 0.5


def test_computed_columns(tmp_path: Path) -> None:
    """``expr`` columns compute from the row's other columns (None when one is missing); anything beyond keys,
    numbers, strings, arithmetic, comparisons, x if c else y and abs/min/max/round is refused."""
    text = SPEC.replace("  - {key: task, header: task name, path: report.task}\n",
                        "  - {key: s2, path: system.system2.accuracy, format: pct}\n"
                        "  - {key: gap, expr: \"abs(s2 - accuracy)\", format: pct}\n"
                        "  - {key: call, expr: \"'ship' if accuracy >= 0.9 * s2 else 'keep'\"}\n")
    res, _ = run_experiment(load_experiment(_spec(tmp_path, text)), backend_factory=factory(arithmetic_oracle()),
                            log=lambda s: None)
    direct, cot, _ = (r["values"] for r in res["rows"])
    assert direct["gap"] == cot["accuracy"] and direct["call"] == "keep" and cot["call"] == "ship"
    for bad, why in (("__import__('os')", "Call"), ("accuracy.real", "Attribute"), ("accuracy[0]", "Subscript")):
        with pytest.raises(ConfigError, match=f"uses {why}"):
            load_experiment(_spec(tmp_path, text.replace("abs(s2 - accuracy)", bad.replace("'", "'"))))
