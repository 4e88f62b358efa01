"""The Task contract: what every task defines, and the optional hooks and what each enables.

A task is a class registered in ``s2distill.tasks.TASKS`` (a built-in name, a plug-in's name, or
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
``normalize(answer)`` and ``score(prediction, gold)``. A task whose answers are one of the shared formats
(number, yes/no, a letter, short text, a regex, exact; ``tasks/answers.py``) subclasses :class:`Formatted`
with ``answer_format = answer_format("number")``: hint, instruction, extraction and normalisation come from it.

Optional abilities are small mixins below; a task lists the ones it has among its bases
(``class MyTask(Task, FewShot)``) and the consumers test them with ``isinstance``; without one, the
feature that needs it says so in a clear error:

* :class:`FewShot` ``exemplars(k) -> [(question, worked_answer)]``: few-shot CoT/RaR
  (``method.few_shot=k``); the worked answer ends with "The answer is X."; exemplars never come from
  train or eval. :class:`RephraseFewShot` adds ``rephrase_exemplar(question) -> str`` (few-shot RaR).
* :class:`Perturbable` ``perturb(ex, i) -> Example`` with ``n_perturbations`` (and
  ``unperturb_answer(answer, i)`` when a variant changes the answer): input-perturbation curation and
  ``eval.rewordings``.
* :class:`Pairwise` ``pair_text(ex) -> str``, a perturbable task whose one perturbation swaps the pair: a
  pairwise judge task (BSM, swap consistency, ``eval.both_orders``).
* :class:`Sycophancy` ``sycophantic(prediction, ex) -> bool | None``: a sycophancy column in the report.
  (``Example.meta["group"]`` needs no mixin: eval accuracy is also reported per group.)
* :class:`LocalData` ``remote_source() -> str | None``: None when ``load`` reads local files or generates
  items: then ``s2distill validate`` loads both splits (and the few-shot exemplars) before any engine
  starts, so bad data fails there with the run's own message; an HF dataset's name: validate does not
  fetch it. ``check_files()``: files ``load`` leaves for later, read by validate. Without the mixin
  validate reads no data.
* :class:`FileInputs` ``load_file(path) -> list[Example]``: ``s2distill eval --data FILE`` reads FILE in
  the task's own format (else Example JSONL).
* :class:`SourceFingerprint` ``source_fingerprint() -> dict``: what the data stage's fingerprint adds (e.g.
  a file's content hash), so a changed source reruns the run.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from ..types import Example, Message


class Task(ABC):
    """The contract every task meets (the registry refuses a task class that does not subclass it)."""

    Options: ClassVar[Any] = None  # required: a dataclass of the task's task.options (checked strictly)
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


class Formatted(Task):
    """A task whose answers are one shared :class:`~s2distill.tasks.answers.AnswerFormat` (number, yes/no, a
    letter, short text, ...): the hint, the System 1 instruction, the extraction and the normalisation come
    from ``answer_format`` instead of being restated per task (a subclass may still set or override any one)."""

    answer_format: ClassVar[Any] = None  # required here: answers.answer_format("number"), ...

    @property
    def answer_kind(self) -> str:  # type: ignore[override]
        return self.answer_format.name

    @property
    def answer_hint(self) -> str:  # type: ignore[override]
        return self.answer_format.hint

    @property
    def direct_instruction(self) -> str:  # type: ignore[override]
        return self.answer_format.instruction

    def extract(self, text: str) -> str | None:
        return self.answer_format.extract(text)

    def normalize(self, answer: str) -> str | None:
        return self.answer_format.normalize(answer)

    def score(self, prediction: str | None, gold: str | None) -> bool:
        if self.answer_format.aliases:  # gold holds tab-separated aliases; any one matches
            return self.answer_format.score(prediction, gold)
        return super().score(prediction, gold)


# -- optional abilities: mixins that consumers test with isinstance -----------------------------------------

class FewShot(ABC):
    """Worked exemplars for few-shot System 2 prompts (``method.few_shot``)."""

    @abstractmethod
    def exemplars(self, k: int) -> list[tuple[str, str]]:
        """``k`` (question, worked answer ending in "The answer is X.") pairs, never from train or eval."""


class RephraseFewShot(FewShot):
    """Few-shot Rephrase-and-Respond: each exemplar question also has a rephrasing."""

    @abstractmethod
    def rephrase_exemplar(self, question: str) -> str:
        """The rephrasing of exemplar ``question``."""


class Perturbable(ABC):
    """Meaning-preserving variants of an input (input-perturbation curation, ``eval.rewordings``)."""

    n_perturbations: int = 0

    @abstractmethod
    def perturb(self, ex: Example, i: int) -> Example:
        """Variant ``i`` (0 <= i < n_perturbations) of ``ex``."""

    def unperturb_answer(self, answer: str | None, i: int = 0) -> str | None:
        """An answer to variant ``i`` mapped back to the original input (the identity unless a variant changes
        the answer, e.g. a verdict on swapped responses)."""
        return answer


class Pairwise(Perturbable):
    """A pairwise judge task: a question and two responses; its one perturbation swaps them."""

    @abstractmethod
    def pair_text(self, ex: Example) -> str:
        """The question and both responses, as a judge reads them."""


class Sycophancy(ABC):
    """Inputs that push an opinion: the report gains a sycophancy rate."""

    @abstractmethod
    def sycophantic(self, prediction: str | None, ex: Example) -> bool | None:
        """Whether ``prediction`` follows the input's pushed opinion (None: not applicable)."""


class LocalData(ABC):
    """``s2distill validate`` may read the task's data before any engine starts."""

    @abstractmethod
    def remote_source(self) -> str | None:
        """None when ``load`` reads local files or generates items; an HF dataset's name otherwise."""

    def check_files(self) -> None:
        """Read the files ``load`` leaves for later (e.g. exemplars), raising as the run would."""


class FileInputs(ABC):
    """``s2distill eval --data FILE`` reads FILE in the task's own format."""

    @abstractmethod
    def load_file(self, path: str | Path) -> list[Example]:
        """The examples of ``path`` (gold where the file has it)."""


class SourceFingerprint(ABC):
    """The data stage's fingerprint includes the task's source (e.g. a file's content hash)."""

    @abstractmethod
    def source_fingerprint(self) -> dict:
        """What identifies the task's data source."""
