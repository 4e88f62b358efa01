"""Tokenize prompt-completion rows for training under the max-length rule: the answer is never cut.

The ids are the ones TRL's SFTTrainer builds itself (chat template of the prompt with the
generation prompt, and of prompt + completion; the completion starts where the two diverge), so
rows that fit train exactly as before. A row longer than ``max_length`` loses tokens from the
*start of its prompt* (``too_long='truncate_prompt'``) or stops training with an error naming the
row and its token count (``too_long='error'``); a completion that alone does not fit is always an
error. TRL would otherwise keep the start and cut the answer away.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError


@dataclass
class TruncationReport:
    rows: int = 0
    truncated_rows: int = 0
    dropped_prompt_tokens: int = 0
    longest_row_tokens: int = 0
    examples: list[str] = field(default_factory=list)  # the first few truncated rows' ids

    def to_json(self) -> dict:
        return {"rows": self.rows, "truncated_rows": self.truncated_rows,
                "dropped_prompt_tokens": self.dropped_prompt_tokens, "longest_row_tokens": self.longest_row_tokens,
                "truncated_examples": self.examples}


def _ids(tok: Any, messages: list[dict], **kw: Any) -> list[int]:
    out = tok.apply_chat_template(messages, tokenize=True, return_dict=True, chat_template=None, tools=None, **kw)
    return list(out["input_ids"])


def tokenize_row(tok: Any, row: dict) -> tuple[list[int], int]:
    """(prompt + completion ids, prompt length) as TRL computes them for a conversational row."""
    prompt = _ids(tok, row["prompt"], add_generation_prompt=True)
    full = _ids(tok, row["prompt"] + row["completion"])
    n = 0
    for a, b in zip(prompt, full):
        if a != b:
            break
        n += 1
    return full, n


def tokenize_rows(tok: Any, rows: list[dict], row_ids: list[str], max_length: int | None,
                  too_long: str = "truncate_prompt") -> tuple[list[dict], TruncationReport]:
    """Rows with ``input_ids`` and ``completion_mask`` (TRL's pre-tokenized format), each at most ``max_length``."""
    rep = TruncationReport(rows=len(rows))
    out = []
    for row, rid in zip(rows, row_ids):
        ids, n_prompt = tokenize_row(tok, row)
        n_completion = len(ids) - n_prompt
        rep.longest_row_tokens = max(rep.longest_row_tokens, len(ids))
        if max_length is not None and len(ids) > max_length:
            if n_completion >= max_length:
                raise DataError(f"train pair {rid}: its answer alone is {n_completion} tokens (prompt {n_prompt}), "
                                f"train.max_length is {max_length}; the answer is never cut; fix: set "
                                f"train.max_length to at least {len(ids)}, or drop the pair from curate/pairs.jsonl")
            if too_long == "error":
                raise DataError(f"train pair {rid} is {len(ids)} tokens (prompt {n_prompt} + answer {n_completion}), "
                                f"over train.max_length={max_length}; fix: raise train.max_length to {len(ids)} or "
                                "set train.too_long=truncate_prompt (drops the start of long prompts)")
            cut = len(ids) - max_length
            ids, n_prompt = ids[cut:], n_prompt - cut
            rep.truncated_rows += 1
            rep.dropped_prompt_tokens += cut
            if len(rep.examples) < 5:
                rep.examples.append(rid)
        out.append({"input_ids": ids, "completion_mask": [0] * n_prompt + [1] * (len(ids) - n_prompt)})
    return out, rep
