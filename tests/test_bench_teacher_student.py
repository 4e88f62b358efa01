"""benchmarks/teacher_student.py: which config each setting runs, and how its cells read."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import teacher_student as ts  # noqa: E402

from s2distill.config import load_config  # noqa: E402


def config(name: str, extra: list[str] = ()):
    return load_config(ROOT / "configs" / f"{ts.SETTINGS[name][0]}.yaml",
                       ts.overrides(name, SimpleNamespace(overrides=[]), list(extra)))


def test_a_settings_overrides_win_over_the_shared_sizes() -> None:
    bsm = config("bsm")
    assert (bsm.task.name, bsm.task.n_train, bsm.task.n_eval, bsm.method.n) == ("judge", 16, 40, 1)
    assert "system2_maj" not in bsm.eval.systems and bsm.teacher.model == ts.TEACHER and bsm.model == ts.STUDENT
    big = config("cf2_1.5b")
    assert big.model == big.teacher.model == ts.TEACHER and ts.student_of("cf2_1.5b") == ts.TEACHER
    assert big.task.options["n_people"] == 2 and "teacher_system1" not in big.eval.systems


def test_the_same_model_run_has_no_teacher() -> None:
    c = config("cf2", ["teacher=null", "eval.systems=[system2,distilled]"])
    assert c.teacher is None and c.model == ts.STUDENT and tuple(c.eval.systems) == ("system2", "distilled")


def test_a_judge_cell_shows_position_inconsistency() -> None:
    row = {"accuracy": 0.25, "ci95": [0.14, 0.40], "mean_generated_tokens": 2.0, "n": 40,
           "judge": {"inconsistent": 0.5, "inconsistent_ci95": [0.35, 0.65]}}
    c = ts.cell(row)
    assert c["inconsistent"] == 0.5
    assert ts._fmt(c) == "25.0 (14.0-40.0), 2 tok; inconsistent 50.0 (35.0-65.0)"
    assert "inconsistent" not in ts._fmt(ts.cell({**row, "judge": None}))
    assert ts._fmt({"accuracy": None}) == "not trained" and ts._fmt(None) == "not run"


def test_same_model_and_maj_only_need_a_finished_setting(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(ts, "RESULTS", tmp_path)
    (tmp_path / "teacher_student.partial.json").write_text(json.dumps({}))
    monkeypatch.setattr(sys, "argv", ["teacher_student.py", "--same-model", "cf2"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        ts.main()
    assert "--settings cf2" in capsys.readouterr().err
