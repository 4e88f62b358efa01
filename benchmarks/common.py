"""Shared helpers for benchmark scripts: machine facts and result writing."""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from s2distill.tables import Table, ci, pct  # noqa: F401 - the one table formatter, re-exported for the scripts

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem, 1), "platform": platform.platform(),
            "python": sys.version.split()[0], "gpu": gpu()}


def gpu() -> str | None:
    """The CUDA device torch sees (name, memory), or None. torch is imported only when it is loaded
    already or the machine has an NVIDIA driver (a CPU-only machine never pays for the import)."""
    if "torch" not in sys.modules:
        import importlib.util

        if not (os.path.exists("/proc/driver/nvidia/gpus") or os.path.exists("/dev/nvidia0")) \
                or importlib.util.find_spec("torch") is None:
            return None
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        p = torch.cuda.get_device_properties(0)
        n = torch.cuda.device_count()
        return f"{n} x {p.name} ({p.total_memory / 2**30:.0f} GiB)" if n > 1 else f"{p.name} ({p.total_memory / 2**30:.0f} GiB)"
    except Exception:  # noqa: BLE001 - a broken CUDA setup is reported as no GPU
        return None


def git_rev() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except Exception:
        return "unknown"


def portable(obj):
    """``obj`` with this machine's absolute paths made portable: paths inside the repository become
    relative to it, paths in the ``shared`` folder beside it start with ``../shared``, paths under the home
    directory start with ``~``, so committed results name no machine."""
    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v) for v in obj]
    if isinstance(obj, str) and "=/" in obj and not obj.startswith("/"):  # a key=value override naming a path
        key, _, value = obj.partition("=")
        return f"{key}={portable(value)}"
    if isinstance(obj, str) and obj.startswith("/"):
        repo, home = str(RESULTS.parent.parent.resolve()), str(Path.home())
        shared = str(RESULTS.parent.parent.resolve().parent / "shared")
        if obj == repo or obj.startswith(repo + "/"):
            return obj[len(repo) + 1:] or "."
        if obj == shared or obj.startswith(shared + "/"):
            return "../shared" + obj[len(shared):]
        if obj.startswith(home + "/"):
            return "~" + obj[len(home):]
    return obj


def write_result(name: str, data: dict, markdown: str, figure: str = "", results: Path | None = None,
                 also: Path | None = None) -> None:
    """``results/NAME.json``, ``NAME.md`` (the markdown plus command and machine lines) and ``NAME.html``
    (the same markdown as a page, with ``figure``, e.g. an accuracy-vs-tokens SVG); the same files also
    into ``also`` when given."""
    data = portable(data)
    data = {**data, "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(),
            "git": git_rev(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    md = markdown + footer(data)
    for d in [results or RESULTS] + ([Path(also)] if also else []):
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
        (d / f"{name}.md").write_text(md)
        write_html(name, md, figure, d)


def footer(data: dict) -> str:
    """What follows a result's rendered markdown in NAME.md, all from its JSON: the command and machine
    lines, then the notes a person added after the run (``notes_added_after_the_run``: added to the JSON,
    so that ``render_results.py --check`` checks them too)."""
    m = data["machine"]
    out = (f"\n\nCommand: `{data['command']}` (git {data['git']}, {data['date']})\n"
           f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, {m.get('gpu') or 'no GPU'}, {m['platform']}\n")
    if data.get("notes_added_after_the_run"):
        out += "\nNotes:\n\n" + "".join(f"- {n}\n" for n in data["notes_added_after_the_run"])
    return out


def html_page(name: str, md: str, figure: str = "") -> str:
    """NAME.html: the markdown as a page, with ``figure`` (e.g. an accuracy-vs-tokens SVG)."""
    from s2distill.mdpage import markdown_page

    title = next((line.lstrip("# ").strip() for line in md.splitlines() if line.startswith("#")), name)
    return markdown_page(md, title, figure)


def write_html(name: str, md: str, figure: str = "", results: Path | None = None) -> Path:
    out = (results or RESULTS) / f"{name}.html"
    out.write_text(html_page(name, md, figure))
    return out


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
    """Start pipeline ``dst`` with ``src``'s samples: identical requests are answered from the cache."""
    import shutil

    s, d = src.rd / "cache" / "samples.jsonl", dst.rd / "cache" / "samples.jsonl"
    if s.exists() and not d.exists():
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(s, d)


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
