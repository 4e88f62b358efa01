"""``s2distill compare RUN_DIR...``: one table and one accuracy-vs-tokens plot across runs, with a
column per config key whose value differs between the runs (e.g. task.options.depth)."""
from __future__ import annotations

from html import escape
from pathlib import Path

import yaml

from .html_report import page, plot_points
from .report import load_report
from .rundir import write_text
from .svgplot import accuracy_tokens_svg
from .tables import Table, ci, num, pct

IGNORED = ("name", "run_dir")  # differ between any two runs; the run column already names them


def flatten(d, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):  # an empty mapping adds no key
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _config(run_dir: Path) -> dict:
    p = run_dir / "config.yaml"
    return flatten(yaml.safe_load(p.read_text(encoding="utf-8")) or {}) if p.is_file() else {}


def _show(v) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(_show(x) for x in v)
    return "-" if v is None else str(v)


def varying_keys(configs: list[dict]) -> list[str]:
    keys = list(dict.fromkeys(k for c in configs for k in c))
    return [k for k in keys if k not in IGNORED and len({_show(c.get(k)) for c in configs}) > 1]


def run_labels(run_dirs: list[Path]) -> list[str]:
    names = [p.name for p in run_dirs]
    return names if len(set(names)) == len(names) else [str(p) for p in run_dirs]


def load_runs(run_dirs) -> tuple[list[Path], list[dict], list[dict], list[str]]:
    dirs = [Path(d) for d in run_dirs]
    reports = [load_report(d) for d in dirs]
    configs = [_config(d) for d in dirs]
    return dirs, reports, configs, varying_keys(configs)


def compare_table(run_dirs) -> Table:
    dirs, reports, configs, keys = load_runs(run_dirs)
    lf = any(r.get("label_free") for r in reports)
    headers = ["run", *keys, "system", "n", "accuracy %", "95% CI", "mean generated tokens"]
    if lf:
        headers.append("agreement with System 2 %")
    rows = []
    for label, rep, cfg in zip(run_labels(dirs), reports, configs):
        for r in rep.get("rows", []):
            row = [label, *(_show(cfg.get(k)) for k in keys), r["system"], str(r["n"]), pct(r.get("accuracy")),
                   ci(r.get("ci95")), num(r.get("mean_generated_tokens"))]
            if lf:
                row.append(pct(((rep.get("label_free") or {}).get(r.get("role")) or {}).get("agreement")))
            rows.append(row)
    return Table(headers, rows, align="l" * (len(keys) + 2) + "rrlr" + ("r" if lf else ""))


def compare_markdown(run_dirs) -> str:
    t = compare_table(run_dirs)
    return f"# s2distill compare: {len(run_dirs)} runs\n\n{t.markdown()}\n"


def compare_html(run_dirs) -> str:
    dirs, reports, _, keys = load_runs(run_dirs)
    pts = [p for label, rep in zip(run_labels(dirs), reports) for p in plot_points(rep, run_label=label)]
    title = f"s2distill compare: {len(dirs)} runs"
    varying = ", ".join(keys) or "none"
    table = compare_table(run_dirs).html('id="compare"')
    body = (f"<header><h1>{escape(title)}</h1><p class=\"note\">config keys that differ: {escape(varying)}</p></header>"
            f'<section id="summary"><h2>Accuracy against generated tokens</h2><div id="plot">{accuracy_tokens_svg(pts)}'
            f'</div>{table}</section>'
            "<section><h2>Runs</h2><ul>" + "".join(
                f"<li><code>{escape(str(d))}</code></li>" for d in dirs) + "</ul></section>")
    return page(title, body)


def write_compare_html(run_dirs, out) -> Path:
    out = Path(out)
    write_text(out, compare_html(run_dirs))
    return out
