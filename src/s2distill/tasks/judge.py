"""Pairwise LLM-as-judge: a question and two responses; which is better (A, B or tie)?

Sources (``task.options.source``):

* ``gsm8k_pairs``: offline, known answers. A GSM8K reference solution against the same
  solution with one corrupted number (a middle step and everything after it, or the final
  answer); the reference is better. ``path``: the GSM8K directory or .jsonl file.
* ``mt_bench_human``: MT-bench human expert judgments (HF ``lmsys/mt_bench_human_judgments``
  or a local JSON/JSONL file in that format: question_id, model_a, model_b, winner,
  conversation_a, conversation_b, turn).
* ``oasst2``: pairs of differently ranked assistant replies to the same prompt (HF
  ``OpenAssistant/oasst2`` or a local JSONL of its message rows: message_id, parent_id, role,
  text, rank, lang).
* ``pairs``: a local JSONL of {question, response_a, response_b, label (A|B|tie)} — for
  example the embedded model's own answers written by ``scripts`` or by hand.

Every example can be swapped (``perturb(example, 0)``: responses exchanged, label mapped),
which is how both-order evaluation and the ``swap_consistency`` curator work.
"""
from __future__ import annotations

import dataclasses
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataError
from ..types import Example, Message, stable_hash
from .base import LocalData, Pairwise, Task
from .common import hub_rows, read_jsonl_rows, resolve_source
from .splits import check_split, split_indices

VERDICTS = ("A", "B", "tie")
SWAP = {"A": "B", "B": "A", "tie": "tie"}
JUDGE_INTRO = ("Please act as an impartial judge and evaluate the two AI assistant responses to the user question "
               "below. Choose the response that answers the question better.")
DIRECT_INSTRUCTION = 'Answer with only "A", "B" or "tie".'


def render_pair(question: str, a: str, b: str) -> str:
    return (f"[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{a}\n[The End of Assistant A's "
            f"Answer]\n\n[The Start of Assistant B's Answer]\n{b}\n[The End of Assistant B's Answer]")


_VERDICT_PATTERNS = (
    re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE),  # MT-bench: [[A]], [[B]], [[C]] = tie
    re.compile(r"(?:verdict|answer|winner|better(?: response)?)\s*(?:is|:)?\s*[*\"'(\[]*\s*"
               r"(?:assistant|response)?\s*(A|B|tie)\b", re.IGNORECASE),
    re.compile(r"^\W*(?:assistant|response)?\s*(A|B|tie)\b\W*$", re.IGNORECASE),
)


def extract_verdict(text: str) -> str | None:
    """'A', 'B' or 'tie' from a judge's text: [[A]] / 'verdict: B' / a bare 'tie'; None if absent."""
    if not text:
        return None
    for pat in _VERDICT_PATTERNS:
        hits = pat.findall(text.strip())
        if hits:
            v = hits[-1].strip()
            return "tie" if v.lower() in ("tie", "c") else v.upper()
    if re.search(r"\b(tie|equally good|both (?:are )?equal)\b", text, re.IGNORECASE):
        return "tie"
    return None


@dataclass(frozen=True)
class JudgeOptions:
    source: str = "gsm8k_pairs"  # gsm8k_pairs | mt_bench_human | oasst2 | pairs
    path: str | None = None  # local file/dir; for mt_bench_human / oasst2 an HF dataset id also works
    max_chars: int = 1500  # responses are cut to this many characters (context budget of small models)
    eval_fraction: float = 0.5  # share of the items held out for eval (fixed shuffle)
    keep_ties: bool = True  # keep items whose label is a tie


def _corrupt(solution: str, rng: random.Random) -> str | None:
    """The solution with one number changed; later lines that reuse it are left as they are."""
    body = re.sub(r"<<[^>]*>>", "", solution)
    lines = body.split("\n")
    # whole integers only (not part of a decimal such as 0.30), so exactly one number changes
    candidates = [(i, m) for i, line in enumerate(lines) for m in re.finditer(r"(?<![\d.,])\d+(?![\d.,]*\d)", line)]
    if not candidates:
        return None
    i, m = rng.choice(candidates)
    old = m.group(0)
    new = str(int(old) + rng.choice([-3, -2, -1, 1, 2, 3, 10]))
    if new == old or new.startswith("-"):
        new = str(int(old) + 7)
    line = lines[i]
    lines[i] = line[:m.start()] + new + line[m.end():]
    return "\n".join(lines)


class JudgeTask(Task, Pairwise, LocalData):
    name = "judge"
    Options = JudgeOptions
    answer_kind = "verdict"
    answer_hint = "<A, B or tie>"
    direct_instruction = DIRECT_INSTRUCTION
    n_perturbations = 1  # the swap

    def __init__(self, options: JudgeOptions | None = None):
        self.options = options or JudgeOptions()
        if self.options.source not in ("gsm8k_pairs", "mt_bench_human", "oasst2", "pairs"):
            raise ConfigError(f"task.options.source must be gsm8k_pairs, mt_bench_human, oasst2 or pairs; "
                              f"got '{self.options.source}'")
        if not 0 < self.options.eval_fraction < 1:
            raise ConfigError("task.options.eval_fraction must be in (0, 1)")

    # -- prompts ---------------------------------------------------------------------------
    def pair_text(self, ex: Example) -> str:
        m = self.options.max_chars
        return render_pair(ex.question, ex.meta["response_a"][:m], ex.meta["response_b"][:m])

    def system1_messages(self, ex: Example) -> list[Message]:
        return self.with_system([{"role": "user",
                                  "content": f"{JUDGE_INTRO}\n\n{self.pair_text(ex)}\n\n{self.direct_instruction}"}])

    def extract(self, text: str) -> str | None:
        return extract_verdict(text)

    def normalize(self, answer: str) -> str | None:
        return extract_verdict(answer)

    # -- swapping ----------------------------------------------------------------------------
    def perturb(self, ex: Example, i: int = 0) -> Example:
        """The same pair with the two responses exchanged (label mapped)."""
        if i != 0:
            raise ConfigError(f"judge tasks have one perturbation (the swap); got index {i}")
        meta = {**ex.meta, "response_a": ex.meta["response_b"], "response_b": ex.meta["response_a"],
                "swapped": not ex.meta.get("swapped", False)}
        return dataclasses.replace(ex, gold=SWAP.get(ex.gold) if ex.gold else None, meta=meta)

    def unperturb_answer(self, answer: str | None, i: int = 0) -> str | None:
        """A verdict on the swapped pair, in the original order."""
        return SWAP.get(answer) if answer is not None else None

    # -- data --------------------------------------------------------------------------------
    def load(self, split: str, n: int, seed: int = 0) -> list[Example]:
        check_split(split, "judge")
        items = {"gsm8k_pairs": self._gsm8k_pairs, "mt_bench_human": self._mt_bench,
                 "oasst2": self._oasst2, "pairs": self._pairs}[self.options.source]()
        if not self.options.keep_ties:
            items = [e for e in items if e.gold != "tie"]
        part = split_indices(split, n, scheme="fixed_shuffle", n_rows=len(items), eval_fraction=self.options.eval_fraction,
                             split_key=f"judge-{self.options.source}-split", order_key=f"judge-{split}-{seed}")
        return [dataclasses.replace(items[i], id=f"{split}-{items[i].id}") for i in part]

    def remote_source(self) -> str | None:
        """The HF dataset of source mt_bench_human / oasst2 (None for a local ``path`` file): gsm8k_pairs and
        pairs read local files only."""
        if self.options.source in ("gsm8k_pairs", "pairs"):
            return None
        src = self._source()
        if isinstance(src, Path):
            return None
        return src or {"mt_bench_human": "lmsys/mt_bench_human_judgments", "oasst2": "OpenAssistant/oasst2"}[
            self.options.source]

    def _need_path(self, what: str) -> Path:
        if not self.options.path:
            raise ConfigError(f"task.options.path is required for source {self.options.source} ({what})")
        p = Path(self.options.path).expanduser()
        if not p.exists():
            raise DataError(f"task.options.path not found: {p}")
        return p

    def _gsm8k_pairs(self) -> list[Example]:
        p = self._need_path("the GSM8K directory with test.jsonl, or a .jsonl file")
        f = p / "test.jsonl" if p.is_dir() else p
        out = []
        for i, row in enumerate(read_jsonl_rows(f, ("question", "answer"))):
            rng = random.Random(f"gsm8k_pairs-{i}")
            ref = re.sub(r"<<[^>]*>>", "", row["answer"]).replace("####", "The answer is")
            bad = _corrupt(row["answer"], rng)
            if bad is None:
                continue
            bad = bad.replace("####", "The answer is")
            a_first = rng.random() < 0.5  # balanced: the reference is A half of the time
            a, b = (ref, bad) if a_first else (bad, ref)
            out.append(Example(id=str(i), question=row["question"], gold="A" if a_first else "B",
                               meta={"response_a": a, "response_b": b, "source": "gsm8k_pairs"}))
        return out

    def _source(self) -> Path | str | None:
        return self.options.path and resolve_source(self.options.path, option="task.options.path",
                                                     not_found="task.options.path not found: {path}")

    def _rows(self, hf_split: str) -> list[dict]:
        src = self._source()
        if isinstance(src, Path):
            if src.suffix == ".json":
                data = json.loads(src.read_text(encoding="utf-8"))
                return data if isinstance(data, list) else data.get(hf_split) or data.get("data") or []
            return read_jsonl_rows(src, ())
        hf_id = src or {"mt_bench_human": "lmsys/mt_bench_human_judgments",
                        "oasst2": "OpenAssistant/oasst2"}[self.options.source]
        return hub_rows(hf_id, hf_split, offline_fix="set task.options.path to a local file in the same format")

    def _mt_bench(self) -> list[Example]:
        out = []
        for i, r in enumerate(self._rows("human")):
            try:
                conv_a, conv_b, turn = r["conversation_a"], r["conversation_b"], int(r.get("turn", 1))
                winner = {"model_a": "A", "model_b": "B", "tie": "tie"}.get(str(r["winner"]).split(" ")[0])
            except (KeyError, TypeError, ValueError) as e:
                raise DataError(f"MT-bench judgment row {i}: missing or bad field ({e}); expected question_id, "
                                "model_a, model_b, winner, conversation_a, conversation_b, turn") from None
            if winner is None:
                raise DataError(f"MT-bench judgment row {i}: winner must be model_a, model_b or tie, "
                                f"got {r['winner']!r}")
            users = [m["content"] for m in conv_a if m["role"] == "user"]
            a = [m["content"] for m in conv_a if m["role"] == "assistant"]
            b = [m["content"] for m in conv_b if m["role"] == "assistant"]
            if len(users) < turn or len(a) < turn or len(b) < turn:
                raise DataError(f"MT-bench judgment row {i}: conversation shorter than turn {turn}")
            q = users[0] if turn == 1 else (f"{users[0]}\n\n[Assistant's first answer]\n{a[0][:500]}\n\n"
                                            f"[Follow-up question]\n{users[turn - 1]}")
            out.append(Example(id=f"{r.get('question_id', i)}-{i}", question=q, gold=winner,
                               meta={"response_a": a[turn - 1], "response_b": b[turn - 1], "turn": turn,
                                     "models": [r.get("model_a"), r.get("model_b")], "judge": r.get("judge")}))
        return out

    def _oasst2(self) -> list[Example]:
        rows = self._rows("validation")
        by_id = {r["message_id"]: r for r in rows}
        replies: dict[str, list[dict]] = {}
        for r in rows:
            if r.get("role") == "assistant" and r.get("rank") is not None and r.get("parent_id") in by_id:
                replies.setdefault(r["parent_id"], []).append(r)
        out = []
        for pid, rs in sorted(replies.items()):
            rs = sorted(rs, key=lambda r: r["rank"])
            if len(rs) < 2 or rs[0]["rank"] == rs[-1]["rank"]:
                continue
            best, worst = rs[0], rs[-1]  # rank 0 is the best reply
            rng = random.Random(f"oasst2-{pid}")
            a_first = rng.random() < 0.5
            a, b = (best, worst) if a_first else (worst, best)
            out.append(Example(id=stable_hash(pid, 12), question=by_id[pid]["text"], gold="A" if a_first else "B",
                               meta={"response_a": a["text"], "response_b": b["text"], "lang": by_id[pid].get("lang")}))
        return out

    def _pairs(self) -> list[Example]:
        p = self._need_path("a JSONL of {question, response_a, response_b, label}")
        out = []
        for i, r in enumerate(read_jsonl_rows(p, ("question", "response_a", "response_b"))):
            label = r.get("label")
            if label is not None and label not in VERDICTS:
                raise DataError(f"{p} line {i + 1}: label must be A, B or tie, got {label!r}")
            out.append(Example(id=str(r.get("id", i)), question=r["question"], gold=label,
                               meta={"response_a": r["response_a"], "response_b": r["response_b"]}))
        return out
