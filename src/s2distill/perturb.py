"""Curation by consistency under input perturbation (Yu et al. 2024, used there for RaR).

Each unlabeled input is asked again as ``n_variants`` meaning-preserving variants
(``task.perturb(example, i)``, e.g. a reworded instruction). The input is kept when the
majority answer of the original and of every variant is the same; the target is that
answer and the training prompt is the ORIGINAL System 1 prompt. Gold is never read.

Usage: ``exs = expand(task, examples, n)``, run the method on ``exs``, then call
``InputPerturbation(n_variants=n)(task, exs_or_originals, traces)``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .curate import Expanding
from .errors import ConfigError
from .tasks.base import Pairwise, Perturbable
from .types import Example, Rejected, Trace, TrainPair
from .voting import Vote, majority_vote


def variant_id(example_id: str, i: int) -> str:
    return f"{example_id}~p{i}"


def base_id(example_id: str) -> str:
    """The id of the input a variant ('~p0', '~swap', '~w1') was made from."""
    return example_id.partition("~")[0]


def can_swap(task) -> bool:
    """A pairwise judge task: its inputs swap, and a verdict on the swapped input maps back."""
    return isinstance(task, Pairwise)


def _check(task, n_variants: int) -> None:
    if not isinstance(task, Perturbable):
        raise ConfigError(f"curator 'input_perturbation' needs a Perturbable task (perturb(example, i) and "
                          f"n_perturbations); task '{task.name}' is not: use curate.name=self_consistency, "
                          "or a task such as last_letter or coin_flip")
    if not 1 <= n_variants <= task.n_perturbations:
        raise ConfigError(f"n_variants must be in 1..{task.n_perturbations} for task '{task.name}', got {n_variants}")


def expand(task, examples: Sequence[Example], n_variants: int) -> list[Example]:
    """Each original followed by its ``n_variants`` variants (ids ``{id}~p{i}``)."""
    _check(task, n_variants)
    out: list[Example] = []
    for ex in examples:
        out.append(ex)
        for i in range(n_variants):
            v = task.perturb(ex, i)
            out.append(dataclasses.replace(v, id=variant_id(ex.id, i),
                                           meta={**v.meta, "variant_of": ex.id, "variant": i}))
    return out


class InputPerturbation(Expanding):
    """Keep an input when the original and all its variants give the same majority answer."""

    name = "input_perturbation"

    def __init__(self, min_agreement: float = 0.5, min_votes: int = 1, n_variants: int = 2, **_: object):
        self.min_agreement = min_agreement
        self.min_votes = min_votes
        self.n_variants = n_variants

    def expand(self, task, examples: Sequence[Example]) -> list[Example]:
        return expand(task, examples, self.n_variants)

    def extra_pairs(self, task, ex: Example, answer: str, meta: dict) -> list[TrainPair]:
        return []

    def __call__(self, task, examples: Sequence[Example], traces: Sequence[Trace]):
        _check(task, self.n_variants)
        by_id = {t.example_id: t for t in traces}
        back = task.unperturb_answer  # e.g. a verdict on swapped responses: A <-> B (else the identity)
        pairs: list[TrainPair] = []
        rejects: list[Rejected] = []
        for ex in (e for e in examples if "variant_of" not in e.meta):
            ids = [ex.id] + [variant_id(ex.id, i) for i in range(self.n_variants)]
            missing = [i for i in ids if i not in by_id]
            if missing:
                rejects.append(Rejected(ex.id, "no_trace", {"missing": missing}))
                continue
            votes: list[Vote] = [majority_vote([s.answer if k == 0 else back(s.answer, k - 1)
                                                for s in by_id[i].samples]) for k, i in enumerate(ids)]
            meta = {"variants": [{"id": i, "votes": v.votes, "n": v.n, "unparseable": v.unparseable,
                                  "agreement": round(v.agreement, 4)} for i, v in zip(ids, votes)]}
            winners = {v.winner for v in votes}
            if any(not v.votes for v in votes):
                reason = "no_parseable_answer"
            elif any(v.tie for v in votes):
                reason = "tie"
            elif len(winners) > 1:
                reason = "variants_disagree"
            elif any(v.top < self.min_votes or v.agreement < self.min_agreement for v in votes):
                reason = "low_agreement"
            else:
                (answer,) = winners
                pairs.append(TrainPair(example_id=ex.id, messages=tuple(task.system1_messages(ex)),
                                       target=task.format_target(answer), meta=meta))
                pairs.extend(self.extra_pairs(task, ex, answer, meta))
                continue
            rejects.append(Rejected(ex.id, reason, meta))
        return pairs, rejects


class SwapConsistency(InputPerturbation):
    """For pairwise judges (the paper's BSM curation): keep a verdict only when it is the same
    with the two responses in either order; train on both orders of every kept pair."""

    name = "swap_consistency"

    def __init__(self, min_agreement: float = 0.5, min_votes: int = 1, **_: object):
        super().__init__(min_agreement=min_agreement, min_votes=min_votes, n_variants=1)

    def __call__(self, task, examples, traces):
        if not can_swap(task):
            raise ConfigError(f"curator 'swap_consistency' needs a pairwise judge task (task.name=judge); "
                              f"task '{task.name}' cannot swap its inputs")
        return super().__call__(task, examples, traces)

    def extra_pairs(self, task, ex: Example, answer: str, meta: dict) -> list[TrainPair]:
        swapped = task.perturb(ex, 0)
        return [TrainPair(example_id=variant_id(ex.id, 0), messages=tuple(task.system1_messages(swapped)),
                          # the swap is an involution: mapping back also maps forward (A <-> B)
                          target=task.format_target(task.unperturb_answer(answer, 0)), meta={**meta, "swapped": True})]
