"""Shared helpers for benchmark scripts: machine facts and result writing."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

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


def write_result(name: str, data: dict, markdown: str, results: Path | None = None,
                 also: Path | None = None) -> None:
    """Write ``results/NAME.json`` and ``NAME.md`` (and the same two files into ``also``, when given)."""
    data = {**data, "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(),
            "git": git_rev(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    m = data["machine"]
    md = (markdown + f"\n\nCommand: `{data['command']}` (git {data['git']}, {data['date']})\n"
          f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, {m['gpu'] or 'no GPU'}, {m['platform']}\n")
    for d in [results or RESULTS] + ([Path(also)] if also else []):
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
        (d / f"{name}.md").write_text(md)


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


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def ci(c) -> str:
    return f"{pct(c[0])}-{pct(c[1])}" if c else "-"


def run_or_note(p, label: str, notes: list[str]) -> dict:
    """``p.run()``; when training cannot happen (e.g. curation kept nothing) note why and return the
    report of the stages that ran, so the undistilled rows still stand and no number is invented."""
    from s2distill.errors import ConfigError
    from s2distill.report import build_report

    try:
        return p.run()
    except ConfigError as e:
        notes.append(f"{label}: not trained ({e})")
        return build_report(p)
