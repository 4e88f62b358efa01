"""The System table (s2distill.systems): one declared entry per evaluated system, read by every consumer."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from s2distill import systems
from s2distill.config import load_config
from s2distill.evaluate import system_run
from s2distill.report import system_label
from s2distill.teacher import eval_order, eval_weights

SRC = Path(__file__).resolve().parents[1] / "src" / "s2distill"
ROOT = SRC.parents[1]


def test_the_table_is_the_only_place_a_system_is_named_by_its_string():
    """"system2_maj" is written in the table only, in code, messages, docstrings and the HTML report's script
    alike; elsewhere code reads the table (systems.MAJ, systems.get(name).votes, systems.add_fix; the report's
    script gets the table's order, its voting systems and System 2's reference from the page's data)."""
    found = [f"{p.relative_to(SRC)}:{i}" for p in sorted(SRC.rglob("*.py")) if p.name != "systems.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\bsystem2_maj\b", line)]
    assert not found, found


@pytest.mark.parametrize("system", systems.NAMES)
def test_each_system_runs_as_its_entry_declares(system):
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    s = systems.get(system)
    method, params = system_run(cfg, system)
    assert (method == "direct") == s.direct and (method == cfg.method.name) == (not s.direct)
    assert params.n == (cfg.eval.k if s.votes else 1) and (params.temperature > 0) == s.votes
    assert params.logprobs == s.direct  # the direct answers carry their confidence for the cascade
    label = system_label(system, "cot", 4)
    assert label == {"direct": system, "method": "cot_maj@4" if s.votes else "cot"}[s.prompt]


def test_order_and_weights_follow_the_table():
    plain = load_config(ROOT / "configs" / "demo.yaml")
    taught = load_config(ROOT / "configs" / "demo.yaml", ["teacher.model=qwen2.5-coder-1.5b"])
    assert eval_order(plain) == systems.BASE and set(eval_order(taught)) == set(systems.BASE)
    first = eval_order(taught)[:len(systems.ON_TEACHER)]
    assert set(first) == set(systems.ON_TEACHER)  # the teacher's systems while its engine is up
    for name in systems.BASE:
        on_teacher = eval_weights(taught, name, "base") == "teacher"
        assert on_teacher == systems.get(name).on_teacher and eval_weights(plain, name, "base") == "base"


ADD_SYSTEM = """
import json, sys
from pathlib import Path
import s2distill.pipeline as pl
from fakes import arithmetic_oracle, factory
from s2distill.config import load_config
from s2distill.html_report import render_run

pl.Pipeline.fit = lambda self: ([], {})  # a train stage that trains nothing (the fake distilled engine answers)
cfg = load_config(data={"name": "t", "backend": {"name": "fake"}, "task": {"n_train": 6, "n_eval": 8},
                        "method": {"n": 2}, "train": {"enabled": True},
                        "eval": {"systems": ["system1", "system2", "distilled", "distilled_system2"]}})
p = pl.Pipeline(cfg, run_dir=sys.argv[1], backend_factory=factory(arithmetic_oracle()), log=lambda s: None,
                progress=False)
report = p.run()
print(json.dumps({"plan": p.stage_plan(), "rows": report["rows"], "md": Path(sys.argv[1], "report.md").read_text(),
                  "html": render_run(sys.argv[1])}))
"""


def test_adding_a_system_is_one_entry_in_the_table(tmp_path):
    """A copy of the package with one line added to the System table (the distilled model running the run's
    System 2 method greedy): a run evaluates it after training, and the report, its markdown and its HTML carry it."""
    import json
    import shutil
    import subprocess
    import sys

    pkg = tmp_path / "src" / "s2distill"
    shutil.copytree(SRC, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    table = pkg / "systems.py"
    entry = '    System("distilled", "direct", "greedy", "distilled", False, True, "#2ca02c"),\n'
    text = table.read_text()
    assert text.count(entry) == 1
    table.write_text(text.replace(entry, entry + '    System("distilled_system2", "method", "greedy", "distilled", '
                                                 'False, False, None),\n'))
    env = {"PYTHONPATH": f"{pkg.parent}:{ROOT / 'tests'}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    p = subprocess.run([sys.executable, "-c", ADD_SYSTEM, str(tmp_path / "run")], capture_output=True, text=True,
                       env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    assert out["plan"].index("eval_distilled_system2") > out["plan"].index("train")
    row = next(r for r in out["rows"] if r["role"] == "distilled_system2")
    assert row["system"] == "distilled_cot" and row["n"] == 8 and row["mean_generated_tokens"] > 0
    assert "| distilled_cot |" in out["md"] and '"distilled_system2"' in out["html"]
    assert (tmp_path / "run" / "eval" / "distilled_system2.jsonl").is_file()
