"""A real (fake-backend) pipeline run for the HTML report tests: every stage runs and writes its
files; System 2's responses carry markup that must come out escaped; training is replaced by a
stand-in that writes a loss log and summary in the format train.py writes (real training is
covered by test_train_real.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import arithmetic_oracle, factory, noisy_responder

from s2distill.backends.fake import FakeBackend
from s2distill.config import load_config
from s2distill.pipeline import Pipeline

EVIL = "</script><script>window.PWNED=1</script><b>bold</b> & "


def evil_factory(oracle):
    good = factory(oracle)

    def make(cfg, weights, trained):
        if weights == "distilled":
            return good(cfg, weights, trained)
        inner = noisy_responder(oracle)

        def respond(req, j):
            t = inner(req, j)
            return EVIL + t if "step by step" in req.messages[-1]["content"] else t

        return FakeBackend(respond, model_id=f"fake-{weights}")

    return make


def _fit(self):
    out = self.rd / "model"
    out.mkdir(parents=True, exist_ok=True)
    losses = [{"step": s, "loss": round(2.5 / s, 4), "lr": 3e-4, "epoch": s / 4, "elapsed_s": 0.5 * s} for s in range(1, 9)]
    (out / "loss.jsonl").write_text("".join(json.dumps(r) + "\n" for r in losses))
    (out / "train_summary.json").write_text(json.dumps({"steps": 8, "n_pairs": 11, "first_loss": 2.5, "final_loss": 0.3125,
                                                        "train_time_s": 4.0, "s_per_step": 0.5, "method": "lora",
                                                        "peak_rss_bytes": 3 * 2**30, "world_size": 1}))
    return ["model/train_summary.json"], {}


def make_run(run_dir: Path, **over) -> dict:
    data = {"name": "t", "backend": {"name": "fake"}, "task": {"n_train": 12, "n_eval": 8}, "method": {"n": 4},
            "train": {"enabled": True}, "eval": {"systems": ["system1", "system2", "system2_maj", "distilled"], "k": 3}}
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Pipeline, "fit", _fit)
        return Pipeline(load_config(data=data), run_dir=run_dir, backend_factory=evil_factory(arithmetic_oracle()),
                        log=lambda s: None, progress=False).run()
