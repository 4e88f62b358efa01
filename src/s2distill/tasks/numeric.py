"""Shared pieces for tasks whose answer is a number."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .base import Task

_NUM = r"-?\$?\s?\d[\d,]*(?:\.\d+)?"
_ANSWER_PATTERNS = [
    re.compile(r"####\s*(" + _NUM + ")"),
    re.compile(r"answer is[:\s]*\**\s*(" + _NUM + ")", re.IGNORECASE),
    re.compile(r"answer[:\s]+\**\s*(" + _NUM + ")", re.IGNORECASE),
    re.compile(r"\\boxed\{\s*(" + _NUM + r")\s*\}"),
]
_ANY_NUM = re.compile(_NUM)

DIRECT_INSTRUCTION = "Answer with only the final number. Do not explain."


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


class NumericTask(Task):
    """Numeric extraction, exact scoring after normalisation."""

    answer_kind = "number"
    answer_hint = "<number>"
    direct_instruction = DIRECT_INSTRUCTION

    def extract(self, text: str) -> str | None:
        return extract_number(text)

    def normalize(self, answer: str) -> str | None:
        return normalize_number(answer)
