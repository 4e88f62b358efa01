"""A markdown result (headings, paragraphs, bullet lists, pipe tables, `code`) as a self-contained
HTML page. Tables go through :class:`~s2distill.tables.Table`, the one table formatter, so the
page shows exactly the cells of the markdown it was made from."""
from __future__ import annotations

import re
from html import escape

from .tables import Table


def _inline(text: str) -> str:
    out = escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_table(lines: list[str]) -> Table:
    """A markdown pipe table (header, separator, rows) back into a Table."""
    headers, sep = _cells(lines[0]), _cells(lines[1])
    align = "".join("r" if s.endswith(":") else "l" for s in sep)
    return Table(headers, [_cells(x) for x in lines[2:]], align=align)


def markdown_to_html(md: str) -> str:
    lines, out, i = md.splitlines(), [], 0
    para: list[str] = []

    def flush():
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        if not line.strip():
            flush()
            i += 1
        elif line.startswith("#"):
            flush()
            level = min(len(line) - len(line.lstrip("#")), 4)
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|") and i + 1 < len(lines) and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1]):
            flush()
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            out.append(parse_table(lines[i:j]).html())
            i = j
        elif line.startswith("- "):
            flush()
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
        else:
            para.append(line.strip())
            i += 1
    flush()
    return "\n".join(out)


def markdown_page(md: str, title: str, figure: str = "") -> str:
    """The page: an optional figure (e.g. an accuracy-vs-tokens SVG) after the first heading."""
    from .html_report import page

    body = markdown_to_html(md)
    if figure:
        first = body.find("</h1>")
        cut = first + len("</h1>") if first >= 0 else 0
        body = body[:cut] + f'<div id="plot">{figure}</div>' + body[cut:]
    return page(title, body)
