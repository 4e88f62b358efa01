"""A finished fake-engine run with a cascade (for the cascade and serve tests): the distilled fake is right
on 3 of 4 inputs and sure of exactly those (answer probability 0.97 vs 0.30, as engine logprobs; sampled,
it repeats its answer where sure and alternates between the right and its wrong answer where not: vote
share 1.0 vs 0.5)."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

from fakes import arithmetic_oracle, noisy_responder

from s2distill.backends.fake import FakeBackend
from s2distill.types import Completion

ORACLE = arithmetic_oracle(n=400)


def sure_of(question: str) -> bool:
    return int(hashlib.sha256(question.encode()).hexdigest(), 16) % 4 != 0


def factory(delay_s: float = 0.0):
    def make(cfg, weights, trained):
        base = noisy_responder(ORACLE, delay_s=delay_s)
        if weights != "distilled":
            return FakeBackend(base, model_id=f"fake-{weights}")

        def distilled(req, j):
            text = req.messages[-1]["content"]
            q = next((q for q in ORACLE if q in text), None)
            if q is None:  # a question the oracle does not know: unsure, wrong
                return Completion(text="0", completion_tokens=2, token_logprobs=(math.log(0.2), 0.0))
            ans = ORACLE[q] if sure_of(q) else str(int(ORACLE[q]) + 1)
            if req.params.temperature > 0 and not sure_of(q) and ((req.params.seed or 0) + j) % 2 == 0:
                ans = ORACLE[q]
            return Completion(text=ans, completion_tokens=2,
                              token_logprobs=(math.log(0.97 if sure_of(q) else 0.30), 0.0))

        return FakeBackend(distilled, model_id="fake-distilled")

    return make


def stand_in_train(self):
    """A Pipeline.fit stand-in: the train stage finishes with a summary and no model."""
    from s2distill.rundir import write_json

    (self.rd / "model").mkdir(parents=True, exist_ok=True)
    write_json(self.rd / "model" / "train_summary.json", {"steps": 1, "stand_in": True})
    return ["model/train_summary.json"], {}


def make_run(run: Path, n_eval: int = 160, make=None, fallback: str = "greedy") -> dict:
    """Run the whole (fake) pipeline into ``run`` with a stand-in train stage; returns the report. ``make``:
    another backend factory (default: :func:`factory`)."""
    import s2distill.pipeline as pl
    from s2distill.config import load_config
    from s2distill.pipeline import Pipeline


    cfg = load_config(data={"name": "c", "backend": {"name": "fake"}, "task": {"n_train": 8, "n_eval": n_eval},
                            "method": {"n": 2}, "train": {"enabled": True},
                            "eval": {"systems": ["system1", "system2", "system2_maj", "distilled"], "k": 5,
                                     "cascade_fallback": fallback, "max_disagreement": 0.15}})
    orig = pl.Pipeline.fit
    pl.Pipeline.fit = stand_in_train
    try:
        return Pipeline(cfg, run_dir=run, backend_factory=make or factory(), log=lambda s: None, progress=False).run()
    finally:
        pl.Pipeline.fit = orig
