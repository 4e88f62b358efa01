"""Result files that name their machine: ``NAME.json`` (the data, the command, the machine facts, the git
revision, the date), ``NAME.md`` (the rendered markdown plus a footer made from the same JSON) and
``NAME.html`` (the markdown as a page, with a figure). Written by ``s2distill experiment`` and by the
benchmark scripts; ``benchmarks/render_results.py --check`` re-renders every committed one from its JSON.

Paths are made portable before they are written (:func:`portable`): a result names no machine.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["footer", "git_rev", "gpu", "html_page", "machine", "portable", "write_html", "write_result"]


def machine() -> dict:
    """CPU model, cores, memory, platform, Python and GPU of this machine."""
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
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except Exception:  # noqa: BLE001 - not a git checkout
        return "unknown"


def portable(obj, root: Path):
    """``obj`` with this machine's absolute paths made portable: paths inside ``root`` (the repository) become
    relative to it, paths in the ``shared`` folder beside it start with ``../shared``, paths under the home
    directory start with ``~``."""
    if isinstance(obj, dict):
        return {k: portable(v, root) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v, root) for v in obj]
    if isinstance(obj, str) and "=/" in obj and not obj.startswith("/"):  # a key=value override naming a path
        key, _, value = obj.partition("=")
        return f"{key}={portable(value, root)}"
    if isinstance(obj, str) and obj.startswith("/"):
        repo, home = str(Path(root).resolve()), str(Path.home())
        shared = str(Path(root).resolve().parent / "shared")
        if obj == repo or obj.startswith(repo + "/"):
            return obj[len(repo) + 1:] or "."
        if obj == shared or obj.startswith(shared + "/"):
            return "../shared" + obj[len(shared):]
        if obj.startswith(home + "/"):
            return "~" + obj[len(home):]
    return obj


def footer(data: dict) -> str:
    """What follows a result's rendered markdown in NAME.md, all from its JSON: the command and machine
    lines, then the notes a person added after the run (``notes_added_after_the_run``)."""
    m = data["machine"]
    out = (f"\n\nCommand: `{data['command']}` (git {data['git']}, {data['date']})\n"
           f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, {m.get('gpu') or 'no GPU'}, {m['platform']}\n")
    if data.get("notes_added_after_the_run"):
        out += "\nNotes:\n\n" + "".join(f"- {n}\n" for n in data["notes_added_after_the_run"])
    return out


def html_page(name: str, md: str, figure: str = "") -> str:
    """NAME.html: the markdown as a page, with ``figure`` (e.g. an accuracy-vs-tokens SVG)."""
    from .mdpage import markdown_page

    title = next((line.lstrip("# ").strip() for line in md.splitlines() if line.startswith("#")), name)
    return markdown_page(md, title, figure)


def write_html(name: str, md: str, figure: str, results: Path) -> Path:
    out = Path(results) / f"{name}.html"
    out.write_text(html_page(name, md, figure))
    return out


def write_result(name: str, data: dict, markdown: str, figure: str, results: Path, root: Path,
                 command: str | None = None) -> dict:
    """Write ``results/NAME.json``, ``NAME.md`` (``markdown`` + :func:`footer`) and ``NAME.html``; returns the
    JSON written. ``command``: the command line recorded (default: this process's)."""
    if command is None:  # `s2distill ...` (also as python -m s2distill.cli), else python and the script
        argv = portable(sys.argv, root)
        command = " ".join(["s2distill", *argv[1:]] if argv[0].endswith(("s2distill", "s2distill/cli.py"))
                           else [Path(sys.executable).name, *argv])
    data = {**portable(data, root), "command": command,
            "machine": machine(), "git": git_rev(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    md = markdown + footer(data)
    (results / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (results / f"{name}.md").write_text(md)
    write_html(name, md, figure, results)
    return data
