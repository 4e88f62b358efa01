"""Voting over sampled answers: the one home of majority and plurality, used by curators
(``curate``, ``perturb``), evaluation (maj@k) and the label-free report."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Vote:
    winner: str | None  # None when no sample parsed or the top is tied
    votes: dict[str, int]
    n: int
    unparseable: int
    tie: bool

    @property
    def top(self) -> int:
        return self.votes.get(self.winner, 0) if self.winner is not None else 0

    @property
    def agreement(self) -> float:
        return self.top / self.n if self.n else 0.0


def majority_vote(answers: Sequence[str | None]) -> Vote:
    """Plurality over parsed answers. Unparseable (None) samples count in n but vote for nothing.

    A tie for first place gives ``winner=None, tie=True``; callers decide what a tie means.
    """
    counts = Counter(a for a in answers if a is not None)
    unparseable = sum(1 for a in answers if a is None)
    if not counts:
        return Vote(None, {}, len(answers), unparseable, False)
    ranked = counts.most_common()
    tie = len(ranked) > 1 and ranked[0][1] == ranked[1][1]
    return Vote(None if tie else ranked[0][0], dict(ranked), len(answers), unparseable, tie)


def plurality_answer(answers: Sequence[str | None]) -> str | None:
    """For maj@k evaluation: the most frequent answer; ties broken by first occurrence."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def plurality_share(answers: Sequence[str | None]) -> tuple[str | None, float]:
    """:func:`plurality_answer` and its vote share over all samples (unparsed samples count in the total)."""
    winner = plurality_answer(answers)
    if winner is None:
        return None, 0.0
    return winner, sum(a == winner for a in answers) / len(answers)
