"""Shared pieces for tasks whose answer is a number."""
from __future__ import annotations

from .answers import NUMBER_INSTRUCTION as DIRECT_INSTRUCTION
from .answers import answer_format, extract_number, normalize_number
from .base import Formatted

__all__ = ["DIRECT_INSTRUCTION", "NumericTask", "extract_number", "normalize_number"]


class NumericTask(Formatted):
    """Numeric answers (the shared ``number`` format): extraction, exact scoring after normalisation."""

    answer_format = answer_format("number")
