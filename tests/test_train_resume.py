"""kill -9 a real training process after a checkpoint, rerun it: it resumes from the last complete
checkpoint, repeats no step before it, and ends with the adapter an uninterrupted run writes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")

HERE = Path(__file__).resolve().parent


def _worker(base: Path, out: Path, slow: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]),
           "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, str(HERE / "train_kill_worker.py"), str(base), str(out), str(slow)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _complete(out: Path) -> list[int]:
    return sorted(int(p.parent.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*/s2distill_complete"))


def test_kill9_after_a_checkpoint_then_rerun_resumes_and_matches(tiny_base: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from resume_train_setup import CFG, pairs  # noqa: I001
    from s2distill.train import train_lora

    killed = tmp_path / "killed"
    proc = _worker(tiny_base, killed, slow=0.4)
    # no wall-clock deadline (a loaded machine only makes it slower): wait for checkpoint 8 or the worker's end;
    # a hung worker is stopped by the test's time limit (pytest-timeout)
    while proc.poll() is None and not [s for s in _complete(killed) if s >= 8]:
        time.sleep(0.1)
    assert proc.poll() is None, "the training finished (or died) before a checkpoint could be killed: " + \
        (proc.stdout.read() if proc.stdout else "")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    ckpts = _complete(killed)
    last = max(ckpts)
    assert last >= 8 and last < CFG.max_steps and len(ckpts) <= CFG.save_total_limit  # old ones pruned
    assert not (killed / "adapter").exists() and not (killed / "train_summary.json").exists()
    logged_before = [json.loads(x)["step"] for x in (killed / "loss.jsonl").read_text().splitlines() if x.strip()]
    assert max(logged_before) >= last

    rerun = _worker(tiny_base, killed, slow=0.0)
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out
    summary = json.loads((killed / "train_summary.json").read_text())
    assert summary["resumed_from_step"] == last and summary["steps"] == CFG.max_steps
    assert summary["optimizer_state_at_start"] > 0  # the checkpoint's Adam moments were restored before step 1
    # only the steps after the checkpoint ran again: rows seen by the rerun = remaining steps x batch
    assert summary["examples_seen"] == (CFG.max_steps - last) * CFG.per_device_batch_size
    steps = [json.loads(x)["step"] for x in (killed / "loss.jsonl").read_text().splitlines() if x.strip()]
    assert steps == list(range(1, CFG.max_steps + 1))  # each step logged once: no duplicate, no gap
    assert not (killed / "checkpoints").exists()  # a finished run leaves no checkpoints behind

    straight = tmp_path / "straight"
    ref = train_lora(pairs(), str(tiny_base), straight, CFG, progress=False)
    assert ref["resumed_from_step"] == 0 and ref["optimizer_state_at_start"] == 0  # a fresh optimizer
    a = load_file(killed / "adapter" / "adapter_model.safetensors")
    b = load_file(straight / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    loss_k = [json.loads(x)["loss"] for x in (killed / "loss.jsonl").read_text().splitlines()]
    loss_s = [json.loads(x)["loss"] for x in (straight / "loss.jsonl").read_text().splitlines()]
    assert loss_k == pytest.approx(loss_s, rel=1e-4)


def test_checkpoints_of_another_run_are_not_resumed(tiny_base: Path, tmp_path: Path) -> None:
    import dataclasses

    from resume_train_setup import CFG, pairs  # noqa: I001
    from s2distill.train import checkpoints
    from s2distill.train import train_lora

    stale = tmp_path / "checkpoints" / "checkpoint-4"
    stale.mkdir(parents=True)
    (stale / checkpoints.MARKER).write_text("{}")
    (tmp_path / "checkpoints" / "run.json").write_text(json.dumps({"key": "another-run"}))
    s = train_lora(pairs(), str(tiny_base), tmp_path, dataclasses.replace(CFG, max_steps=3), progress=False)
    assert s["resumed_from_step"] == 0 and s["steps"] == 3
    assert checkpoints.save_steps_arg(None) == 0.1 and checkpoints.save_steps_arg(5.0) == 5
    assert checkpoints.save_steps_arg(0.25) == 0.25
