"""Why the report's plots are hand-written SVG: the same accuracy-vs-tokens plot (4 systems,
error bars, log x) made by s2distill.svgplot and by matplotlib (if installed), time and size;
and the size of the JavaScript a Vega-Lite page would have to inline (npm tarballs, if given).

    python benchmarks/plot_choice.py [--vega-dir DIR]   # DIR: `npm pack vega@5 vega-lite@5 vega-embed@6`, unpacked

Writes benchmarks/results/plot_choice.{json,md,html}.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from common import Table, write_result  # noqa: E402

from s2distill.svgplot import Point, accuracy_tokens_svg  # noqa: E402

POINTS = [("system1", 1.0, 0.0, 0.0, 0.324), ("cot", 11.0, 0.75, 0.409, 0.928), ("cot_maj@3", 33.0, 0.75, 0.409, 0.928),
          ("distilled", 1.0, 1.0, 0.676, 1.0)]
MPL = """
import io, time
t0 = time.perf_counter()
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
t1 = time.perf_counter()
fig, ax = plt.subplots(figsize=(6.4, 3.8))
for n, x, y, lo, hi in POINTS:
    ax.errorbar([x], [y * 100], yerr=[[100 * (y - lo)], [100 * (hi - y)]], fmt="o", capsize=4)
    ax.annotate(n, (x, y * 100))
ax.set_xscale("log"); ax.set_xlabel("mean generated tokens"); ax.set_ylabel("accuracy %")
buf = io.StringIO(); fig.savefig(buf, format="svg")
print(t1 - t0, time.perf_counter() - t1, len(buf.getvalue()), matplotlib.__version__)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vega-dir")
    args = ap.parse_args()
    t0 = time.perf_counter()
    svg = accuracy_tokens_svg([Point(*p) for p in POINTS])
    hand = {"render_ms": round(1000 * (time.perf_counter() - t0), 2), "bytes": len(svg), "import_s": 0.0}
    p = subprocess.run([sys.executable, "-c", f"POINTS = {POINTS!r}\n{MPL}"], capture_output=True, text=True)
    mpl = None
    if p.returncode == 0:
        imp, render_s, size, ver = p.stdout.split()
        mpl = {"import_s": round(float(imp), 2), "render_ms": round(1000 * float(render_s), 1), "bytes": int(size),
               "version": ver}
    vega = None
    if args.vega_dir:
        files = sorted(Path(args.vega_dir).glob("*/build/vega*.min.js"))
        files = [f for f in files if f.name in ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")]
        vega = {"files": {f.parent.parent.name + "/" + f.name: f.stat().st_size for f in files},
                "bytes": sum(f.stat().st_size for f in files)}
    res = {"hand_written": hand, "matplotlib": mpl, "vega_lite_js": vega}
    md = render(res)
    write_result("plot_choice", res, md)
    print(md)


def render(res: dict) -> str:
    """The markdown of a result (also used to re-render a committed result from its JSON)."""
    hand, mpl, vega = res["hand_written"], res["matplotlib"], res["vega_lite_js"]
    rows = [["hand-written SVG (s2distill.svgplot)", "none", f"{hand['render_ms']:.2f} ms", f"{hand['bytes'] / 1024:.1f} KiB"]]
    rows.append([f"matplotlib {mpl['version']} SVG", f"{mpl['import_s']:.2f} s import", f"{mpl['render_ms']:.0f} ms",
                 f"{mpl['bytes'] / 1024:.1f} KiB"] if mpl else ["matplotlib", "not installed", "-", "-"])
    if vega:
        rows.append(["Vega-Lite (" + ", ".join(vega["files"]) + ")", "-", "in the browser",
                     f"{vega['bytes'] / 1024:.0f} KiB of script per page"])
    return ("# Plotting library for the HTML report\n\nThe report's accuracy-vs-tokens plot (4 systems, 95% error bars, "
            "log-scaled tokens) made three ways (Vega-Lite: the minified scripts a page would have to inline, from "
            "`npm pack vega@5 vega-lite@5 vega-embed@6`).\n\n" +
            Table(["library", "extra start-up", "render", "page weight"], rows, align="lllr").markdown() +
            "\n\nChosen: hand-written inline SVG: no dependency (import s2distill stays light), nothing to fetch or "
            "inline, a tenth of matplotlib's SVG and no second of import per report.")


if __name__ == "__main__":
    main()
