"""Answer formats: the extractors and normalisers every task uses, in one place.

The built-in tasks import their extractor from here (numbers: arithmetic, GSM8K; yes/no: coin
flip; letters: last letter; short text: TriviaQA), and the generic ``dataset`` task picks one
:class:`AnswerFormat` by name (``task.options.answer_format``): number, yes_no, choice,
short_text, regex, exact. A format brings its extractor (model text -> answer, or None when
the text has none), its gold parser (a file's label -> canonical answer, or None when it does
not parse), its scorer, the System 1 instruction, and the hint System 2 prompts ask for
("The answer is <number>.").
"""
from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import ConfigError
from ..keys import check_choice

# --- numbers ---------------------------------------------------------------------------------
_NUM = r"-?\$?\s?\d[\d,]*(?:\.\d+)?"
_ANSWER_PATTERNS = [
    re.compile(r"####\s*(" + _NUM + ")"),
    re.compile(r"answer is[:\s]*\**\s*(" + _NUM + ")", re.IGNORECASE),
    re.compile(r"answer[:\s]+\**\s*(" + _NUM + ")", re.IGNORECASE),
    re.compile(r"\\boxed\{\s*(" + _NUM + r")\s*\}"),
]
_ANY_NUM = re.compile(_NUM)


def normalize_number(text: str | None) -> str | None:
    """Canonical form: no commas, `$`, spaces or trailing zeros; integral values without '.0'."""
    if text is None:
        return None
    s = text.strip().replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    if not s:
        return None
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def extract_number(text: str) -> str | None:
    """Prefer an explicit 'answer is N' / '#### N' / boxed; else the last number in the text."""
    if not text:
        return None
    for pat in _ANSWER_PATTERNS:
        hits = pat.findall(text)
        if hits:
            return normalize_number(hits[-1])
    nums = _ANY_NUM.findall(text)
    return normalize_number(nums[-1]) if nums else None


# --- yes / no --------------------------------------------------------------------------------
_YN_ANSWER = re.compile(r"answer(?:\s+is\s*:?|\s*:)\s*[\"'*“]*\s*(yes|no)\b", re.IGNORECASE)
_YN_START = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)
_YN_ANY = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def extract_yes_no(text: str) -> str | None:
    """'The answer is yes' / 'answer: no'; else a yes/no that opens the text; else the last yes/no word."""
    if not text:
        return None
    hits = _YN_ANSWER.findall(text)
    if hits:
        return hits[-1].lower()
    m = _YN_START.match(text)
    if m:
        return m.group(1).lower()
    hits = _YN_ANY.findall(text)
    return hits[-1].lower() if hits else None


# --- short text (SQuAD normalisation, aliases) -------------------------------------------------
_SHORT_ANSWER = re.compile(r"answer(?:\s+is\s*:?|\s*:)\s*(.+)", re.IGNORECASE)


def normalize_answer(text: str | None) -> str:
    text = (text or "").lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def matches(prediction: str | None, aliases: list[str]) -> bool:
    p = normalize_answer(prediction)
    if not p:
        return False
    for a in aliases:
        n = normalize_answer(a)
        if n and (p == n or re.search(rf"(?:^| ){re.escape(n)}(?: |$)", p)):
            return True
    return False


def extract_short_answer(text: str) -> str | None:
    """The text after the last 'The answer is' (first line, up to 120 chars); else the first line."""
    if not text or not text.strip():
        return None
    hits = _SHORT_ANSWER.findall(text)
    line = (hits[-1] if hits else text.strip()).strip().splitlines()[0]
    line = line.strip().rstrip(".").strip().strip("*\"'`").rstrip(".").strip()
    return line[:120] or None


# --- letters (last-letter concatenation) --------------------------------------------------------
def normalize_letters(text: str | None) -> str:
    return re.sub(r"[\W_]+", "", text or "").lower()


# 'answer is X' / 'answer: X'; the lookahead yields every hit with the rest of its line
_LETTERS_ANSWER = re.compile(r"answer(?:\s+is\s*:?|\s*:)[ \t]*(?=(.+))", re.IGNORECASE)
_LEADING_QUOTE = re.compile(r"""^[*_\s]*["'“‘`]([^"'”’`\n]+)["'”’`]""")
_LETTERS = re.compile(r"[^\W\d_]+")
_DQUOTED = re.compile(r'["“]([^"“”\n]+)["”]')


def extract_letters(text: str) -> str | None:
    """'The answer is X' / 'answer: X' (quotes, markdown, period stripped); else the last double-quoted
    word; else the last word. Lower-cased, letters only."""
    if not text:
        return None
    for span in reversed(_LETTERS_ANSWER.findall(text)):
        if span.lstrip().startswith("<"):  # the model echoed the "<letters>" placeholder
            continue
        q = _LEADING_QUOTE.match(span)
        tok = normalize_letters(q.group(1)) if q else next(iter(_LETTERS.findall(span)), "")
        if tok:
            return tok.lower()
    quoted = [s.strip() for s in _DQUOTED.findall(text) if _LETTERS.fullmatch(s.strip())]
    if quoted:
        return quoted[-1].lower()
    words = _LETTERS.findall(text)
    return words[-1].lower() if words else None


# --- multiple choice ----------------------------------------------------------------------------

def extract_choice(text: str, letters: str = "ABCD") -> str | None:
    """A choice letter: 'The answer is (B)' / 'answer: B'; else a letter that opens the text ('B)', '(B)',
    'B.'); else the last parenthesised '(B)'; else the last standalone capital letter among ``letters``."""
    if not text or not letters:
        return None
    ls = "".join(re.escape(x) for x in letters.upper())
    hits = re.findall(rf"(?i:answer)(?:\s+(?i:is)\s*:?|\s*:)\s*[\"'*(\[]*\s*(?:(?i:option|choice)\s+)?"
                      rf"([{ls}{ls.lower()}])(?![\w'])", text)
    if hits:
        return hits[-1].upper()
    m = re.match(rf"^[\W_]*\(?([{ls}])(?:[).:\]]|$)", text.strip())
    if m:
        return m.group(1)
    hits = re.findall(rf"\(([{ls}])\)", text)
    if hits:
        return hits[-1]
    hits = re.findall(rf"(?<![\w'])([{ls}])(?![\w'])", text)
    return hits[-1] if hits else None


def lettered(choices: Sequence[Any], letters: str) -> str:
    """'A. first\nB. second' for the choices of a multiple-choice question."""
    return "\n".join(f"{letters[i]}. {c}" for i, c in enumerate(choices))


# --- the formats the dataset task offers --------------------------------------------------------

def _answer_line(text: str) -> str | None:
    """The rest of the line after the last 'The answer is' / 'answer:', else the whole (stripped) text,
    without surrounding quotes, markdown or a final period."""
    if not text or not text.strip():
        return None
    hits = _SHORT_ANSWER.findall(text)
    s = (hits[-1] if hits else text.strip()).strip()
    if hits:
        s = s.splitlines()[0]
    s = s.strip().strip("*`\"'").strip()
    return (s[:-1] if s.endswith(".") else s).strip().strip("*`\"'").strip() or None


def _yes_no_gold(value: Any) -> str | None:
    if isinstance(value, bool):
        return "yes" if value else "no"
    v = str(value).strip().lower().rstrip(".")
    return {"yes": "yes", "no": "no", "true": "yes", "false": "no", "y": "yes", "n": "no"}.get(v)


@dataclass(frozen=True)
class AnswerFormat:
    """How answers of one kind are extracted from model text, parsed from a label, and compared."""

    name: str
    hint: str  # System 2 prompts ask for "The answer is <hint>."
    instruction: str  # the System 1 instruction (also the distilled model's prompt)
    extract: Callable[[str], str | None]  # model text -> canonical answer (None: no answer in the text)
    parse_gold: Callable[[Any], str | None]  # a label from the file -> canonical answer (None: does not parse)
    normalize: Callable[[str], str | None]
    aliases: bool = False  # gold holds tab-separated aliases; any one matches

    def score(self, prediction: str | None, gold: str | None) -> bool:
        if prediction is None or gold is None:
            return False
        if self.aliases:
            return matches(prediction, gold.split(ALIAS_SEP))
        p = self.normalize(prediction)
        return p is not None and p != "" and p == self.normalize(gold)


ALIAS_SEP = "\t"
FORMATS = ("number", "yes_no", "choice", "short_text", "regex", "exact")
NUMBER_INSTRUCTION = "Answer with only the final number. Do not explain."
YES_NO_INSTRUCTION = "Answer with only yes or no."


def _short_gold(value: Any) -> str | None:
    vals = value if isinstance(value, (list, tuple)) else [value]
    vals = [str(v).strip() for v in vals if v is not None and str(v).strip() and normalize_answer(str(v))]
    return ALIAS_SEP.join(vals) or None


def _choice_letters(letters: str) -> str:
    out = "".join(ch for ch in letters.upper() if not ch.isspace() and ch != ",")
    if not out or len(set(out)) != len(out) or not out.isalpha():
        raise ConfigError(f"task.options.letters must be distinct letters like 'ABCD', got {letters!r}")
    return out


def answer_format(name: str, *, letters: str = "ABCD", pattern: str | None = None) -> AnswerFormat:
    """The :class:`AnswerFormat` called ``name``; ``letters`` for choice, ``pattern`` (one group) for regex."""
    if name == "number":
        return AnswerFormat("number", "<number>", NUMBER_INSTRUCTION, extract_number,
                            lambda v: normalize_number(str(v)) if not isinstance(v, bool) else None, normalize_number)
    if name == "yes_no":
        return AnswerFormat("yes_no", "<yes or no>", YES_NO_INSTRUCTION, extract_yes_no, _yes_no_gold,
                            lambda a: _yes_no_gold(a))
    if name == "choice":
        ls = _choice_letters(letters)
        listed = ", ".join(ls[:-1]) + f" or {ls[-1]}" if len(ls) > 1 else ls
        norm = (lambda a: (lambda s: s if len(s) == 1 and s in ls else None)(str(a).strip().strip("()[].*").upper()))
        return AnswerFormat("choice", "<letter>", f"Answer with only the letter of the correct choice ({listed}).",
                            lambda t: extract_choice(t, ls), norm, norm)
    if name == "short_text":
        return AnswerFormat("short_text", "<short answer>", "Answer with only the short answer, nothing else.",
                            lambda t: normalize_answer(extract_short_answer(t)) or None, _short_gold,
                            lambda a: normalize_answer(a) or None, aliases=True)
    if name == "regex":
        if not pattern:
            raise ConfigError("answer_format=regex needs task.options.pattern: a regular expression with one group "
                              r"that captures the answer, e.g. 'Final: (\w+)'")
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise ConfigError(f"task.options.pattern {pattern!r} is not a valid regular expression ({e})") from None
        if rx.groups != 1:
            raise ConfigError(f"task.options.pattern {pattern!r} has {rx.groups} groups; it needs exactly one, the "
                              "answer (write other groups as (?:...))")

        def extract(text: str) -> str | None:
            hits = [m.group(1) for m in rx.finditer(text or "") if m.group(1) is not None]
            return hits[-1].strip() or None if hits else None

        def gold(v: Any) -> str | None:
            s = str(v).strip()
            return s or None

        return AnswerFormat("regex", "<answer>", "Answer with only the final answer.", extract, gold, gold)
    if name == "exact":
        def exact(v: Any) -> str | None:
            s = str(v).strip()
            return s or None

        return AnswerFormat("exact", "<answer>", "Answer with only the final answer.", _answer_line, exact, exact)
    check_choice("task.options.answer_format", name, FORMATS)
    raise AssertionError(f"answer format '{name}' is listed in FORMATS but not built")
