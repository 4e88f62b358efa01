"""Shared pieces for tasks whose answer is a number."""
from __future__ import annotations

from .answers import NUMBER_INSTRUCTION as DIRECT_INSTRUCTION
from .answers import extract_number, normalize_number
from .base import Task

__all__ = ["DIRECT_INSTRUCTION", "NumericTask", "extract_number", "normalize_number"]


class NumericTask(Task):
    """Numeric extraction, exact scoring after normalisation."""

    answer_kind = "number"
    answer_hint = "<number>"
    direct_instruction = DIRECT_INSTRUCTION

    def extract(self, text: str) -> str | None:
        return extract_number(text)

    def normalize(self, answer: str) -> str | None:
        return normalize_number(answer)
