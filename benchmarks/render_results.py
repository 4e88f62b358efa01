"""Re-render every committed result from its JSON and write the HTML next to each markdown result.

    python benchmarks/render_results.py [--check]

Every file in benchmarks/results/ is covered, or the check fails:

* NAME.json: an experiment's result (``"script": "experiment"``, written by ``s2distill experiment
  benchmarks/experiments/NAME.yaml``) is rendered by ``s2distill.experiment.render``; any other's script
  benchmarks/NAME.py must have ``render(res)`` (the GPU benchmarks call it ``markdown(res)``); the markdown is rendered again through the shared table formatter
  (s2distill.tables) and, with the footer from the same JSON (``common.footer``: the command and
  machine lines, then the JSON's ``notes_added_after_the_run``), must be byte-identical to the whole
  committed NAME.md. A note added after a run goes into the JSON's ``notes_added_after_the_run`` (or
  the field the script's ``render`` reads, e.g. ``notes``) and into the markdown, never into the
  markdown alone.
* NAME.md without a JSON: only the results written by hand that ``HAND_WRITTEN`` lists (with what is
  checked in them).
* NAME.html: must be the committed markdown as a page, plus the script's accuracy-vs-tokens figure
  where it has one (``figure(res)``).

Without ``--check`` the HTML files are (re)written; the committed .md is never rewritten.
``--check`` only compares and writes nothing. Exit status 1 if anything differs or is not covered.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
from common import RESULTS, footer, html_page, write_html  # noqa: E402

RENDERERS = ("render", "markdown")  # the function of benchmarks/NAME.py that renders NAME.json


def check_demo(md: str) -> list[str]:
    """demo.md says its depth-2 row is the run of distill_arithmetic.json's depth-2 rows: same accuracies."""
    rows = json.loads((RESULTS / "distill_arithmetic.json").read_text())["rows"]
    want = [f"{100 * r['values']['accuracy']:.1f}%" for r in rows if r["values"].get("depth") == 2]
    row = next((line for line in md.splitlines() if re.match(r"\| .* \| 2 \| ", line)), None)
    if row is None:
        return ["no depth-2 row"]
    got = [c.strip() for c in row.strip("|").split("|")][-4:]
    return [] if got == want else [f"depth-2 row {got} != distill_arithmetic.json {want}"]


# Results written by hand (no script writes them): what makes them one, and what is checked beyond their HTML.
HAND_WRITTEN = {"demo": ("timed `s2distill demo` runs with /usr/bin/time", check_demo),
                "refactor_evidence": ("issue 15's cache replay and test-suite times", None),
                "fresh_clone": ("issue 21's fresh-clone install, test and demo times, taken with time/date", None)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="compare only, write no HTML")
    args = ap.parse_args()
    bad = 0
    # NAME.partial.json: a benchmark's unfinished settings, git-ignored, never a result
    for name in sorted({p.stem for p in RESULTS.iterdir() if not p.name.endswith(".partial.json")}):
        md_path, js = RESULTS / f"{name}.md", RESULTS / f"{name}.json"
        problems = [f"{p.name}: not a result file (NAME.json, .md, .html)" for p in RESULTS.glob(f"{name}.*")
                    if (p.suffix not in (".json", ".md", ".html") or p.stem != name) and not p.name.endswith(".partial.json")]
        if not md_path.is_file():
            problems.append("no markdown")
            committed, status, fig = "", "", ""
        else:
            committed, fig = md_path.read_text(), ""
        if name in HAND_WRITTEN:
            why, extra = HAND_WRITTEN[name]
            status = f"written by hand ({why})"
            problems += ["has a JSON: render it from the JSON instead"] if js.is_file() else []
            problems += extra(committed) if extra and committed else []
        elif not js.is_file():
            status = "no JSON result"
            problems.append("no JSON: a result written by hand must be listed in HAND_WRITTEN")
        elif (script := json.loads(js.read_text()).get("script", name)) != "experiment" \
                and not (HERE / f"{script}.py").is_file():
            status = "no script"
            problems.append(f"no benchmarks/{script}.py to render it")
        else:
            # an experiment spec's result (s2distill.experiment), a result's own script, or the one that wrote it
            mod = importlib.import_module("s2distill.experiment" if script == "experiment" else script)
            res = json.loads(js.read_text())
            fn = next((getattr(mod, f) for f in RENDERERS if hasattr(mod, f)), None)
            if fn is None:
                status = "no render() in the script"
                problems.append(f"benchmarks/{name}.py has no render(res)")
            else:
                md = fn(res) + footer(res)
                same = committed == md
                if not same:
                    problems.append("the markdown differs from its rendering")
                    sys.stdout.writelines(difflib.unified_diff(committed.splitlines(True), md.splitlines(True),
                                                               f"{name}.md (committed)", f"{name} (rendered from JSON)"))
                status = "re-rendered from JSON: " + ("identical to the committed markdown" if same
                                                      else "DIFFERS from the committed markdown")
            fig = mod.figure(res) if hasattr(mod, "figure") else ""
        if committed:
            html = RESULTS / f"{name}.html"
            if not args.check:
                write_html(name, committed, fig)
                status += f"; wrote {name}.html"
            elif not html.is_file() or html.read_text() != html_page(name, committed, fig):
                problems.append(f"{name}.html is not the page of the committed markdown (run without --check)")
            else:
                status += "; HTML up to date"
        bad += bool(problems)
        print(f"{name}: {status}" + "".join(f"\n  PROBLEM: {p}" for p in problems))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
