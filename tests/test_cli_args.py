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
