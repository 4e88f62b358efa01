"""One table formatter for reports, comparisons and benchmark results: markdown and HTML.

A ``Table`` holds already formatted cell strings, so the markdown and the HTML of a table
always show the same numbers.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field


def pct(x) -> str:
    """A share as a percentage with one decimal; '-' when unknown (e.g. accuracy without gold)."""
    return "-" if x is None else f"{100 * x:.1f}"


def ci(c) -> str:
    """A 95% interval [lo, hi] as 'lo-hi' in percent; '-' when unknown."""
    return f"{pct(c[0])}-{pct(c[1])}" if c else "-"


def num(x, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    align: str = ""  # one char per column: 'l' or 'r' (default: first column left, others right)
    classes: Sequence[str] = field(default_factory=tuple)  # optional CSS class per row (HTML only)

    def _align(self) -> str:
        a = self.align or "l" + "r" * (len(self.headers) - 1)
        if len(a) != len(self.headers):
            raise ValueError(f"align '{a}' has {len(a)} columns, the table {len(self.headers)}")
        return a

    def markdown(self) -> str:
        sep = "|" + "".join("---|" if c == "l" else "---:|" for c in self._align())
        lines = ["| " + " | ".join(self.headers) + " |", sep]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def html(self, attrs: str = "") -> str:
        a = self._align()
        head = "".join(f'<th class="{"l" if c == "l" else "r"}">{html.escape(h)}</th>' for h, c in zip(self.headers, a))
        body = []
        for i, row in enumerate(self.rows):
            cls = f' class="{html.escape(self.classes[i])}"' if i < len(self.classes) and self.classes[i] else ""
            cells = "".join(f'<td class="{"l" if c == "l" else "r"}">{html.escape(str(v))}</td>' for v, c in zip(row, a))
            body.append(f"<tr{cls}>{cells}</tr>")
        return f"<table{(' ' + attrs) if attrs else ''}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
