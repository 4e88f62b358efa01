"""Branch-Solve-Merge for pairwise judging (Saha et al. 2023), three batched steps.

* branch: from the question alone, plan up to ``max_criteria`` evaluation criteria
  ("<name>: <description>" per line); ``n`` samples = ``n`` plans.
* solve: for every plan and criterion, score both responses 1-10 with a one-sentence
  justification (one batched call over all examples, plans and criteria); the two score lines are
  asked for, and the same scores written in prose are read too ('the score for Assistant A is 9').
* merge: sum the scores per response (no model call); the higher sum wins, equal sums tie.

Unparseable plans fall back to default criteria and unparseable scores drop that
criterion; both are stated in the sample's response text, never silent.
"""
from __future__ import annotations

import dataclasses
import re

from ..errors import ConfigError
from ..tasks.base import Pairwise
from ..types import Call, GenRequest, Sample, Trace
from . import Method, method_options
from .prompts import Prompt, prompts_of

BRANCH = ("We want to evaluate how well an AI assistant answers the user question below. Before seeing any answer, "
          "list up to {k} criteria for judging an answer to this question. Write one criterion per line as "
          '"<name>: <short description>" and nothing else.\n\n[User Question]\n{question}')
SOLVE = ("{pair}\n\nEvaluate both answers on this criterion only:\n{name}: {description}\n\n"
         "Write one sentence of justification, then end with exactly these two lines:\n"
         "Score A: <1-10>\nScore B: <1-10>")
DEFAULT_CRITERIA = (("Correctness", "Is the answer factually and logically correct?"),
                    ("Helpfulness", "Does the answer address what the user asked?"),
                    ("Clarity", "Is the answer clear and well organised?"))
PROMPTS = {"branch": Prompt(BRANCH, ("question",), ("k",)),  # method.options.prompts.<step>
           "solve": Prompt(SOLVE, ("pair", "name"), ("description",))}
OPTIONS = ("max_criteria", "prompts")

_CRITERION = re.compile(r"^\s*(?:\d+[.)]|[-*•])?\s*\**\s*([A-Za-z][^:\n*]{1,60}?)\s*\**\s*:\s*\**\s*(\S.*)$")
_SCORE = {side: re.compile(rf"score(?:\s+for)?\s*(?:assistant|response|answer)?\s*{side}\s*[:=]?\s*\**\s*"
                           r"(\d+(?:\.\d+)?)(?:\s*/\s*10)?", re.IGNORECASE) for side in "AB"}
# the same scores in prose (smaller models often ignore the two-line format); the side letter must be a capital
_NUM = r"\**\s*(\d+(?:\.\d+)?)\**(?:\s*(?:/|(?i:out\s+of))\s*10)?"
_IS = r"(?i:\s+(?:is|of|would\s+be|will\s+be)\s+|\s*[:=]\s*)"
_PROSE = {side: tuple(re.compile(p.format(side=rf"(?i:assistant|response|answer)\s+{side}\b", IS=_IS, N=_NUM)) for p in (
    r"(?i:score|rating)\s+(?i:for|of)\s+(?i:the\s+)?{side}{IS}{N}",  # the score for Assistant A is 9
    r"{side}(?:'s)?\s+(?i:score|rating){IS}{N}",  # Assistant A's score is 10
    r"(?i:give|gives|assign|award)\s+{side}\s+(?i:a\s+)?(?i:score|rating)\s+(?i:of\s+)?{N}",  # give Assistant A a score of 2
    r"{side}\s+(?i:gets|receives|scores|earns|deserves)\s+(?i:a\s+(?:score|rating)\s+of\s+)?{N}",
    r"(?i:score|rating)\s+of\s+{N}\s+(?i:to|for)\s+(?i:the\s+)?{side}",  # a score of 7 to Assistant B's answer
)) for side in "AB"}
_BOTH = tuple(re.compile(p.format(N=_NUM), re.IGNORECASE) for p in (
    r"(?:score|rating)\s+of\s+{N}\s+(?:for|to)\s+both",  # a score of 4 for both answers
    r"(?:score|rating)\s+(?:for|of)\s+(?:each|both)\s+(?:answers?|responses?|assistants?)\s+(?:is|are|would be)\s+{N}",
    r"both\s+(?:answers|responses|assistants)\s+(?:get|receive|score|deserve|earn)\s+(?:a\s+(?:score|rating)\s+of\s+)?{N}",
    r"scores\s+are\s+both\s+{N}",  # the scores are both 5
))


def max_criteria_of(cfg) -> int:
    k = method_options(cfg, "bsm", OPTIONS).get("max_criteria", 5)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 10:
        raise ConfigError(f"method.options.max_criteria must be an integer in 1..10, got {k!r}")
    return k


def steps_of(cfg) -> int:
    """Model calls per sample, at most: one plan plus one call per criterion."""
    return 1 + max_criteria_of(cfg)


def parse_criteria(text: str, k: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in (text or "").splitlines():
        m = _CRITERION.match(line)
        if m and m.group(1).strip().lower() not in {c[0].lower() for c in out}:
            out.append((m.group(1).strip(), m.group(2).strip().strip("*").strip()))
        if len(out) == k:
            break
    return out


def _last(patterns, text: str) -> str | None:
    """The number of the last match of any of ``patterns`` in ``text``."""
    hits = [m for p in patterns for m in p.finditer(text)]
    return max(hits, key=lambda m: m.start()).group(1) if hits else None


def parse_scores(text: str) -> tuple[float, float] | None:
    """(score A, score B) from the last 'Score A: x' / 'Score B: y', else from the same scores in prose ('the
    score for Assistant A is 9', "Assistant B's score is 1", 'a score of 4 for both answers'); None if a side
    has no score or one is not in 1..10."""
    text = text or ""
    got = [_last((_SCORE[side],), text) for side in "AB"]
    if None in got:
        got = [_last(_PROSE[side], text) for side in "AB"]
        if None in got and (both := _last(_BOTH, text)) is not None:
            got = [g or both for g in got]
    if None in got or not all(1 <= float(v) <= 10 for v in got):
        return None
    return float(got[0]), float(got[1])


def merge(scores: list[tuple[float, float] | None]) -> tuple[str | None, float, float]:
    valid = [s for s in scores if s is not None]
    if not valid:
        return None, 0.0, 0.0
    a, b = sum(s[0] for s in valid), sum(s[1] for s in valid)
    return ("A" if a > b else "B" if b > a else "tie"), a, b


def run(task, examples, backend, params, cfg=None) -> list[Trace]:
    k = max_criteria_of(cfg)
    prompts = prompts_of(cfg, "bsm", PROMPTS)
    BRANCH, SOLVE = prompts["branch"], prompts["solve"]  # noqa: N806
    if not isinstance(task, Pairwise):
        raise ConfigError(f"method 'bsm' judges a pair of responses; task '{task.name}' is not a pairwise judge "
                          "task (use task.name=judge)")
    branch = [GenRequest(({"role": "user", "content": BRANCH.format(k=k, question=e.question)},), params)
              for e in examples]
    plans = backend.generate(branch)

    parsed = [[parse_criteria(c.text, k) for c in comps] for comps in plans]
    solve, index = [], []
    for i, (ex, crit_lists) in enumerate(zip(examples, parsed)):
        for j, crits in enumerate(crit_lists):
            for name, desc in crits or DEFAULT_CRITERIA:
                solve.append(GenRequest(({"role": "user", "content": SOLVE.format(
                    pair=task.pair_text(ex), name=name, description=desc)},),
                    dataclasses.replace(params, n=1, seed=params.seed + j)))
                index.append((i, j))
    results = backend.generate(solve)
    by_sample: dict[tuple[int, int], list] = {}
    for key, req, (comp,) in zip(index, solve, results):
        by_sample.setdefault(key, []).append((req, comp))

    traces = []
    for i, ex in enumerate(examples):
        samples = []
        for j, plan in enumerate(plans[i]):
            solved = by_sample.get((i, j), [])
            scores = [parse_scores(c.text) for _, c in solved]
            verdict, sa, sb = merge(scores)
            crits = parsed[i][j] or DEFAULT_CRITERIA
            notes = [] if parsed[i][j] else ["branch unparseable: default criteria used"]
            notes += [f"criterion '{crits[t][0]}': scores unparseable, dropped" for t, s in enumerate(scores)
                      if s is None]
            summary = "; ".join(f"{crits[t][0]}: A={s[0]:g} B={s[1]:g}" for t, s in enumerate(scores) if s) or "-"
            response = (f"Criteria scores: {summary}. Totals: A={sa:g}, B={sb:g}."
                        + (f" Notes: {' | '.join(notes)}." if notes else "")
                        + (f" Verdict: {verdict}" if verdict else " Verdict: none (no criterion scored)"))
            calls = (Call("branch", branch[i].messages, plan),) + tuple(Call("solve", r.messages, c) for r, c in solved)
            samples.append(Sample(response=response, answer=verdict, calls=calls))
        traces.append(Trace(example_id=ex.id, method="bsm", samples=tuple(samples)))
    return traces


METHOD = Method("bsm", run, PROMPTS, OPTIONS, steps=steps_of)
