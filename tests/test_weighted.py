"""Soft targets (curate.weighting=vote_share): the curator keeps low-agreement inputs at their vote share,
the trainer scales each pair's loss by it; with every weight 1 the loss is the trainer's own."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2distill.config import load_config
from s2distill.curate import SelfConsistency
from s2distill.errors import ConfigError, DataError
from s2distill.tasks.arithmetic import ArithmeticTask
from s2distill.types import Call, Completion, Example, Sample, Trace, TrainPair
from s2distill.train.weighted import pair_weights

ROOT = Path(__file__).resolve().parents[1]


def trace(eid, answers):
    return Trace(eid, "cot", tuple(Sample(f"The answer is {a}", a, (Call("reason", (), Completion("x", 5)),))
                                   for a in answers))


def test_vote_share_keeps_low_agreement_inputs_at_their_share():
    task = ArithmeticTask()
    exs = [Example(str(i), f"q{i}") for i in range(4)]
    traces = [trace("0", ["4", "4", "4", "4"]), trace("1", ["4", "9", "9", "1"]), trace("2", ["1", "2", None, None]),
              trace("3", [None] * 4)]
    hard, hard_rej = SelfConsistency(min_agreement=0.75)(task, exs, traces)
    soft, soft_rej = SelfConsistency(min_agreement=0.75, weighting="vote_share")(task, exs, traces)
    assert [p.example_id for p in hard] == ["0"] and "weight" not in hard[0].meta
    assert {r.example_id: r.reason for r in hard_rej}["1"] == "low_agreement"
    assert [(p.example_id, p.target, p.meta["weight"]) for p in soft] == [("0", "4", 1.0), ("1", "9", 0.5)]
    assert {r.example_id: r.reason for r in soft_rej} == {"2": "tie", "3": "no_parseable_answer"}
    assert pair_weights(soft) == [1.0, 0.5] and pair_weights(hard) is None


def test_weights_outside_the_unit_interval_are_refused():
    bad = [TrainPair("a", ({"role": "user", "content": "q"},), "4", {"weight": 1.5})]
    with pytest.raises(DataError, match="re-run curate"):
        pair_weights(bad)


def test_config_names_the_fix():
    with pytest.raises(ConfigError, match="curate.weighting"):
        load_config(ROOT / "configs" / "demo.yaml", ["curate.weighting=soft"])
    with pytest.raises(ConfigError, match="self_consistency"):
        load_config(ROOT / "configs" / "demo.yaml", ["curate.weighting=vote_share", "curate.name=none"])
    cfg = load_config(ROOT / "configs" / "demo.yaml", ["curate.weighting=vote_share"])
    assert cfg.curate.weighting == "vote_share"


def _rows(tok, pairs):
    from s2distill.train import to_prompt_completion
    from s2distill.train.rows import tokenize_rows

    rows, _ = tokenize_rows(tok, to_prompt_completion(pairs), [p.example_id for p in pairs], 256)
    return rows


def _batch(rows):
    import torch

    n = max(len(r["input_ids"]) for r in rows)
    ids = torch.tensor([r["input_ids"] + [0] * (n - len(r["input_ids"])) for r in rows])
    att = torch.tensor([[1] * len(r["input_ids"]) + [0] * (n - len(r["input_ids"])) for r in rows])
    labels = torch.tensor([[x if c else -100 for x, c in zip(r["input_ids"], r["completion_mask"])]
                           + [-100] * (n - len(r["input_ids"])) for r in rows])
    return ids, att, labels


def test_weighted_loss_is_the_models_loss_at_weight_one_and_drops_a_zero_weight_row(tiny_base: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from s2distill.train.weighted import weighted_loss

    tok = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    pairs = [TrainPair("a", ({"role": "user", "content": "What is 6 * 7?"},), "The answer is 42."),
             TrainPair("b", ({"role": "user", "content": "What is 2 + 2? Think."},), "The answer is 4, of course.")]
    ids, att, labels = _batch(_rows(tok, pairs))
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=att, labels=labels)
        ones = weighted_loss(out.logits, labels, torch.tensor([1.0, 1.0]))
        assert ones.item() == pytest.approx(out.loss.item(), rel=1e-5)
        only_a = weighted_loss(out.logits, labels, torch.tensor([1.0, 0.0]))
        ids_a, att_a, labels_a = _batch(_rows(tok, pairs[:1]))
        alone = model(input_ids=ids_a, attention_mask=att_a, labels=labels_a).loss
        n_a, n_all = (labels_a[:, 1:] != -100).sum().item(), (labels[:, 1:] != -100).sum().item()
        assert only_a.item() * n_all / n_a == pytest.approx(alone.item(), rel=1e-4)


def test_training_with_vote_share_weights_runs_and_records_them(tiny_base: Path, tmp_path: Path):
    from s2distill.train import TrainConfig, train_lora

    pairs = [TrainPair(f"p{i}", ({"role": "user", "content": f"What is {i} + {i}?"},), f"The answer is {2 * i}.",
                       {"weight": w}) for i, w in enumerate([1.0, 0.5, 0.75, 1.0])]
    cfg = TrainConfig(max_steps=2, per_device_batch_size=2, gradient_accumulation_steps=1, logging_steps=1,
                      learning_rate=1e-3)
    summary = train_lora(pairs, str(tiny_base), tmp_path / "model", cfg, progress=False)
    assert summary["weighted"] is True and summary["mean_weight"] == pytest.approx(0.8125)
    assert summary["steps"] == 2 and summary["examples_seen"] == 4
    losses = [json.loads(x)["loss"] for x in (tmp_path / "model" / "loss.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(x > 0 for x in losses)
    assert (tmp_path / "model" / "adapter" / "adapter_model.safetensors").is_file()
