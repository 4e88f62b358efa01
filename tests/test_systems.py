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
    """"system2_maj" is written in the table (and the HTML report's script) only, in code, messages and
    docstrings alike; elsewhere code reads the table (systems.MAJ, systems.get(name).votes, systems.add_fix)."""
    found = [f"{p.relative_to(SRC)}:{i}" for p in sorted(SRC.rglob("*.py")) if p.name not in ("systems.py", "html_assets.py")
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
