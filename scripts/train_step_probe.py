"""Measure a few real LoRA steps (fp32, CPU) on an embedded model: s/step and peak RSS.

    python scripts/train_step_probe.py qwen2.5-coder-1.5b --steps 3 [--checkpointing]

Rows look like a coin-flip distillation pair (about 90 prompt + 5 answer tokens); batch 2 x 4
accumulation (the train section's defaults). Prints one JSON line with the numbers.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from s2distill.train import TrainConfig, train_lora
from s2distill.types import TrainPair

Q = ("A coin is heads up. {a} flips the coin. {b} does not flip the coin. {c} flips the coin. {d} does not flip "
     "the coin. Is the coin still heads up? Answer with yes or no.")
NAMES = ["Ana", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ida", "Jo", "Kai", "Lu"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--checkpointing", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    pairs = [TrainPair(f"p{i}", ({"role": "user", "content": Q.format(a=NAMES[i % 12], b=NAMES[(i + 1) % 12],
                                                                   c=NAMES[(i + 2) % 12], d=NAMES[(i + 3) % 12])},),
                       "The answer is " + ("yes" if i % 2 else "no") + ".") for i in range(32)]
    cfg = TrainConfig(max_steps=a.steps, gradient_checkpointing=a.checkpointing, threads=a.threads, dtype="float32")
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        s = train_lora(pairs, a.model, Path(d), cfg, progress=False)
    print(json.dumps({"model": a.model, "steps": s["steps"], "rows_per_step": 8, "s_per_step": s["s_per_step"],
                      "s_per_step_after_first": s["s_per_step_after_first"], "load_s": s["load_time_s"],
                      "peak_rss_gib": round(s["peak_rss_bytes"] / 2**30, 2), "trainable_params": s["trainable_params"],
                      "gradient_checkpointing": a.checkpointing, "threads": s["threads"],
                      "wall_s": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
