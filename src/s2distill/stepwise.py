"""Stepwise internalization (Deng, Choi, Shieber 2024): train on the System 2 trace, then drop it from the left.

Stage 0 trains on ``trace + "The answer is X."``; stage k drops the first k steps of every trace (or, with
``train.stages = N``, a proportional share of them; with ``train.remove_per_stage = T``, k*T tokens plus the
paper's smoothing offset); the last stage trains on the answer alone, exactly what plain distillation trains
on. Every stage continues the previous stage's LoRA adapter with a fresh optimizer (a new ``SFTTrainer`` per
stage through :func:`s2distill.train.train_lora`), is its own pipeline stage (``train_stage{k}``, so a killed
run continues with the next unfinished stage) and is evaluated on the eval split (``eval_stage{k}``) except the
last, which the pipeline's ``distilled`` evaluation scores. A trace the splitter cannot split (one step) falls
back to whole-trace removal and is counted.

This module holds the schedule, the config checks and the report section; running the stages over a run
directory is :mod:`s2distill.stepwise_train`.
"""
from __future__ import annotations

import dataclasses
import math
import random
import re
from dataclasses import dataclass

from .errors import ConfigError, DataError
from .types import TrainPair

CURRICULA = ("none", "stepwise")
# a step ends at a line break, after a sentence end (. ! ? ;) followed by space, or at ", " between equations
_SPLIT = re.compile(r"\s*\n\s*|(?<=[.!?;])\s+(?=\S)|(?<=\d,)\s+(?=[^,.]*=|(?:so|then|and)\b)", re.IGNORECASE)
_ANSWER_STEP = re.compile(r"answer\s*(?:is|:)|####|\\boxed", re.IGNORECASE)


def check_config(cfg) -> None:
    """Config checks of the curriculum keys (asked by ``s2distill.checks``)."""
    check_section(cfg.train)


def check_section(train) -> None:
    c = train.curriculum
    if c.name not in CURRICULA:
        raise ConfigError(f"unknown train.curriculum.name '{c.name}' (known: {', '.join(CURRICULA)})")
    if c.epochs_per_stage <= 0:
        raise ConfigError(f"train.curriculum.epochs_per_stage must be > 0, got {c.epochs_per_stage} (e.g. 1)")
    if c.stages < 0 or c.stages == 1:
        raise ConfigError(f"train.curriculum.stages must be 0 (one per step) or >= 2, got {c.stages}")
    if c.remove_per_stage < 0:
        raise ConfigError(f"train.curriculum.remove_per_stage must be >= 0 tokens (0 = whole steps), got "
                          f"{c.remove_per_stage}")
    if c.removal_smoothing < 0:
        raise ConfigError(f"train.curriculum.removal_smoothing must be >= 0 (inf = no smoothing), got "
                          f"{c.removal_smoothing}")
    if c.name == "stepwise" and (train.method != "lora" or train.launcher.name != "local"):
        raise ConfigError("train.curriculum=stepwise trains LoRA in this process; set train.method=lora and "
                          "train.launcher=local")


def split_steps(text: str) -> list[str]:
    """The reasoning steps of a System 2 response (lines, sentences, comma-separated equations), without the
    final answer statement and anything after it."""
    steps = [s.strip() for s in _SPLIT.split(text.strip()) if s and s.strip()]
    for i, s in enumerate(steps):
        if _ANSWER_STEP.search(s):
            return steps[:i]
    return steps


def removed_steps(k: int, n_steps: int, n_stages: int, fixed: bool) -> int:
    """Steps of an ``n_steps`` trace dropped at stage ``k``: k (one per stage), or ceil(k/(S-1) * n) with a fixed
    stage count; the last stage drops everything. A one-step (unsplittable) trace goes whole at stage 1."""
    if k >= n_stages - 1:
        return n_steps
    if not fixed:
        return min(k, n_steps)
    return min(n_steps, math.ceil(k * n_steps / (n_stages - 1)))


def answer_line(target: str) -> str:
    t = target.strip()
    return f"The answer is {t}" + ("" if t[-1:] in ".!?" else ".")


def stage_target(kept: str, target: str) -> str:
    """What a stage trains the model to say: the trace left after the removal, then the answer statement; with
    no trace left, the bare target of plain distillation."""
    return f"{kept} {answer_line(target)}" if kept.strip() else target


@dataclass(frozen=True)
class Plan:
    n_stages: int
    stage_pairs: tuple[tuple[TrainPair, ...], ...]
    n_steps: tuple[int, ...]  # per pair (tokens, for a token-level schedule)
    unsplittable: int  # traces of one step: removed whole
    no_trace: int  # pairs whose trace had no reasoning left (answer only at every stage)
    unit: str  # steps | tokens

    def summary(self) -> dict:
        return {"n_stages": self.n_stages, "unit": self.unit, "pairs": len(self.n_steps),
                "unsplittable_traces": self.unsplittable, "pairs_without_reasoning": self.no_trace,
                "max_steps_in_trace": max(self.n_steps, default=0),
                "mean_steps_in_trace": round(sum(self.n_steps) / max(1, len(self.n_steps)), 3),
                "mean_target_chars": [round(sum(len(p.target) for p in ps) / max(1, len(ps)), 1)
                                      for ps in self.stage_pairs]}


def _trace_of(p: TrainPair) -> str:
    tr = p.meta.get("trace")
    if tr is None:
        raise DataError(f"train pair {p.example_id} has no System 2 trace (its curator keeps none, or an older "
                        "s2distill curated it); fix: use curate.name=self_consistency, none or universal_self_consistency "
                        "in a fresh run directory (curation then stores the traces)")
    return tr


def plan_steps(pairs: list[TrainPair], stages: int = 0) -> Plan:
    """The step-level schedule: stage k's pairs for every k."""
    steps = [split_steps(_trace_of(p)) for p in pairs]
    longest = max((len(s) for s in steps), default=0)
    n_stages = stages or longest + 1
    out = []
    for k in range(n_stages):
        out.append(tuple(dataclasses.replace(
            p, target=stage_target(" ".join(s[removed_steps(k, len(s), n_stages, bool(stages)):]), p.target),
            meta={**p.meta, "stage": k}) for p, s in zip(pairs, steps)))
    return Plan(n_stages, tuple(out), tuple(len(s) for s in steps), sum(len(s) == 1 for s in steps),
                sum(len(s) == 0 for s in steps), "steps")


def smoothing_offset(rng: random.Random, lam: float, cap: int = 100) -> int:
    """Deng et al.'s removal smoothing: an extra offset o >= 0 with P(o) ~ exp(-lam * o) (lam = inf: 0)."""
    if math.isinf(lam):
        return 0
    weights = [math.exp(-lam * o) for o in range(cap)]
    return rng.choices(range(cap), weights=weights)[0]


def plan_tokens(pairs: list[TrainPair], tokenize, per_stage: int, lam: float = 4.0, seed: int = 0,
                stages: int = 0) -> Plan:
    """The token-level schedule: stage k drops the first k*per_stage (+ smoothing offset) tokens of the
    reasoning (``tokenize(text) -> list of token strings`` that join back to the text)."""
    toks = []
    for p in pairs:
        steps = split_steps(_trace_of(p))
        toks.append(tokenize(" ".join(steps)) if steps else [])
    longest = max((len(t) for t in toks), default=0)
    n_stages = stages or math.ceil(longest / per_stage) + 1
    rng = random.Random(f"stepwise-{seed}")
    out = []
    for k in range(n_stages):
        rows = []
        for p, t in zip(pairs, toks):
            drop = len(t) if k >= n_stages - 1 else min(len(t), k * per_stage + (smoothing_offset(rng, lam) if k else 0))
            rows.append(dataclasses.replace(p, target=stage_target("".join(t[drop:]).strip(), p.target),
                                            meta={**p.meta, "stage": k}))
        out.append(tuple(rows))
    return Plan(n_stages, tuple(out), tuple(len(t) for t in toks), 0, sum(not t for t in toks), "tokens")


def make_plan(pairs: list[TrainPair], curriculum, base: str, seed: int) -> Plan:
    """The stage plan of ``train.curriculum``: by whole steps, or by ``remove_per_stage`` tokens."""
    if curriculum.remove_per_stage <= 0:
        return plan_steps(pairs, curriculum.stages)
    import transformers

    from .models import resolve_hf_model

    tok = transformers.AutoTokenizer.from_pretrained(resolve_hf_model(base))

    def tokenize(text: str) -> list[str]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        return [tok.decode(ids[:i + 1])[len(tok.decode(ids[:i])):] for i in range(len(ids))]

    return plan_tokens(pairs, tokenize, curriculum.remove_per_stage, curriculum.removal_smoothing, seed,
                       curriculum.stages)


def report_section(report: dict) -> dict | None:
    """The stage points (accuracy vs generated tokens) for the report: partial stages from the train summary,
    the last stage from the distilled row."""
    t = report.get("train") or {}
    if t.get("curriculum") != "stepwise":
        return None
    points, so_far = [], 0
    for r in t["stages"]:  # with the optimizer steps up to and including the stage
        so_far += r.get("steps") or 0
        points.append({**r, "steps_so_far": so_far})
    dist = next((r for r in report.get("rows", []) if r.get("role") == "distilled"), None)
    if dist is not None and points:
        points[-1].update({k: dist[k] for k in ("n", "accuracy", "ci95", "mean_generated_tokens")})
    best = next((r for r in points if r["stage"] == t.get("best_partial_stage")), None)
    return {"plan": t.get("plan"), "stages": points, "best_partial_stage": best, "total_steps": t.get("steps")}


def markdown(section: dict | None) -> list[str]:
    if not section:
        return []
    from .tables import ci as _ci
    from .tables import pct as _pct

    p = section["plan"] or {}
    lines = ["", f"Stepwise curriculum ({p.get('n_stages')} stages by {p.get('unit')}; {p.get('unsplittable_traces')} "
             f"unsplittable trace(s) removed whole; {section['total_steps']} optimizer steps in all):", "",
             "| stage | trace left (mean target chars) | steps | accuracy % | 95% CI | mean generated tokens |",
             "|---:|---:|---:|---:|---|---:|"]
    for r in section["stages"]:
        tok = r.get("mean_generated_tokens")
        lines.append(f"| {r['stage']} | {r['mean_target_chars']} | {r['steps']} | {_pct(r.get('accuracy'))} | "
                     f"{_ci(r.get('ci95'))} | {'-' if tok is None else f'{tok:.1f}'} |")
    b = section.get("best_partial_stage")
    if b:
        lines.append(f"\nBest partial stage: {b['stage']} ({_pct(b['accuracy'])}%, {b['mean_generated_tokens']:.1f} "
                     "tokens); its adapter: " + f"`model/stages/stage{b['stage']}/adapter`")
    return lines
