"""The command line: key=value overrides are accepted before or after the options."""
from __future__ import annotations

import pytest

from s2distill.cli import parse


def test_overrides_after_options_are_kept_in_order() -> None:
    a = parse(["run", "cfg.yaml", "method.n=8", "--run-dir", "runs/x", "--no-progress", "task.n_train=5"])
    assert (a.config, a.run_dir, a.overrides) == ("cfg.yaml", "runs/x", ["method.n=8", "task.n_train=5"])
    b = parse(["run", "cfg.yaml", "--run-dir", "runs/x", "task.n_train=5", "eval.k=2"])
    assert b.overrides == ["task.n_train=5", "eval.k=2"]


def test_a_stray_word_or_unknown_flag_is_still_an_error(capsys: pytest.CaptureFixture) -> None:
    for argv in (["run", "cfg.yaml", "--run-dir", "runs/x", "oops"], ["run", "cfg.yaml", "--bogus", "a=1"]):
        with pytest.raises(SystemExit):
            parse(argv)
        assert "unrecognized arguments" in capsys.readouterr().err


def test_a_command_without_overrides_says_so(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        parse(["ls", "a=1"])
    assert "takes no key=value overrides" in capsys.readouterr().err


def test_validate_explain_prints_a_key_and_a_section(capsys: pytest.CaptureFixture) -> None:
    from s2distill.cli import main

    assert main(["validate", "--explain", "curate.weighting"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("curate.weighting (str, default 'hard'): hard: keep a pair")
    assert main(["validate", "--explain", "eval"]) == 0
    assert "  eval.cascade_k (int, default 4):" in capsys.readouterr().out
    assert main(["validate", "--explain", "eval.cascde_k"]) == 2
    assert "did you mean 'eval.cascade_k'" in capsys.readouterr().err
    assert main(["validate"]) == 2
    assert "needs a config" in capsys.readouterr().err
