"""The Task contract: what every task defines, and the optional hooks and what each enables.

A task is a class registered in ``s2distill.registry.TASKS`` (a built-in name, a plug-in's name, or
``task.name: my_pkg.tasks:MyTask``). The pipeline builds it as ``cls(cls.Options(**task.options))``.

Required (abstract below):

* ``Options``: a dataclass of the task's ``task.options`` (checked strictly: an unknown key is an
  error with a did-you-mean); a class attribute.
* ``load(split, n, seed) -> list[Example]``: ``split`` is ``"train"`` (unlabeled System 2 inputs;
  gold, if any, is stripped before curation) or ``"eval"`` (held out; ``gold`` used for scoring
  only); the same arguments must give the same examples, ids unique, the two splits disjoint.
* ``extract(text) -> str | None``: the answer in a model's response, in a canonical form (samples
  vote on it: equal answers must be equal strings); None when the text has none.

Given defaults, overridable: ``name``, ``answer_hint`` (System 2 prompts ask for "The answer is
<hint>."), ``direct_instruction`` (System 1), ``system1_messages(ex)`` (the System 1 prompt, also
the distilled model's training prompt; an override returns ``self.with_system([...])`` so the run's
``task.system_prompt`` leads it), ``format_target(answer)`` (the training target),
``normalize(answer)`` and ``score(prediction, gold)``.

Optional hooks (found with ``getattr``; leave them out and the feature says so in a clear error):

* ``exemplars(k) -> [(question, worked_answer)]``: few-shot CoT/RaR (``method.few_shot=k``);
  the worked answer ends with "The answer is X."; exemplars never come from train or eval.
* ``rephrase_exemplar(question) -> str``: few-shot RaR's exemplar rephrasing.
* ``perturb(ex, i) -> Example`` with ``n_perturbations`` (and ``unperturb_answer(answer, i)`` when
  a variant changes the answer): input-perturbation curation and ``eval.rewordings``.
* ``pair_text(ex) -> str``: a pairwise judge task (BSM, swap consistency, ``eval.both_orders``).
* ``Example.meta["group"]``: eval accuracy is also reported per group.
* ``sycophantic(prediction, ex) -> bool | None``: a sycophancy column in the report.
* ``remote_source() -> str | None``: None when ``load`` reads local files or generates items: then
  ``s2distill validate`` loads both splits (and the few-shot exemplars) before any engine starts, so bad
  data fails there with the run's own message; an HF dataset's name: validate does not fetch it. Without
  the hook validate reads no data. ``check_files()``: files ``load`` leaves for later, read by validate.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from ..types import Example, Message


class Task(ABC):
    name = "task"
    answer_kind = "text"
    answer_hint = "<answer>"  # how System 2 prompts ask for the final answer: "The answer is <hint>."
    direct_instruction = "Answer with only the final answer."
    # The system turn of System 1 prompts (set from the run's ``task.system_prompt``): None = none (the chat
    # template's default); "" = an empty one, so templates with a default system prompt do not add theirs.
    system_prompt: str | None = None

    @abstractmethod
    def load(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """``n`` examples of ``split`` ('train' or 'eval'; n < 0: all), deterministic in ``seed``."""

    @abstractmethod
    def extract(self, text: str) -> str | None:
        """The canonical answer in a model's response, or None."""

    def system1_messages(self, ex: Example) -> list[Message]:
        """The System 1 input: also the prompt the distilled model is trained on."""
        return self.with_system([{"role": "user", "content": f"{ex.question}\n{self.direct_instruction}"}])

    def with_system(self, messages: list[Message]) -> list[Message]:
        """``messages`` led by the System 1 system turn (``system_prompt``), unless they have one already."""
        if self.system_prompt is None or (messages and messages[0]["role"] == "system"):
            return messages
        return [{"role": "system", "content": self.system_prompt}, *messages]

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
