"""Every measured number in README.md and docs/*.md comes from a committed result.

The convention (also stated in README.md's Development section):

* A percentage (``62.5%``, a ``(47.0-75.8)`` interval after one, ``12.5 points``), a token count
  (``28.5 tokens``, ``2 tok``), a throughput (``71.4 tokens/s``, ``tok/s``), a timing (``11 min 4 s``,
  ``17.9 min``, ``1.6 s``, ``0.3 ms``, ``24-26 s/step``), a ratio (``3.1x``, ``x1.02``), every member of a
  slash list of numbers (``7.58 / 52.77 / 7.13``) and every number in a table column whose header names
  one of those units (``accuracy %``, ``mean generated tokens``, ``wall s``, ``tok/s``, ``h``) is a
  measurement claim. Code (fenced blocks and `inline code`) is not prose and is skipped.
* A claim must be found in the committed results that its paragraph cites
  (``benchmarks/results/NAME.md`` / ``.json``, or ``NAME.md`` for a results file NAME); a paragraph or
  table that cites none uses the files cited in its section (a heading, or a paragraph that opens with
  ``**bold**``, starts a section); a section that cites none uses all of ``benchmarks/results/``.
  Found means: the number, rounded the way the doc rounds it, is a number in the files' text or JSON
  values (JSON fractions count as percentages, ``11:03.5`` and ``N min M s`` as timings).
* The paper's numbers are marked where they stand: a sentence or table row that contains ``(paper``
  (e.g. ``(paper: 7.58 / 52.77 / 7.13)``) or ``arXiv 2407.06023`` is a citation, not a measurement.
* Numbers that are not measurements (configuration values, targets, statistics' levels) are listed
  in ``ALLOWED`` below, each with its reason. README's "### Training on your GPU" section is skipped
  (its table is rewritten from the GPU measurements).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_SECTIONS = {"README.md": ["### Training on your GPU"]}

# Not measurements: (text around the number, exactly as in the doc, reason). Keep it short.
ALLOWED = [
    ("95% interval", "the confidence level of every interval (also in '95% intervals')"),
    ("95% confidence", "the confidence level of a bound or a test"),
    ("(95% CI)", "the confidence level, in a table header"),
    ("(upper 95% bound)", "the confidence level"),
    ("every 10% of the run", "the default checkpoint interval (train.save_steps)"),
    ("the default 10% interval", "the default checkpoint interval"),
    ("about 30% slower", "the usual rule of thumb for gradient checkpointing, not a measurement of this project"),
    ("the 10% goal", "a goal set by the issue, not a measurement"),
    ("default 1200 s", "backend.startup_timeout_s's default"),
    ("~5 min on an H200", "the design budget of gpu_train.py, said to be one in the same section"),
    ("(~380 tokens each)", "the size of gpu_train.py's fixed synthetic rows, set by the script"),
    ("at most 7,473 x ~200 tokens, 2 epochs, ~3 M tokens", "the cost model's estimate of training, said to be one"),
]

NUM = r"\d[\d,]*(?:\.\d+)?"
RANGE = rf"{NUM}(?:\s?-\s?{NUM})?"
UNITS = {  # kind: regex whose group "v" is the number (or range)
    "pct": rf"(?<![\w.])(?P<v>{RANGE})\s?(?:%|per\s?cent\b|points\b)",
    "tokens": rf"(?<![\w.])(?P<v>{RANGE})\s?(?:[kM]\s)?(?:generated\s)?(?:tokens?|tok)\b(?!/s| per s)",
    "rate": rf"(?<![\w.])(?P<v>{RANGE})\s?(?:generated\s)?(?:tokens/s|tok/s)",
    "time": rf"(?<![\w./])(?P<v>{RANGE})\s?(?:ms|s|sec|seconds?|min|minutes?|h|hours?)\b(?!/step|\.\w)",
    "step": rf"(?<![\w.])(?P<v>{RANGE})\s?s/step",
    "minsec": r"(?<![\w.])(?P<v>\d+ min \d+(?:\.\d+)? s)\b",
    "ratio": rf"(?<![\w.])(?:(?P<v>{NUM})x\b|x(?P<w>{NUM})\b)",
    "slash": rf"(?<![\w.])(?P<v>{NUM}(?:\s?/\s?{NUM})+)(?![\w/])",
    "ci": rf"\((?P<v>{NUM}-{NUM})[,)]",  # an interval: "62.5 (47.0-75.8)", "80.0% (54.8-93.0, n=15)"
}
HEADER_KINDS = [(r"%|accuracy|agreement", "pct"), (r"tokens/s|tok/s", "rate"), (r"token", "tokens"),
                (r"\bwall\b|\b(?:s|ms|min|h)\b", "time")]  # a table column's unit, from its header
CITE = re.compile(r"(?:benchmarks/)?(?:results/)?\b([a-z_0-9]+)\.(?:md|json|html)\b")
PAPER = re.compile(r"\(paper\b|arXiv 2407\.06023")


def _num(s: str) -> float:
    return float(s.replace(",", ""))


def _decimals(s: str) -> int:
    return len(s.split(".")[1]) if "." in s else 0


class Results:
    """The numbers of one committed result (its .md and .json): plain values, and timings in seconds."""

    def __init__(self, names: list[str], results: Path = RESULTS):
        self.values: list[float] = []
        self.shares: list[float] = []  # JSON values as percentages (0.625 -> 62.5)
        self.seconds: list[float] = []
        for name in names:
            for path in (results / f"{name}.md", results / f"{name}.json"):
                if not path.is_file():
                    continue
                text = path.read_text()
                self.values += [_num(m) for m in re.findall(NUM, text)]
                self._times(text)
                if path.suffix == ".json":
                    for v in _json_numbers(json.loads(text)):
                        self.shares.append(100 * v)
                        self.seconds.append(v)

    def _times(self, text: str) -> None:
        for m, s in re.findall(r"(\d+):(\d\d(?:\.\d+)?)\b", text):
            self.seconds.append(60 * int(m) + float(s))
        for m, s in re.findall(r"(\d+) min (\d+(?:\.\d+)?) s\b", text):
            self.seconds.append(60 * int(m) + float(s))
        scale = {"ms": 1e-3, "s": 1, "min": 60, "h": 3600}
        for v, u in re.findall(rf"({NUM})\s?(ms|s|min|h)\b", text):
            self.seconds.append(_num(v) * scale[u])

    def has(self, kind: str, text: str) -> bool:
        text = text.strip()
        if kind == "minsec":
            m, s = re.match(r"(\d+) min (\S+) s", text).groups()
            return self._near_s(60 * int(m) + float(s), 0.5 * 10 ** -_decimals(s))
        value, tol = _num(text), 0.5 * 10 ** -_decimals(text) + 1e-9
        pool = self.values + self.shares if kind in ("pct", "ci", "slash") else self.values
        return any(abs(v - value) <= tol for v in pool)

    def has_time(self, text: str, unit: str) -> bool:
        scale = {"ms": 1e-3, "s": 1, "sec": 1, "second": 1, "seconds": 1, "min": 60, "minute": 60, "minutes": 60,
                 "h": 3600, "hour": 3600, "hours": 3600}[unit]
        return self._near_s(_num(text) * scale, (0.5 * 10 ** -_decimals(text)) * scale)

    def _near_s(self, seconds: float, tol: float) -> bool:
        return any(abs(s - seconds) <= tol + 1e-9 for s in self.seconds)


def _json_numbers(obj):
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield float(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _json_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _json_numbers(v)


def blocks(text: str, skip: list[str]):
    """(line number, block text, is_table, section id) for every prose paragraph and table; code skipped."""
    out, cur, start, fence, skipping, section = [], [], 0, False, None, 0

    def flush():
        if cur:
            out.append((start, "\n".join(cur), cur[0].lstrip().startswith("|"), section))
        cur.clear()

    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            flush()
            fence = not fence
            continue
        if fence:
            continue
        heading = re.match(r"(#+) ", line)
        if heading:
            flush()
            level = len(heading.group(1))
            if skipping is not None and level <= skipping:
                skipping = None
            if any(line.startswith(s) for s in skip):
                skipping = level
            section += 1
            continue
        if skipping is not None:
            continue
        is_table = line.lstrip().startswith("|")
        if not line.strip() or (cur and is_table != cur[0].lstrip().startswith("|")):
            flush()
        if line.strip():
            if not cur:
                start = i
                if line.startswith("**"):
                    section += 1
            cur.append(line)
    flush()
    return out


def _cited(text: str, known: set[str]) -> list[str]:
    return sorted({m for m in CITE.findall(text) if m in known})


def _prose(text: str) -> str:
    """Inline code removed (commands and config keys are not claims); allowed phrases blanked."""
    text = re.sub(r"`[^`]*`", " ", text)
    for phrase, _ in ALLOWED:
        text = text.replace(phrase, " " * len(phrase))
    return text


def _sentences(text: str):
    """Sentences of a paragraph with their start offsets (a paper marker applies to its sentence)."""
    pos = 0
    for m in re.finditer(r"(?<=[.!?])\s+(?=[A-Z*(])", text):
        yield pos, text[pos:m.start()]
        pos = m.end()
    yield pos, text[pos:]


def claims(text: str):
    """(kind, matched number text, unit) for every measurement claim in a piece of prose."""
    taken: list[tuple[int, int]] = []
    for kind in ("minsec", "step", "rate", "pct", "tokens", "ratio", "time", "ci", "slash"):
        for m in re.finditer(UNITS[kind], text):
            g = "v" if m.group("v") is not None else "w"
            span = m.span(g)
            if any(a <= span[0] < b for a, b in taken) or (kind == "slash" and "." not in m.group(g)):
                continue  # a slash list of whole numbers is a list of counts ("exit 0 / 1 / 2"), not a claim
            taken.append(span)
            unit = m.group(0)[m.end(g) - m.start(0):].strip().split()[0] if kind == "time" else ""
            yield kind, m.group(g), unit


def _parts(kind: str, v: str) -> list[str]:
    if kind == "minsec":
        return [v]
    if kind == "slash":
        return [p.strip() for p in v.split("/")]
    if re.fullmatch(rf"{NUM}\s?-\s?{NUM}", v):
        return [p.strip() for p in re.split(r"\s?-\s?", v)]
    return [v]


def check_text(name: str, text: str, results: Path = RESULTS) -> list[str]:
    """Problems of one doc: 'NAME:LINE: <number> (<kind>) not in <files>'."""
    known = {p.stem for p in results.iterdir() if p.suffix in (".md", ".json")}
    problems, bl = [], blocks(text, SKIP_SECTIONS.get(name, []))
    section_cites: dict[int, list[str]] = {}
    for _, b, _, sec in bl:
        section_cites.setdefault(sec, [])
        section_cites[sec] += _cited(b, known)
    cache: dict[tuple, Results] = {}
    for line, b, is_table, sec in bl:
        files = _cited(b, known) or sorted(set(section_cites[sec]))
        res = cache.setdefault(tuple(files), Results(files, results))
        items: list[tuple[int, str, str, str]] = []  # (line, kind, number, unit)
        if is_table:
            rows = [r.strip().strip("|").split("|") for r in b.splitlines()]
            header = rows[0]
            kinds = [next((k for h, k in HEADER_KINDS if re.search(h, cell.lower())), None) for cell in header]
            for j, row in enumerate(rows[2:], 2):
                if PAPER.search("|".join(row)):
                    continue
                for cell, kind in zip(row, kinds):
                    prose = _prose(cell)
                    found = list(claims(prose))
                    items += [(line + j, k, v, u) for k, v, u in found]
                    if kind and not found:
                        items += [(line + j, kind, v, "s" if kind == "time" else "")
                                  for v in re.findall(rf"(?<![\w.]){NUM}(?![\w.])", prose)]
        else:
            for off, sentence in _sentences(b):
                if PAPER.search(sentence):
                    continue
                ln = line + b[:off].count("\n")
                items += [(ln, k, v, u) for k, v, u in claims(_prose(sentence))]
        for ln, kind, v, unit in items:
            for part in _parts(kind, v):
                if kind == "time" and unit:
                    ok = res.has_time(part, unit) or res.has(kind, part)
                else:
                    ok = res.has(kind, part)
                if not ok:
                    problems.append(f"{name}:{ln}: {part} ({kind}{' ' + unit if unit else ''}) not in "
                                    + (", ".join(files) if files else "a cited result (none cited)"))
    return problems


def test_every_measured_number_in_the_docs_is_in_a_committed_result():
    problems = [p for doc in DOCS for p in check_text(doc.name, doc.read_text())]
    assert not problems, "\n".join(problems)


def test_a_planted_wrong_number_is_reported(tmp_path):
    readme = (ROOT / "README.md").read_text()
    assert check_text("README.md", readme) == []
    planted = readme.replace("System 1 5.0%, CoT 75.0% at 28.5 tokens", "System 1 5.0%, CoT 76.0% at 28.5 tokens", 1)
    assert planted != readme
    problems = check_text("README.md", planted)
    assert len(problems) == 1 and "76.0 (pct)" in problems[0], problems
    wrong_tokens = readme.replace("at 28.5 tokens", "at 29.5 tokens", 1)
    assert any("29.5 (tokens)" in p for p in check_text("README.md", wrong_tokens))
    wrong_time = readme.replace("15 min 18 s", "15 min 48 s", 1)
    assert any("15 min 48 s" in p for p in check_text("README.md", wrong_time))


def test_paper_citations_code_and_uncited_claims():
    doc = ("# T\n\nThe paper's GSM8K numbers (paper: 7.58 / 52.77 / 7.13). We measured 62.5% "
           "(`benchmarks/results/demo.md`).\n\n`task.n_train=16` and 99.9% in code: `x 12.3%`\n\n"
           "## U\n\nA claim that cites nothing: 62.5%, at 2.9 tokens.\n")
    problems = check_text("T.md", doc)
    assert problems == ["T.md:5: 99.9 (pct) not in demo",  # the section's citation is the scope
                        "T.md:9: 62.5 (pct) not in a cited result (none cited)",
                        "T.md:9: 2.9 (tokens) not in a cited result (none cited)"], problems
