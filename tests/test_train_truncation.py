"""The max-length rule: a long row loses the start of its prompt, never its answer (or is refused by name)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl")

from s2distill.errors import DataError  # noqa: E402
from s2distill.train import TrainConfig, to_prompt_completion, train_lora  # noqa: E402
from s2distill.train.rows import tokenize_rows  # noqa: E402
from s2distill.types import TrainPair  # noqa: E402


def _pair(i: int, words: int, answer: str = "The answer is 42.") -> TrainPair:
    q = " ".join(["lorem"] * words)
    return TrainPair(example_id=f"p{i}", messages=({"role": "user", "content": f"{q} What is 6 * 7?"},), target=answer)


def test_rows_that_fit_tokenize_exactly_as_trl(tiny_base: Path, tmp_path: Path) -> None:
    """Pre-tokenizing must not change what TRL trains on: same ids and the same completion mask."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    pairs = [_pair(0, 3), _pair(1, 20, "Seven."), _pair(2, 1, "A longer answer, with a comma and 12 digits.")]
    rows = to_prompt_completion(pairs)
    mine, rep = tokenize_rows(tok, rows, [p.example_id for p in pairs], 256)
    assert rep.truncated_rows == 0
    args = SFTConfig(output_dir=str(tmp_path), max_length=256, report_to=[], use_cpu=True, bf16=False)
    trl_ds = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_base), args=args, processing_class=tok,
                        train_dataset=Dataset.from_list(rows)).train_dataset
    for m, t in zip(mine, trl_ds):
        assert m["input_ids"] == t["input_ids"]
        assert [x if c else -100 for x, c in zip(m["input_ids"], m["completion_mask"])] == t["labels"]


def test_long_prompt_is_cut_from_the_left_answer_kept(tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    pairs = [_pair(0, 3), _pair(1, 200), _pair(2, 300)]
    rows = to_prompt_completion(pairs)
    full, _ = tokenize_rows(tok, rows, ["a", "b", "c"], None)
    out, rep = tokenize_rows(tok, rows, ["a", "b", "c"], 64)
    assert rep.truncated_rows == 2 and rep.examples == ["b", "c"] and rep.rows == 3
    assert rep.dropped_prompt_tokens == sum(len(r["input_ids"]) - 64 for r in full[1:])
    assert out[0] == full[0]  # the short row is untouched
    for o, f in zip(out[1:], full[1:]):
        assert len(o["input_ids"]) == 64
        n_answer = sum(f["completion_mask"])
        assert sum(o["completion_mask"]) == n_answer  # the whole answer stays
        assert o["input_ids"][-n_answer:] == f["input_ids"][-n_answer:]  # ... at the end, as it was
        assert o["input_ids"] == f["input_ids"][-64:]  # the prompt lost its start
    assert tok.decode(out[1]["input_ids"]).rstrip().endswith("The answer is 42.<|im_end|>")


def test_too_long_error_names_the_row_and_its_tokens(tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    rows = to_prompt_completion([_pair(0, 3), _pair(1, 200)])
    with pytest.raises(DataError, match=r"train pair q7 is \d+ tokens .*over train.max_length=64; fix: raise"):
        tokenize_rows(tok, rows, ["ok", "q7"], 64, too_long="error")
    long_answer = to_prompt_completion([_pair(0, 1, " ".join(["word"] * 100))])
    with pytest.raises(DataError, match=r"train pair z: its answer alone is \d+ tokens.*never cut; fix: set "
                                        r"train.max_length to at least \d+"):
        tokenize_rows(tok, long_answer, ["z"], 64)  # even in truncate mode: the answer is never cut


def test_training_reports_truncated_rows(tiny_base: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(max_steps=2, per_device_batch_size=2, gradient_accumulation_steps=1, max_length=64,
                      lora_r=4, lora_alpha=8)
    s = train_lora([_pair(0, 2), _pair(1, 100), _pair(2, 2), _pair(3, 60)], str(tiny_base), tmp_path, cfg,
                   progress=False)
    on_disk = json.loads((tmp_path / "train_summary.json").read_text())
    assert s["truncated_rows"] == on_disk["truncated_rows"] == 2 and on_disk["truncated_examples"] == ["p1", "p3"]
    assert on_disk["dropped_prompt_tokens"] > 0 and on_disk["longest_row_tokens"] > 64
    assert on_disk["dtype"] == "float32" and on_disk["device"] == "cpu"  # CPU: fp32 as before


def test_an_empty_system_turn_keeps_the_templates_default_system_prompt_out(tiny_base: Path) -> None:
    """The embedded model's real chat template adds "You are Qwen, created by Alibaba Cloud..." to a prompt
    without a system turn; the default ``task.system_prompt: ""`` keeps it out of every training row."""
    from transformers import AutoTokenizer

    from s2distill.config import load_config
    from s2distill.tasks import make_task
    from s2distill.train.rows import tokenize_row

    tok = AutoTokenizer.from_pretrained(tiny_base)
    lengths = {}
    for prompt in ("", None):
        task = make_task(load_config(data={"task": {"name": "arithmetic", "system_prompt": prompt}}).task)
        pair = TrainPair(example_id="x", messages=tuple(task.system1_messages(task.load("train", 1)[0])), target="7")
        ids, n_prompt = tokenize_row(tok, to_prompt_completion([pair])[0])
        assert ("You are Qwen" in tok.decode(ids)) is (prompt is None)
        assert tok.decode(ids[n_prompt:]).startswith("7")
        lengths[prompt] = len(ids)
    assert lengths[None] - lengths[""] >= 15, lengths  # what every row saves
