"""benchmarks/common.parse_with_overrides: key=value overrides anywhere on a benchmark's command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import parse_with_overrides  # noqa: E402


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    ap.add_argument("--settings", nargs="*", default=["a", "b"], choices=["a", "b", "c"])
    ap.add_argument("--note", action="append", default=[])
    ap.add_argument("--render", action="store_true")
    ap.add_argument("overrides", nargs="*")
    return ap


def test_overrides_after_a_list_option_and_option_values_with_equals_signs() -> None:
    a = parse_with_overrides(parser(), ["j=1", "--settings", "c", "k=2", "--note", "n=40 rows", "--render"])
    assert (a.settings, a.overrides, a.note, a.render) == (["c"], ["j=1", "k=2"], ["n=40 rows"], True)
    assert parse_with_overrides(parser(), []).overrides == []


def test_unknown_setting_is_still_an_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        parse_with_overrides(parser(), ["--settings", "zz", "k=1"])
    assert "invalid choice: 'zz'" in capsys.readouterr().err
