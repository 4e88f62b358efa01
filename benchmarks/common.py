"""Shared helpers for benchmark scripts: result writing (``s2distill.results``) with this folder as the default."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from s2distill.results import footer, html_page, machine  # noqa: F401 - re-exported for the scripts
from s2distill.results import portable as _portable
from s2distill.results import write_html as _write_html
from s2distill.results import write_result as _write_result
from s2distill.tables import Table, ci, pct  # noqa: F401 - the one table formatter, re-exported for the scripts

RESULTS = Path(__file__).parent / "results"


def portable(obj):
    """``obj`` with this machine's absolute paths made portable (``s2distill.results.portable``)."""
    return _portable(obj, RESULTS.parent.parent)


def write_result(name: str, data: dict, markdown: str, figure: str = "", results: Path | None = None,
                 also: Path | None = None, keep_notes: bool = False) -> None:
    """``results/NAME.json``, ``NAME.md`` and ``NAME.html`` (``s2distill.results.write_result``); the same files
    also into ``also`` when given. ``keep_notes``: the committed result's hand-written notes stay (for results that
    keep the rows of earlier runs, which the notes describe)."""
    command = " ".join([Path(sys.executable).name, *sys.argv])
    prev = (results or RESULTS) / f"{name}.json"
    if keep_notes and prev.is_file() and "notes_added_after_the_run" not in data:
        import json
        notes = json.loads(prev.read_text()).get("notes_added_after_the_run")
        data = {**data, **({"notes_added_after_the_run": notes} if notes else {})}
    for d in [results or RESULTS] + ([Path(also)] if also else []):
        _write_result(name, data, markdown, figure, d, RESULTS.parent.parent, command)


def experiment_rows(name: str) -> list[dict]:
    """The rows of a committed experiment result (``s2distill experiment``): each row's values, with its label,
    run and system (``role``), as a flat dict; [] when the result is not there."""
    import json

    p = RESULTS / f"{name}.json"
    if not p.is_file():
        return []
    return [{**r["values"], "label": r["label"], "run": r["run"], "role": r["role"]}
            for r in json.loads(p.read_text())["rows"]]


def write_html(name: str, md: str, figure: str = "", results: Path | None = None) -> Path:
    return _write_html(name, md, figure, results or RESULTS)


def points_svg(rows: list[dict], label, role, y_key: str = "accuracy", ci_key: str = "ci95",
               x_key: str = "mean_generated_tokens", y_label: str = "accuracy % (95% CI)") -> str:
    """An accuracy-vs-tokens plot of result rows (the report's plot): ``label(row)`` names a point,
    ``role(row)`` picks its colour (system1, system2, system2_maj, distilled)."""
    from s2distill.svgplot import Point, accuracy_tokens_svg, color_of

    pts = [Point(label=label(r), x=r[x_key], y=r[y_key], lo=(r.get(ci_key) or [None])[0],
                 hi=(r.get(ci_key) or [None, None])[1], color=color_of(role(r), i))
           for i, r in enumerate(rows) if r.get(y_key) is not None and r.get(x_key) is not None]
    return accuracy_tokens_svg(pts, width=760, height=440, y_label=y_label) if pts else ""


def share_cache(src, dst) -> None:
    """Start pipeline ``dst`` with ``src``'s samples (``s2distill.experiment.share_cache``)."""
    from s2distill.experiment import share_cache as copy_cache

    copy_cache(src.rd.path, dst.rd.path)


def cot_requests(n: int, max_tokens: int, seed_base: int) -> list:
    """The throughput workload: zero-shot CoT on n arithmetic depth-2 word problems, T=0.7, seeds
    ``seed_base + i`` (a fresh base per phase: no server-side result reuse between phases)."""
    from s2distill.methods.cot import messages
    from s2distill.tasks.arithmetic import ArithmeticOptions, ArithmeticTask
    from s2distill.types import GenRequest, SamplingParams

    task = ArithmeticTask(ArithmeticOptions(depth=2))
    return [GenRequest(tuple(messages(task, [], e.question)),
                       SamplingParams(max_tokens=max_tokens, temperature=0.7, top_p=0.95, seed=seed_base + i))
            for i, e in enumerate(task.load("eval", n, seed=7))]




def run_or_note(p, label: str, notes: list[str]) -> dict:
    """``p.run()``; when training cannot happen (e.g. curation kept nothing) note why and return the
    report of the stages that ran, so the undistilled rows still stand and no number is invented."""
    from s2distill.errors import ConfigError
    from s2distill.report import build_report

    try:
        return p.run()
    except ConfigError as e:
        notes.append(f"{label}: not trained ({e})")
        return build_report(p.rd, p.cfg, p.task)


def parse_with_overrides(ap: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``ap.parse_args()`` where key=value overrides may come anywhere, also right after a list option
    (``--settings a b k=v`` would otherwise read ``k=v`` as a setting). The value of an option that takes
    one (``--note "n=40 ..."``) stays that option's."""
    argv = list(sys.argv[1:] if argv is None else argv)
    one_value = {s for a in ap._actions if a.option_strings and a.nargs is None for s in a.option_strings}
    keep: list[str] = []
    overrides: list[str] = []
    value_next = False
    for tok in argv:
        if value_next:
            keep.append(tok)
            value_next = False
        elif tok in one_value:
            keep.append(tok)
            value_next = True
        elif not tok.startswith("-") and "=" in tok:
            overrides.append(tok)
        else:
            keep.append(tok)
    return ap.parse_args([*keep, "--", *overrides] if overrides else keep)
