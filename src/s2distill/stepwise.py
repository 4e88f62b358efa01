"""Stepwise internalization (Deng, Choi, Shieber 2024): train on the System 2 trace, then drop it from the left.

Stage 0 trains on ``trace + "The answer is X."``; stage k drops the first k steps of every trace (or, with
``train.stages = N``, a proportional share of them; with ``train.remove_per_stage = T``, k*T tokens plus the
paper's smoothing offset); the last stage trains on the answer alone, exactly what plain distillation trains
on. Every stage continues the previous stage's LoRA adapter with a fresh optimizer (a new ``SFTTrainer`` per
stage through :func:`s2distill.train.train_lora`), is its own pipeline stage (``train_stage{k}``, so a killed
run continues with the next unfinished stage) and is evaluated on the eval split (``eval_stage{k}``) except the
last, which the pipeline's ``distilled`` evaluation scores. A trace the splitter cannot split (one step) falls
back to whole-trace removal and is counted.
"""
from __future__ import annotations

import dataclasses
import math
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, DataError
from .types import TrainPair, stable_hash

CURRICULA = ("none", "stepwise")
# a step ends at a line break, after a sentence end (. ! ? ;) followed by space, or at ", " between equations
_SPLIT = re.compile(r"\s*\n\s*|(?<=[.!?;])\s+(?=\S)|(?<=\d,)\s+(?=[^,.]*=|(?:so|then|and)\b)", re.IGNORECASE)
_ANSWER_STEP = re.compile(r"answer\s*(?:is|:)|####|\\boxed", re.IGNORECASE)


def check_section(train) -> None:
    """Config checks of the curriculum keys (called by config.validate)."""
    if train.curriculum not in CURRICULA:
        raise ConfigError(f"unknown train.curriculum '{train.curriculum}' (known: {', '.join(CURRICULA)})")
    if train.epochs_per_stage <= 0:
        raise ConfigError(f"train.epochs_per_stage must be > 0, got {train.epochs_per_stage} (e.g. 1)")
    if train.stages < 0 or train.stages == 1:
        raise ConfigError(f"train.stages must be 0 (one per step) or >= 2, got {train.stages}")
    if train.remove_per_stage < 0:
        raise ConfigError(f"train.remove_per_stage must be >= 0 tokens (0 = whole steps), got {train.remove_per_stage}")
    if train.removal_smoothing < 0:
        raise ConfigError(f"train.removal_smoothing must be >= 0 (inf = no smoothing), got {train.removal_smoothing}")
    if train.curriculum == "stepwise" and (train.method != "lora" or train.launcher != "local"):
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


def make_plan(pairs: list[TrainPair], train, base: str, seed: int) -> Plan:
    if train.remove_per_stage <= 0:
        return plan_steps(pairs, train.stages)
    import transformers

    from .export import resolve_hf_model

    tok = transformers.AutoTokenizer.from_pretrained(resolve_hf_model(base))

    def tokenize(text: str) -> list[str]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        return [tok.decode(ids[:i + 1])[len(tok.decode(ids[:i])):] for i in range(len(ids))]

    return plan_tokens(pairs, tokenize, train.remove_per_stage, train.removal_smoothing, seed, train.stages)


def _free_backends(pipeline) -> None:
    for b in list(pipeline._backends):  # one engine at a time; training wants the cores
        pipeline._backends.pop(b).close()


def serve_extra(pipeline, model_dir: Path) -> dict:
    """The ``extra`` a distilled backend for the adapter in ``model_dir`` is built with (llama.cpp: its GGUF)."""
    from .pipeline import distilled_paths

    if pipeline.cfg.backend.name == "llamacpp" and not (model_dir / "distilled-lora.gguf").exists():
        from .export import export_lora_gguf
        from .models import resolve_model

        export_lora_gguf(model_dir / "adapter", resolve_model(pipeline.cfg.model), model_dir / "distilled-lora.gguf")
    return distilled_paths(model_dir)


def _eval_stage(pipeline, k: int, model_dir: Path) -> dict:
    """Stage k's adapter on the eval split: direct prompt, greedy, room for the trace it still writes."""
    from .evaluate import score_traces, summarize
    from .registry import METHODS
    from .rundir import write_jsonl

    c, task = pipeline.cfg, pipeline.task
    fp = stable_hash({"train_stage": pipeline.fp[f"train_stage{k}"], "data": pipeline.fp["data"],
                      "max_tokens": c.method.max_tokens, "seed": c.seed})

    def run():
        _free_backends(pipeline)
        extra = serve_extra(pipeline, model_dir)
        exs = pipeline.examples("eval")
        params = pipeline._method_params(1, 0.0, c.method.max_tokens)
        traces, wall, stats = pipeline._generate(
            "distilled", f"eval stage {k}", lambda b: METHODS.get("direct")(task, exs, b, params, c.method), len(exs),
            extra)
        _free_backends(pipeline)  # the next stage's adapter needs a new server
        records = score_traces(f"stage{k}", task, exs, traces)
        write_jsonl(pipeline.rd / "eval" / f"stage{k}.traces.jsonl", traces)
        write_jsonl(pipeline.rd / "eval" / f"stage{k}.jsonl", records)
        s = summarize(records, wall)
        acc = "-" if s["accuracy"] is None else f"{s['accuracy']:.1%}"
        pipeline.log(f"[eval stage {k}] accuracy {acc} (n={s['n']}), {s['mean_generated_tokens']:.1f} tokens/answer")
        return [f"eval/stage{k}.jsonl"], {"wall_s_generate": round(wall, 3), **stats}

    pipeline._stage(f"eval_stage{k}", fp, run)
    from .evaluate import summarize as _s
    from .rundir import read_jsonl
    from .types import EvalRecord

    return _s([EvalRecord.from_json(d) for d in read_jsonl(pipeline.rd / "eval" / f"stage{k}.jsonl")])


def train_stepwise(pipeline, pairs: list[TrainPair], base: str, out: Path, tcfg) -> dict:
    """Run every stage (train, then evaluate the partial ones); the last stage's adapter becomes ``out/adapter``.
    Returns the train summary: the last stage's, with ``stages`` (one record per stage) and ``best_partial_stage``."""
    from .rundir import read_json, write_json
    from .train import train_lora

    c = pipeline.cfg
    plan = make_plan(pairs, c.train, base, c.seed)
    info = plan.summary()
    pipeline.log(f"[train] stepwise curriculum: {plan.n_stages} stage(s) by {plan.unit}; "
                 f"{plan.unsplittable} unsplittable trace(s) removed whole, {plan.no_trace} without reasoning")
    write_json(out / "stepwise_plan.json", {**info, "stage_targets_example": [ps[0].target for ps in plan.stage_pairs]
                                            if pairs else []})
    stage_cfg = dataclasses.replace(tcfg, epochs=c.train.epochs_per_stage, max_steps=-1)
    records, prev = [], None
    for k, stage_pairs in enumerate(plan.stage_pairs):
        sdir = out / "stages" / f"stage{k}"
        fp = stable_hash({"train": pipeline.fp["train"], "stage": k, "of": plan.n_stages,
                          "targets": [p.target for p in stage_pairs]})

        def run(stage_pairs=stage_pairs, sdir=sdir, prev=prev, k=k):
            _free_backends(pipeline)
            summary = train_lora(list(stage_pairs), base, sdir, stage_cfg, progress=pipeline.progress,
                                 init_adapter=prev)
            for stale in ("distilled-lora.gguf",):  # a retrained stage needs a fresh export
                (sdir / stale).unlink(missing_ok=True)
            pipeline.log(f"[train stage {k}/{plan.n_stages - 1}] {summary['steps']} steps, "
                         f"loss {summary['first_loss']} -> {summary['final_loss']}")
            return [f"model/stages/stage{k}/train_summary.json"], {}

        pipeline._stage(f"train_stage{k}", fp, run)
        summary = read_json(sdir / "train_summary.json")
        rec = {"stage": k, "steps": summary["steps"], "rows": len(stage_pairs),
               "mean_target_chars": info["mean_target_chars"][k], "final_loss": summary["final_loss"],
               "train_time_s": summary["train_time_s"],
               "optimizer_state_at_start": summary.get("optimizer_state_at_start"),
               "init_adapter": summary.get("init_adapter"), "adapter_dir": str(sdir / "adapter")}
        if k < plan.n_stages - 1:
            s = _eval_stage(pipeline, k, sdir)
            rec.update({"n": s["n"], "accuracy": s["accuracy"], "ci95": s["ci95"],
                        "mean_generated_tokens": s["mean_generated_tokens"]})
        records.append(rec)
        prev = sdir / "adapter"
    last = out / "stages" / f"stage{plan.n_stages - 1}"
    shutil.rmtree(out / "adapter", ignore_errors=True)
    shutil.copytree(last / "adapter", out / "adapter")
    final = read_json(last / "train_summary.json")
    partial = [r for r in records if r.get("accuracy") is not None]
    best = max(partial, key=lambda r: (r["accuracy"], -r["mean_generated_tokens"]), default=None)
    return {**final, "curriculum": "stepwise", "plan": info, "stages": records,
            "steps": sum(r["steps"] for r in records), "final_stage_steps": final["steps"],
            "train_time_s": round(sum(r["train_time_s"] for r in records), 2),
            "best_partial_stage": best["stage"] if best else None, "adapter_dir": str(out / "adapter")}


def report_section(report: dict) -> dict | None:
    """The stage points (accuracy vs generated tokens) for the report: partial stages from the train summary,
    the last stage from the distilled row."""
    t = report.get("train") or {}
    if t.get("curriculum") != "stepwise":
        return None
    points = [dict(r) for r in t["stages"]]
    dist = next((r for r in report.get("rows", []) if r.get("role") == "distilled"), None)
    if dist is not None and points:
        points[-1].update({k: dist[k] for k in ("n", "accuracy", "ci95", "mean_generated_tokens")})
    best = next((r for r in points if r["stage"] == t.get("best_partial_stage")), None)
    return {"plan": t.get("plan"), "stages": points, "best_partial_stage": best, "total_steps": t.get("steps")}


def markdown(section: dict | None) -> list[str]:
    if not section:
        return []
    from .report import _ci, _pct

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
                     "tokens); its adapter: " + f"`{Path(b['adapter_dir']).name}` under model/stages")
    return lines
