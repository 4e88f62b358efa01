"""Curation without labels: turn System 2 traces into (System 1 input, answer) pairs.

Curators receive unlabeled examples (``gold`` is None) and traces only; the pipeline
strips gold answers before calling them. Every kept and rejected example is recorded
with its votes and the reason.
"""
from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError
from .registry import Registry
from .types import Example, GenRequest, Rejected, SamplingParams, Trace, TrainPair
from .voting import Vote, majority_vote, plurality_answer

__all__ = ["CURATORS", "build_curator", "curator_class", "curator_options", "Curator", "Expanding", "NoFilter", "SelfConsistency", "UniversalSelfConsistency", "Vote", "check_config",
           "majority_vote", "plurality_answer", "tally"]


class Curator(ABC):
    """The contract of a curator (registered in ``CURATORS`` below; the registry refuses a class that
    does not subclass this). It is built as ``cls(**curate_section, **options)`` (:func:`build_curator`): take the
    keys you use, ignore the rest (``**_``); your own keys come from ``curate.options``, parsed by your ``Options``
    dataclass (unknown keys fail with a did-you-mean; no ``Options``: the section must be empty). Called with the
    task, the *unlabeled* train examples and their System 2 traces, it returns the kept ``TrainPair``s and the
    ``Rejected`` inputs with a reason each."""

    name = "curator"
    needs_backend = False  # True: called with backend= (it asks the model); its fingerprint then includes the model
    Options: Any = None  # a dataclass of the curator's own options (``curate.options``), or None

    @abstractmethod
    def __call__(self, task: Any, examples: Sequence[Example], traces: Sequence[Trace],
                 **kw: Any) -> tuple[list[TrainPair], list[Rejected]]:
        """(pairs, rejects) over ``examples`` (gold stripped)."""


class Expanding(Curator):
    """A curator that also needs System 2 on input variants (input perturbation, swapped pairs): the generate
    stage runs the method on ``expand(task, examples)``."""

    @abstractmethod
    def expand(self, task: Any, examples: Sequence[Example]) -> list[Example]:
        """``examples`` and their variants."""


# the registered curators (plug-ins add theirs: ``CURATORS.register("mine", MyCurator)``)
CURATORS = Registry("curator", {
    "self_consistency": "s2distill.curate:SelfConsistency",
    "none": "s2distill.curate:NoFilter",
    "input_perturbation": "s2distill.perturb:InputPerturbation",
    "swap_consistency": "s2distill.perturb:SwapConsistency",
    "universal_self_consistency": "s2distill.curate:UniversalSelfConsistency",
})


def curator_class(name: str) -> type[Curator]:
    """The curator class registered as ``name``, refused unless it subclasses :class:`Curator`."""
    return CURATORS.subclass(name, Curator, "`class MyCurator(Curator)` with __call__(task, examples, traces) -> "
                                            "(pairs, rejects)")


def curator_options(cls: type[Curator], section: Any) -> dict:
    """``curate.options`` parsed by the curator's ``Options`` dataclass, as keyword arguments."""
    from .keys import build

    if cls.Options is None:
        if section.options:
            raise ConfigError(f"curator '{section.name}' takes no curate.options (got {', '.join(section.options)}); "
                              "fix: remove them, or give the curator an Options dataclass")
        return {}
    parsed = build(cls.Options, dict(section.options), "curate.options",
                   unknown=lambda k: f"unknown option curate.options.{k} for curator '{section.name}'")
    return dataclasses.asdict(parsed)


def build_curator(section: Any) -> Curator:
    """The configured curator: ``cls(**section, **options)`` (the section's keys but ``options``, and its own)."""
    cls = curator_class(section.name)
    keys = {k: v for k, v in dataclasses.asdict(section).items() if k != "options"}
    return cls(**keys, **curator_options(cls, section))


def check_config(cfg: Any) -> None:
    """The configured curator meets the contract and takes its options (asked by ``s2distill.checks``)."""
    curator_options(curator_class(cfg.curate.name), cfg.curate)


def tally(pairs: Sequence[TrainPair], rejects: Sequence[Rejected], n_inputs: int) -> tuple[dict, str]:
    """What the curate stage records (kept, kept inputs, rejected, reasons) and its log line."""
    reasons: dict[str, int] = {}
    for r in rejects:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    kept_inputs = len({p.example_id.partition("~")[0] for p in pairs})  # a swap curator adds '~p0' copies
    note = f" ({len(pairs)} training pairs)" if kept_inputs != len(pairs) else ""
    return ({"kept": len(pairs), "kept_inputs": kept_inputs, "rejected": len(rejects), "reject_reasons": reasons},
            f"[curate] kept {kept_inputs} of {n_inputs} inputs{note}; rejected: {reasons or 'none'}")


def _pair(task, ex: Example, answer: str, meta: dict, trace: Trace | None = None) -> TrainPair:
    """The pair, with the System 2 reasoning of the first sample that gave ``answer`` in ``meta["trace"]`` (what a
    stepwise curriculum trains on first; never chosen by gold: curators only see unlabeled inputs)."""
    said = next((s.response for s in (trace.samples if trace else ()) if s.answer == answer), None)
    return TrainPair(example_id=ex.id, messages=tuple(task.system1_messages(ex)), target=task.format_target(answer),
                     meta={**meta, "trace": said} if said is not None else meta)


class SelfConsistency(Curator):
    """Keep an input when the majority answer over its samples is clear enough."""

    name = "self_consistency"

    def __init__(self, min_agreement: float = 0.5, min_votes: int = 2, weighting: str = "hard", **_: object):
        self.min_agreement = min_agreement
        self.min_votes = min_votes
        self.weighting = weighting  # vote_share: no threshold, meta["weight"] = the winner's share of the samples

    def __call__(self, task, examples: Sequence[Example], traces: Sequence[Trace]):
        by_id = {t.example_id: t for t in traces}
        pairs, rejects = [], []
        for ex in examples:
            tr = by_id.get(ex.id)
            if tr is None:
                rejects.append(Rejected(ex.id, "no_trace"))
                continue
            v = majority_vote([s.answer for s in tr.samples])
            meta = {"votes": v.votes, "n": v.n, "unparseable": v.unparseable, "agreement": round(v.agreement, 4)}
            if not v.votes:
                rejects.append(Rejected(ex.id, "no_parseable_answer", meta))
            elif v.tie:
                rejects.append(Rejected(ex.id, "tie", meta))
            elif self.weighting == "vote_share":
                pairs.append(_pair(task, ex, v.winner, {**meta, "weight": round(v.agreement, 4)}, tr))
            elif v.top < self.min_votes or v.agreement < self.min_agreement:
                rejects.append(Rejected(ex.id, "low_agreement", meta))
            else:
                pairs.append(_pair(task, ex, v.winner, meta, tr))
        return pairs, rejects


class NoFilter(Curator):
    """No curation: the first sample's answer is the target (what one System 2 run would say)."""

    name = "none"

    def __init__(self, **_: object):
        pass

    def __call__(self, task, examples: Sequence[Example], traces: Sequence[Trace]):
        by_id = {t.example_id: t for t in traces}
        pairs, rejects = [], []
        for ex in examples:
            tr = by_id.get(ex.id)
            ans = tr.samples[0].answer if tr and tr.samples else None
            if ans is None:
                rejects.append(Rejected(ex.id, "no_parseable_answer" if tr else "no_trace"))
            else:
                pairs.append(_pair(task, ex, ans, {"sample": 0}, tr))
        return pairs, rejects


USC_PROMPT = ("I have generated the following responses to the question: {question}\n\n{responses}\n\n"
              "Evaluate these responses. Select the most consistent response based on majority consensus. "
              'Start your answer with "The most consistent response is Response X" (without quotes).')
_USC_PICK = re.compile(r"response\s*#?\s*(\d+)", re.IGNORECASE)


class UniversalSelfConsistency(Curator):
    """Universal self-consistency (Chen et al. 2023; the paper's S2A curation): the model reads
    all samples of an input and names the most consistent one; its answer is the target.

    One batched model call over all inputs (greedy). An unparseable or out-of-range pick, or a
    pick whose answer did not parse, falls back to the plurality answer and says so in the
    pair's ``meta["usc"]``; inputs with no parsed answer at all are rejected."""

    name = "universal_self_consistency"
    needs_backend = True

    def __init__(self, max_response_chars: int = 600, **_: object):
        self.max_response_chars = max_response_chars

    def __call__(self, task, examples: Sequence[Example], traces: Sequence[Trace], backend=None):
        if backend is None:
            raise ConfigError("curator 'universal_self_consistency' asks the model to pick a response and needs a "
                              "backend (the pipeline passes one)")
        by_id = {t.example_id: t for t in traces}
        todo, pairs, rejects = [], [], []
        for ex in examples:
            tr = by_id.get(ex.id)
            if tr is None or not any(s.answer is not None for s in tr.samples):
                rejects.append(Rejected(ex.id, "no_trace" if tr is None else "no_parseable_answer"))
            else:
                todo.append((ex, tr))
        m = self.max_response_chars
        params = SamplingParams(max_tokens=24, temperature=0.0, n=1, seed=0)
        reqs = [GenRequest(({"role": "user", "content": USC_PROMPT.format(
            question=ex.question, responses="\n\n".join(f"Response {i}: {s.response.strip()[:m]}"
                                                        for i, s in enumerate(tr.samples)))},), params)
                for ex, tr in todo]
        picks = backend.generate(reqs) if reqs else []
        for (ex, tr), (comp,) in zip(todo, picks):
            answers = [s.answer for s in tr.samples]
            m_pick = _USC_PICK.search(comp.text)
            i = int(m_pick.group(1)) if m_pick else -1
            meta = {"usc": {"pick": i, "text": comp.text[:200]}, "answers": answers}
            if 0 <= i < len(tr.samples) and answers[i] is not None:
                answer = answers[i]
            else:
                answer = plurality_answer(answers)
                meta["usc"]["fallback"] = "plurality (unparseable or invalid pick)"
            pairs.append(_pair(task, ex, answer, meta, tr))  # type: ignore[arg-type]
        return pairs, rejects
