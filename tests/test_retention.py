"""Retention: System 1 on other tasks, base vs distilled (fake engines through a whole run), and the KL
between a base model and its LoRA adapter (a real tiny Qwen2 with the embedded model's tokenizer)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from cascade_run import make_run

from s2distill.retention import general_prompts, summary, verdict_note


def _other_oracle() -> dict[str, str]:
    from s2distill.config import TaskConfig
    from s2distill.tasks import make_task

    out = {}
    for name in ("last_letter", "coin_flip"):
        task = make_task(TaskConfig(name=name))
        out.update({e.question: e.gold for e in task.load("eval", 40, 0)})
    return out


def _factory():
    """Base: right on every other-task input; distilled: right on last letter, 'no' to every coin flip.
    On the run's own task: the arithmetic fakes of cascade_run."""
    from cascade_run import factory as arithmetic

    from s2distill.backends.fake import FakeBackend

    other = _other_oracle()
    inner = arithmetic()

    def make(cfg, weights, trained):
        b = inner(cfg, weights, trained)

        def respond(req, j):
            text = req.messages[-1]["content"]
            q = next((q for q in other if q in text), None)
            if q is None:
                return b.responder(req, j)
            return "no" if weights == "distilled" and "coin" in q.lower() else other[q]

        return FakeBackend(respond, model_id=b.model_id)

    return make


def test_a_run_reports_retention_and_the_verdict_names_the_drop(tmp_path) -> None:
    run = tmp_path / "run"
    report = make_run(run, n_eval=60, make=_factory())
    part = json.loads((run / "eval" / "retention.json").read_text())
    ll, cf = part["other_tasks"]["last_letter"], part["other_tasks"]["coin_flip"]
    assert ll == {"n": 40, "before": 1.0, "after": 1.0, "drop": 0.0}
    truth = _other_oracle()
    no_share = sum(g == "no" for q, g in truth.items() if "coin" in q.lower()) / 40
    assert cf["before"] == 1.0 and cf["after"] == pytest.approx(no_share) and cf["drop"] == pytest.approx(1 - no_share)
    assert "kl_unavailable" in part  # the stand-in training wrote no adapter
    assert report["retention"] == part
    v = report["verdict"]
    assert v["retention_note"].startswith("retention: System 1 accuracy on coin_flip fell") and v["retention_note"] in v["line"]
    md = (run / "report.md").read_text()
    assert "| coin_flip | 40 | 100.0 |" in md and "Retention (what distillation cost elsewhere)" in md
    html = (run / "report.html").read_text()
    assert '<section id="retention">' in html and "coin_flip" in html


def test_summary_and_note() -> None:
    part = {"other_tasks": {"a": {"n": 40, "before": 0.5, "after": 0.5, "drop": 0.0},
                            "b": {"n": 40, "before": 0.6, "after": 0.575, "drop": 0.025}}}
    s = summary(part, 0.02)
    assert s["worst_task"] == "b" and s["exceeded"]
    assert "b fell 2.5 points (60.0% -> 57.5%, n=40) > eval.max_retention_drop 2.0" in verdict_note(part, 0.02)
    assert verdict_note(part, 0.03) is None and summary(None, 0.02) is None


def test_general_prompts_are_about_a_hundred_distinct_instructions() -> None:
    p = general_prompts()
    assert len(p) == 100 == len(set(p)) and all(len(x) > 15 for x in p) and general_prompts(5) == p[:5]


def test_kl_is_zero_for_an_untouched_adapter_and_grows_with_the_change(tiny_base: Path, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from s2distill.retention import kl_divergence

    prompts = [[{"role": "user", "content": q}] for q in general_prompts(6)]

    def adapter(scale: float) -> Path:
        torch.manual_seed(1)
        m = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_base),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
        with torch.no_grad():
            for n, p in m.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, scale) if scale else p.zero_()
        out = tmp_path / f"adapter-{scale}"
        m.save_pretrained(out)
        return out

    zero = kl_divergence(str(tiny_base), adapter(0.0), {"g": prompts}, max_new_tokens=6)["g"]
    small = kl_divergence(str(tiny_base), adapter(0.05), {"g": prompts}, max_new_tokens=6)["g"]
    big = kl_divergence(str(tiny_base), adapter(0.5), {"g": prompts}, max_new_tokens=6)["g"]
    assert zero["prompts"] == 6 and 6 <= zero["tokens"] <= 36
    assert abs(zero["kl"]) < 1e-6 < small["kl"] < big["kl"]
