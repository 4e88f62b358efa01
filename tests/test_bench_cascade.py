"""benchmarks/cascade.py: every setting is a config that loads, and the teacher setting runs the teacher's System 2."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import cascade  # noqa: E402

from s2distill.config import load_config  # noqa: E402


def config(name: str):
    cfg_name, ov, _ = cascade.SETTINGS[name]
    return load_config(ROOT / "configs" / f"{cfg_name}.yaml", [*cascade.COMMON, *ov])


@pytest.mark.parametrize("name", [n for n in cascade.SETTINGS if n not in cascade.OWN])
def test_every_setting_loads_with_the_systems_the_cascade_reads(name: str) -> None:
    cfg = config(name)
    assert {"system2", "system2_maj", "distilled"} <= set(cfg.eval.systems)
    assert cfg.eval.cascade_fallback == "greedy" and cfg.task.n_eval >= 120


def test_the_teacher_setting_falls_back_to_the_teachers_system2() -> None:
    cfg = config("ts_cf2")
    assert cfg.teacher is not None and cfg.teacher.model == "qwen2.5-coder-1.5b" and cfg.model == "default"
    assert cfg.task.options["n_people"] == 2 and cfg.eval.k == 3 and cfg.task.n_eval == 160
