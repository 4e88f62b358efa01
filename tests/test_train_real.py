"""Real (no fakes) training runs with TRL + PEFT on a tiny randomly initialised Qwen2 that uses the real Qwen tokenizer.

The tokenizer comes from the embedded model, converted once to an HF directory in the cache
(~1 min the first time); the tests skip when the embedded model or the train extras are missing.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")

from s2distill.errors import ConfigError, DataError, ModelError  # noqa: E402
from s2distill.train import TrainConfig, train_lora  # noqa: E402
from s2distill.types import TrainPair  # noqa: E402


def _pairs(n: int = 4) -> list[TrainPair]:
    qs = [("What is 2 + 3?", "5"), ("What is 7 - 4?", "3"), ("What is 6 * 2?", "12"), ("What is 9 + 9?", "18"),
          ("What is 8 / 2?", "4"), ("What is 5 * 5?", "25")]
    return [TrainPair(example_id=str(i), messages=({"role": "user", "content": q},), target=f"The answer is {a}.")
            for i, (q, a) in enumerate(qs[:n])]


def test_lora_three_steps_writes_everything(tiny_base: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    cfg = TrainConfig(max_steps=3, per_device_batch_size=2, gradient_accumulation_steps=2, learning_rate=1e-3,
                      lora_r=4, lora_alpha=8, threads=2, save_merged=True)
    summary = train_lora(_pairs(), str(tiny_base), tmp_path, cfg, progress=False)

    losses = [json.loads(x) for x in (tmp_path / "loss.jsonl").read_text().splitlines()]
    assert [x["step"] for x in losses] == [1, 2, 3]
    assert all(set(x) >= {"step", "loss", "lr", "epoch", "elapsed_s"} for x in losses)
    assert all(x["loss"] > 0 for x in losses)
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    on_disk = json.loads((tmp_path / "train_summary.json").read_text())
    assert on_disk["steps"] == summary["steps"] == 3
    assert on_disk["n_pairs"] == 4 and on_disk["trainable_params"] > 0 and on_disk["peak_rss_bytes"] > 0
    assert on_disk["final_loss"] == losses[-1]["loss"]
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert (tmp_path / "merged" / "tokenizer_config.json").is_file()
    assert not (tmp_path / "trainer").exists()


def test_loss_is_on_the_answer_only(tiny_base: Path) -> None:
    """Prompt-completion data: TRL masks the prompt, so only completion tokens carry labels."""
    from transformers import AutoTokenizer

    from s2distill.train import to_prompt_completion

    row = to_prompt_completion(_pairs(1))[0]
    assert row["prompt"] == [{"role": "user", "content": "What is 2 + 3?"}]
    assert row["completion"] == [{"role": "assistant", "content": "The answer is 5."}]
    tok = AutoTokenizer.from_pretrained(tiny_base)
    full = tok.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
    assert full.rstrip().endswith("The answer is 5.<|im_end|>")


def test_lora_memorises_and_merged_matches_adapter(tiny_base: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = TrainConfig(max_steps=12, per_device_batch_size=4, gradient_accumulation_steps=1, learning_rate=1e-2,
                      lora_r=8, lora_alpha=16, seed=1, save_merged=True)
    train_lora(_pairs(4), str(tiny_base), tmp_path, cfg, progress=False)
    losses = [json.loads(x)["loss"] for x in (tmp_path / "loss.jsonl").read_text().splitlines()]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3, losses

    ids = torch.tensor([[1, 2, 3, 4, 5]])
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, peft(ids).logits, atol=1e-4)


def test_full_finetune_saves_merged_only(tiny_base: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(method="full", max_steps=2, per_device_batch_size=2, gradient_accumulation_steps=1,
                      learning_rate=1e-4)
    summary = train_lora(_pairs(2), str(tiny_base), tmp_path, cfg, progress=False)
    assert summary["steps"] == 2 and summary["adapter_dir"] is None
    assert (tmp_path / "merged" / "config.json").is_file()
    assert not (tmp_path / "adapter").exists()


def test_same_seed_same_losses(tiny_base: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(max_steps=2, per_device_batch_size=2, gradient_accumulation_steps=1, learning_rate=1e-3)
    a = train_lora(_pairs(), str(tiny_base), tmp_path / "a", cfg, progress=False)
    b = train_lora(_pairs(), str(tiny_base), tmp_path / "b", cfg, progress=False)
    assert a["final_loss"] == pytest.approx(b["final_loss"], rel=1e-5)
    assert not (tmp_path / "a" / "merged").exists()  # LoRA writes no merged model unless asked
    assert a["merged_dir"] is None


def test_config_and_data_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lora' or 'full"):
        TrainConfig(method="qlora")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown train option"):
        TrainConfig.from_json({"lr": 1e-4})
    assert TrainConfig.from_json(TrainConfig(target_modules=("q_proj",)).to_json()).target_modules == ("q_proj",)
    with pytest.raises(DataError, match="no train pairs"):
        train_lora([], "default", tmp_path, TrainConfig())
    bad = [TrainPair(example_id="x", messages=({"role": "user", "content": "q"},), target="  ")]
    with pytest.raises(DataError, match="empty target"):
        train_lora(bad, "default", tmp_path, TrainConfig())


def test_disk_full_while_saving_names_the_fix(tmp_path: Path) -> None:
    from s2distill.train.recipe import _disk_guard

    with pytest.raises(ModelError, match="disk full while writing .*merged.*GiB free.*save_merged"):
        with _disk_guard(tmp_path / "merged"):
            raise OSError(28, "No space left on device")
    with pytest.raises(ValueError, match="unrelated"):  # other errors pass through untouched
        with _disk_guard(tmp_path / "merged"):
            raise ValueError("unrelated")


def test_length_grouped_batches_compute_less_padding(tiny_base: Path, tmp_path: Path) -> None:
    """Rows of two very different lengths in batches of 2: grouped by length, the forward passes carry far less
    padding than in random order; the summary reports tokens per step and per second and the padding share."""
    pairs = [TrainPair(example_id=f"s{i}", messages=({"role": "user", "content": f"What is {i} + 1?"},), target=str(i + 1))
             for i in range(32)]
    pairs += [TrainPair(example_id=f"l{i}", messages=({"role": "user", "content": "lorem " * 60 + f"What is {i}?"},),
                        target=str(i)) for i in range(32)]
    share = {}
    for grouped in (False, True):
        cfg = TrainConfig(epochs=1, per_device_batch_size=2, gradient_accumulation_steps=1, lora_r=4, lora_alpha=8,
                          threads=2, group_by_length=grouped, max_length=256)
        s = train_lora(pairs, str(tiny_base), tmp_path / str(grouped), cfg, progress=False)
        assert s["steps"] == 32 and s["tokens_per_step"] == round(s["tokens_seen"] / 32, 1) and s["tokens_per_s"] > 0
        share[grouped] = s["padding_share"]
    # transformers groups within random "mega-batches" (here 8 steps' rows), so some mixed batches remain
    assert share[True] < share[False] / 2, share
