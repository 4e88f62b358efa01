"""GSM8K: grade-school math word problems, from local JSONL or the HF hub."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataError
from ..types import Example
from .common import hub_rows, jsonl_objects, read_jsonl_rows, resolve_source  # noqa: F401 - jsonl_objects re-exported
from .base import FewShot, LocalData
from .numeric import NumericTask, normalize_number
from .splits import split_indices

_CALC = re.compile(r"<<[^>]*>>")
EXEMPLAR_ROWS = 8  # the first rows of the train split are few-shot exemplars, never train inputs


@dataclass(frozen=True)
class GSM8KOptions:
    # directory holding train.jsonl/test.jsonl, a .jsonl file, an HF dataset id (needs internet),
    # or a local copy of one (hub repo snapshot with README.md + parquet, or a save_to_disk directory)
    source: str = "openai/gsm8k"
    train_split: str = "train"
    eval_split: str = "test"
    hf_config: str = "main"


def gold_from_solution(solution: str) -> str | None:
    if "####" not in solution:
        return None
    return normalize_number(solution.rsplit("####", 1)[1])


class GSM8KTask(NumericTask, FewShot, LocalData):
    name = "gsm8k"
    Options = GSM8KOptions

    def __init__(self, options: GSM8KOptions | None = None):
        self.options = options or GSM8KOptions()
        self._cache: dict[str, list[dict]] = {}

    def _rows(self, split: str) -> list[dict]:
        if split in self._cache:
            return self._cache[split]
        src = self._source(split)
        rows = read_jsonl_rows(src, ("question", "answer")) if isinstance(src, Path) else self._hub_rows(split)
        for i, r in enumerate(rows):
            r.setdefault("_line", i + 1)
        self._cache[split] = rows
        return rows

    def remote_source(self) -> str | None:
        """The HF dataset ``source`` names (a hub id or a local copy of one); None for local JSONL files."""
        src = self._source(self.options.train_split)
        return src if isinstance(src, str) else None

    def _source(self, split: str) -> Path | str:
        return resolve_source(self.options.source, option="task.options.source", split_file=f"{split}.jsonl",
                              not_found="GSM8K file not found: {path}")

    def _hub_rows(self, split: str) -> list[dict]:
        return hub_rows(self.options.source, split, self.options.hf_config,
                        offline_fix="set task.options.source to a local directory with train.jsonl/test.jsonl")

    def load(self, split: str, n: int, seed: int = 0) -> list[Example]:
        name = {"train": self.options.train_split, "eval": self.options.eval_split}.get(split, split)
        rows = self._rows(name)
        reserved = EXEMPLAR_ROWS if name == self.options.train_split else 0  # the few-shot exemplars
        out = []
        for i in split_indices(split, n, scheme="source", n_rows=len(rows), skip=reserved,
                               order_key=f"gsm8k-{name}-{seed}"):
            r = rows[i]
            gold = gold_from_solution(r["answer"])
            if gold is None:
                raise DataError(f"{self.options.source} ({name}) row {r['_line']}: answer has no '#### <number>'")
            out.append(Example(id=f"{name}-{i}", question=r["question"].strip(), gold=gold))
        return out

    def exemplars(self, k: int) -> list[tuple[str, str]]:
        """The first k training problems with their reference solutions as worked examples."""
        if k > EXEMPLAR_ROWS:
            raise ConfigError(f"gsm8k supports up to {EXEMPLAR_ROWS} few-shot exemplars, got method.few_shot={k}")
        shots = []
        for r in self._rows(self.options.train_split)[:k]:
            body, _, ans = r["answer"].rpartition("####")
            reasoning = " ".join(_CALC.sub("", body).split())
            shots.append((r["question"].strip(), f"{reasoning} The answer is {normalize_number(ans)}."))
        return shots
