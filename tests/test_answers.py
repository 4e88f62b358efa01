"""Every answer format of tasks/answers.py: extraction (well-formed and malformed model output),
gold parsing and scoring."""
from __future__ import annotations

import pytest

from s2distill.errors import ConfigError
from s2distill.tasks.answers import FORMATS, answer_format, extract_choice


@pytest.mark.parametrize("text,want", [
    ("Step 1: 3 + 4 = 7. The answer is 7.", "7"),
    ("so the total is $1,250.50 dollars", "1250.5"),
    ("#### 42", "42"),
    ("The answer is: **-3**", "-3"),
    ("\\boxed{12}", "12"),
    ("I have no idea.", None),  # malformed: no number at all
    ("", None),
    ("The answer is <number>.", None),  # the model echoed the placeholder
])
def test_number_extraction(text, want):
    assert answer_format("number").extract(text) == want


def test_number_gold_and_scoring():
    f = answer_format("number")
    assert f.parse_gold("1,000") == "1000" and f.parse_gold(7) == "7" and f.parse_gold(2.50) == "2.5"
    assert f.parse_gold("seven") is None and f.parse_gold(True) is None
    assert f.score("7.0", "7") and not f.score("8", "7") and not f.score(None, "7") and not f.score("7", None)
    assert f.hint == "<number>" and "number" in f.instruction


@pytest.mark.parametrize("text,want", [
    ("Flipped twice, so heads. The answer is yes.", "yes"),
    ("No, because 3 is odd.", "no"),
    ("answer: NO", "no"),
    ("Hmm, maybe? It depends on the coin.", None),  # malformed
    ("", None),
])
def test_yes_no_extraction(text, want):
    assert answer_format("yes_no").extract(text) == want


def test_yes_no_gold_and_scoring():
    f = answer_format("yes_no")
    assert [f.parse_gold(v) for v in ("Yes", "no.", True, "false", "maybe")] == ["yes", "no", "yes", "no", None]
    assert f.score("yes", "yes") and f.score("Yes", "yes") and not f.score("no", "yes") and not f.score(None, "no")


@pytest.mark.parametrize("text,want", [
    ("Let's compare. The answer is (B).", "B"),
    ("The answer is c", "C"),
    ("C) because it is larger", "C"),
    ("(A)", "A"),
    ("A reason: the second option fits, so D", "D"),  # an article 'A' at the start is not the answer
    ("**B**", "B"),
    ("The answer is E.", None),  # not one of the letters: no answer
    ("none of these fit", None),  # malformed: no letter
    ("", None),
])
def test_choice_extraction(text, want):
    assert answer_format("choice", letters="ABCD").extract(text) == want


def test_choice_gold_scoring_and_letters():
    f = answer_format("choice", letters="abc")
    assert f.parse_gold("(b)") == "B" and f.parse_gold("D") is None and f.parse_gold("banana") is None
    assert f.score("b", "B") and not f.score("C", "B") and not f.score(None, "B")
    assert "(A, B or C)" in f.instruction and f.hint == "<letter>"
    assert extract_choice("Answer: B", "AB") == "B"
    with pytest.raises(ConfigError, match="distinct letters"):
        answer_format("choice", letters="AAB")


@pytest.mark.parametrize("text,want", [
    ("Thinking... The answer is **The Beatles**.", "beatles"),
    ("Paris", "paris"),
    ("The answer is: Mount Everest\nbecause it is tallest", "mount everest"),
    ("   ", None),  # malformed: nothing
    ("The answer is ...", None),
])
def test_short_text_extraction_normalises(text, want):
    assert answer_format("short_text").extract(text) == want


def test_short_text_aliases():
    f = answer_format("short_text")
    gold = f.parse_gold(["USA", "United States of America"])
    assert gold == "USA\tUnited States of America"
    assert f.score("usa", gold) and f.score("united states of america", gold) and not f.score("canada", gold)
    assert f.parse_gold("") is None and f.parse_gold(["", None]) is None and f.parse_gold("The") is None


def test_regex_format():
    f = answer_format("regex", pattern=r"Final: ([A-Z]{3})")
    assert f.extract("Final: ABC then Final: XYZ") == "XYZ"
    assert f.extract("final: abc") is None  # malformed: does not match
    assert f.extract("") is None
    assert f.score("XYZ", "XYZ") and not f.score("XYZ", "ABC") and not f.score(None, "ABC")
    with pytest.raises(ConfigError, match="needs exactly one"):
        answer_format("regex", pattern=r"(a)(b)")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        answer_format("regex", pattern=r"(a")
    with pytest.raises(ConfigError, match="needs task.options.pattern"):
        answer_format("regex")


@pytest.mark.parametrize("text,want", [
    ("Reasoning here.\nThe answer is \"O(n log n)\".", "O(n log n)"),
    ("O(n)", "O(n)"),
    ("The answer is `x = 3`.", "x = 3"),
    ("", None),
    ("The answer is .", None),  # malformed: empty answer
])
def test_exact_extraction(text, want):
    assert answer_format("exact").extract(text) == want


def test_exact_scoring_is_case_sensitive():
    f = answer_format("exact")
    assert f.score("O(n)", " O(n) ") and not f.score("o(n)", "O(n)") and f.parse_gold("  ") is None


def test_unknown_format_has_did_you_mean():
    with pytest.raises(ConfigError, match="did you mean 'yes_no'"):
        answer_format("yesno")
    assert set(FORMATS) == {"number", "yes_no", "choice", "short_text", "regex", "exact"}
