"""Re-render every committed result from its JSON and write the HTML next to each markdown result.

    python benchmarks/render_results.py [--check]

For each benchmarks/results/NAME.json whose script (benchmarks/NAME.py) has ``render(res)``,
the markdown is rendered again through the shared table formatter (s2distill.tables) and
compared with the committed NAME.md: it must be byte-identical up to the script's
"Command:/Machine:" footer (anything a person appended after the footer is kept as is).
Then NAME.html is written: the committed markdown as a page, plus the script's
accuracy-vs-tokens figure where it has one (``figure(res)``). The committed .md is never
rewritten. ``--check`` only compares and writes nothing. Exit status 1 if any differs.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import RESULTS, write_html  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="compare only, write no HTML")
    args = ap.parse_args()
    bad = 0
    for md_path in sorted(RESULTS.glob("*.md")):
        name, js = md_path.stem, md_path.with_suffix(".json")
        committed = md_path.read_text()
        if not js.is_file() or not (HERE / f"{name}.py").is_file():  # e.g. demo.md, written by hand
            if not args.check:
                write_html(name, committed)
            print(f"{name}: no JSON result" + ("" if args.check else f"; wrote {name}.html from the markdown"))
            continue
        mod = importlib.import_module(name)
        res = json.loads(js.read_text())
        if hasattr(mod, "render"):
            md = mod.render(res)
            same = committed.startswith(md + "\n\nCommand: `")
            if not same:
                bad += 1
                head = committed.split("\n\nCommand: `")[0]
                sys.stdout.writelines(difflib.unified_diff(head.splitlines(True), md.splitlines(True),
                                                           f"{name}.md (committed)", f"{name} (rendered from JSON)"))
            status = "identical to the committed markdown" if same else "DIFFERS from the committed markdown"
        else:
            status = "no render() in the script"
        if not args.check:
            fig = mod.figure(res) if hasattr(mod, "figure") else ""
            write_html(name, committed, fig)
        print(f"{name}: re-rendered from JSON: {status}" + ("" if args.check else f"; wrote {name}.html"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
