"""What every task shares: the direct (System 1) prompt, the training target, scoring."""
from __future__ import annotations

from ..types import Example, Message


class Task:
    name = "task"
    answer_kind = "text"
    answer_hint = "<answer>"  # how System 2 prompts ask for the final answer: "The answer is <hint>."
    direct_instruction = "Answer with only the final answer."

    def system1_messages(self, ex: Example) -> list[Message]:
        """The System 1 input: also the prompt the distilled model is trained on."""
        return [{"role": "user", "content": f"{ex.question}\n{self.direct_instruction}"}]

    def format_target(self, answer: str) -> str:
        """What the distilled model is trained to say: the bare answer."""
        return answer

    def normalize(self, answer: str) -> str | None:
        return answer.strip().lower() or None

    def score(self, prediction: str | None, gold: str | None) -> bool:
        if prediction is None or gold is None:
            return False
        p = self.normalize(prediction)
        return bool(p) and p == self.normalize(gold)
