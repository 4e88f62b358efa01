"""benchmarks/gpu_train.py: --smoke runs every code path (both trainers, QLoRA's error path, generation,
result writing) on a tiny model on the CPU; without a GPU and without --smoke it says so and exits 0."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_train.py"), *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cpu_without_smoke_says_so_and_exits_0(tmp_path: Path) -> None:
    r = _run("--out", str(tmp_path))
    assert r.returncode == 0 and "no CUDA GPU visible" in r.stdout
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


def test_smoke_mode_exercises_every_part(tiny_base: Path, tmp_path: Path) -> None:
    r = _run("--smoke", "--out", str(tmp_path), "--tokenizer", str(tiny_base))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "gpu_train.json").read_text())
    md = (tmp_path / "gpu_train.md").read_text()
    rows = {r["mode"]: r for r in res["rows"]}
    assert set(rows) == {"s2distill", "trl_bf16", "s2distill_qlora"}
    for mode in ("s2distill", "trl_bf16"):
        assert rows[mode]["s_per_step"] > 0 and rows[mode]["tokens_per_s"] > 0, rows[mode]
        assert rows[mode]["peak_gib"] is None  # no GPU memory on the CPU
    assert rows["s2distill"]["dtype"] == "float32" and rows["trl_bf16"]["dtype"] == "bfloat16"
    assert "quantization=4bit" in rows["s2distill_qlora"]["error"]  # bitsandbytes needs CUDA: recorded, run went on
    assert res["ratio_vs_trl_bf16"] == pytest.approx(rows["s2distill"]["s_per_step"] / rows["trl_bf16"]["s_per_step"],
                                                     rel=1e-2)
    gen = res["generate"]
    assert [g["device"] for g in gen] == ["cpu"] and gen[0]["tokens"] > 0 and gen[0]["tokens_per_s"] > 0
    assert res["machine"]["gpu"] is None and res["command"].endswith(f"--tokenizer {tiny_base}")
    assert "| tiny | 2 | s2distill |" in md and "generation on the GPU not measured" in md
    assert not (ROOT / "benchmarks" / "results" / "gpu_train.json").exists() or \
        not json.loads((ROOT / "benchmarks" / "results" / "gpu_train.json").read_text()).get("smoke")
