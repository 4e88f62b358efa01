"""Training checkpoints under ``model/checkpoints/`` and resuming a killed run from the last complete one.

The Trainer writes ``checkpoint-N/`` every ``save_steps`` and prunes to ``save_total_limit``; a
callback marks a checkpoint complete only after the Trainer finished writing it, so a kill in the
middle of a save never resumes from half a checkpoint. ``run.json`` holds a key of everything that
decides the training (config, base model, rows, world size): checkpoints of a different run are
deleted instead of resumed. After a finished run the directory is removed.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

MARKER = "s2distill_complete"
_RESUME_IRRELEVANT = ("save_steps", "save_total_limit", "threads", "logging_steps")


def run_key(cfg_json: dict, base: str, rows: list[dict], world_size: int) -> str:
    h = hashlib.sha256()
    cfg = {k: v for k, v in cfg_json.items() if k not in _RESUME_IRRELEVANT}
    h.update(json.dumps({"cfg": cfg, "base": base, "world_size": world_size}, sort_keys=True).encode())
    for r in rows:
        h.update(json.dumps(r["input_ids"]).encode())
        h.update(json.dumps(r["completion_mask"]).encode())
    return h.hexdigest()[:16]


def save_steps_arg(save_steps: float | None) -> float | int:
    """TrainingArguments' save_steps: N optimizer steps, or a fraction (< 1) of the run; default 10%."""
    if save_steps is None:
        return 0.1
    return int(save_steps) if save_steps >= 1 else float(save_steps)


def _step(p: Path) -> int:
    m = re.fullmatch(r"checkpoint-(\d+)", p.name)
    return int(m.group(1)) if m else -1


def last_complete(ckpt_dir: Path) -> Path | None:
    done = [p for p in ckpt_dir.glob("checkpoint-*") if _step(p) >= 0 and (p / MARKER).is_file()]
    return max(done, key=_step) if done else None


def prepare(ckpt_dir: Path, key: str, is_main: bool) -> Path | None:
    """The checkpoint to resume from (or None); deletes stale runs' and incomplete checkpoints (main process)."""
    meta = ckpt_dir / "run.json"
    same = meta.is_file() and json.loads(meta.read_text()).get("key") == key
    if is_main:
        if not same and ckpt_dir.exists():
            shutil.rmtree(ckpt_dir)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"key": key}) + "\n")
    last = last_complete(ckpt_dir) if same else None
    if is_main:
        for p in ckpt_dir.glob("checkpoint-*"):
            if _step(p) >= 0 and not (p / MARKER).is_file() and (last is None or _step(p) > _step(last)):
                shutil.rmtree(p, ignore_errors=True)  # a save the kill interrupted
    return last


def marker_callback() -> Any:
    from transformers import TrainerCallback

    class CompleteMarker(TrainerCallback):
        """After the Trainer wrote (and pruned) checkpoint-N, mark it complete."""

        def on_save(self, args, state, control, **kw):  # noqa: ANN001
            if state.is_world_process_zero:
                d = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if d.is_dir():
                    (d / MARKER).write_text(json.dumps({"step": state.global_step}) + "\n")

    return CompleteMarker()
