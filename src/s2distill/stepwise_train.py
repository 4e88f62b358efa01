"""Running a stepwise curriculum (:mod:`s2distill.stepwise`) inside the pipeline's train stage.

It receives the run as a :class:`s2distill.stages.StageRunner` (``runner``), not the whole pipeline. Every
stage is a declared pipeline stage of its own (``train_stage{k}``, then ``eval_stage{k}`` for the partial ones),
so a finished stage is skipped on a rerun and a killed run continues with the next unfinished one (inside a
stage, from its last training checkpoint).
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from . import fingerprints
from .stages import Stage, StageRunner
from .stepwise import make_plan
from .types import TrainPair


def trained_paths(runner: StageRunner, model_dir: Path) -> dict:
    """The trained-model paths (``trained``) a distilled backend for the adapter in ``model_dir`` is built with,
    after the run's backend prepared that adapter for serving once (``Backend.prepare_distilled``, as the
    pipeline's train stage does; llama.cpp: its LoRA GGUF, which a retrained stage deletes)."""
    from .backends.pool import distilled_paths
    from .backends import BACKENDS

    paths = distilled_paths(model_dir)
    if not Path(paths["lora_gguf"]).exists():
        BACKENDS.get(runner.cfg.backend.name).prepare_distilled(runner.cfg, model_dir)
    return paths


def _eval_stage(runner: StageRunner, k: int, model_dir: Path) -> dict:
    """Stage k's adapter on the eval split: direct prompt, greedy, room for the trace it still writes."""
    from .evaluate import method_params, score_traces, summarize
    from .methods import METHODS
    from .rundir import write_jsonl

    c, task = runner.cfg, runner.task
    fp = fingerprints.curriculum_eval(c, runner.fp[f"train_stage{k}"], runner.fp["data"])

    def run():
        runner.free_engines()
        trained = trained_paths(runner, model_dir)
        exs = runner.examples("eval")
        params = method_params(c, 1, 0.0, c.method.max_tokens)
        traces, wall, stats = runner.generate(
            "distilled", f"eval stage {k}", lambda b: METHODS.get("direct")(task, exs, b, params, c.method), len(exs),
            trained)
        runner.free_engines()  # the next stage's adapter needs a new server
        records = score_traces(f"stage{k}", task, exs, traces)
        write_jsonl(runner.rd / "eval" / f"stage{k}.traces.jsonl", traces)
        write_jsonl(runner.rd / "eval" / f"stage{k}.jsonl", records)
        s = summarize(records, wall)
        acc = "-" if s["accuracy"] is None else f"{s['accuracy']:.1%}"
        runner.log(f"[eval stage {k}] accuracy {acc} (n={s['n']}), {s['mean_generated_tokens']:.1f} tokens/answer")
        return [f"eval/stage{k}.jsonl"], {"wall_s_generate": round(wall, 3), **stats}

    runner.execute(Stage(f"eval_stage{k}", "train", (f"train_stage{k}", "data"), lambda r: fp, lambda r: run()))
    from .rundir import read_jsonl
    from .types import EvalRecord

    return summarize([EvalRecord.from_json(d) for d in read_jsonl(runner.rd / "eval" / f"stage{k}.jsonl")])


def train_stepwise(runner: StageRunner, pairs: list[TrainPair], base: str, out: Path, tcfg) -> dict:
    """Run every stage (train, then evaluate the partial ones); the last stage's adapter becomes ``out/adapter``.
    Returns the train summary: the last stage's, with ``stages`` (one record per stage) and ``best_partial_stage``."""
    from .rundir import read_json, write_json
    from .train import train_lora

    c = runner.cfg
    plan = make_plan(pairs, c.train.curriculum, base, c.seed)
    info = plan.summary()
    runner.log(f"[train] stepwise curriculum: {plan.n_stages} stage(s) by {plan.unit}; "
                 f"{plan.unsplittable} unsplittable trace(s) removed whole, {plan.no_trace} without reasoning")
    write_json(out / "stepwise_plan.json", {**info, "stage_targets_example": [ps[0].target for ps in plan.stage_pairs]
                                            if pairs else []})
    stage_cfg = dataclasses.replace(tcfg, epochs=c.train.curriculum.epochs_per_stage, max_steps=-1)
    records, prev, prev_fp, last_k = [], None, runner.fp["train"], plan.n_stages - 1
    for k, stage_pairs in enumerate(plan.stage_pairs):
        sdir = out / "stages" / f"stage{k}"
        # chained: a stage retrains whenever any stage before it did (it continues that stage's adapter)
        fp = prev_fp = fingerprints.curriculum_stage(runner.fp["train"], prev_fp, k, plan.n_stages,
                                                     [p.target for p in stage_pairs])
        # train.save_merged: only the last stage (the distilled model) is merged
        cfg_k = dataclasses.replace(stage_cfg, save_merged=tcfg.save_merged and k == last_k)

        def run(stage_pairs=stage_pairs, sdir=sdir, prev=prev, k=k, cfg_k=cfg_k):
            runner.free_engines()
            summary = train_lora(list(stage_pairs), base, sdir, cfg_k, progress=runner.progress,
                                 init_adapter=prev)
            for stale in ("distilled-lora.gguf",):  # a retrained stage needs a fresh export
                (sdir / stale).unlink(missing_ok=True)
            runner.log(f"[train stage {k}/{plan.n_stages - 1}] {summary['steps']} steps, "
                         f"loss {summary['first_loss']} -> {summary['final_loss']}")
            return [f"model/stages/stage{k}/train_summary.json"], {}

        runner.execute(Stage(f"train_stage{k}", "train", ("train",) + ((f"train_stage{k - 1}",) if k else ()),
                             lambda r, fp=fp: fp, lambda r, run=run: run()))
        summary = read_json(sdir / "train_summary.json")
        rec = {"stage": k, "steps": summary["steps"], "rows": len(stage_pairs),
               "mean_target_chars": info["mean_target_chars"][k], "final_loss": summary["final_loss"],
               "train_time_s": summary["train_time_s"],
               "optimizer_state_at_start": summary.get("optimizer_state_at_start"),
               "init_adapter": summary.get("init_adapter"), "adapter_dir": str(sdir / "adapter")}
        if k < plan.n_stages - 1:
            s = _eval_stage(runner, k, sdir)
            rec.update({"n": s["n"], "accuracy": s["accuracy"], "ci95": s["ci95"],
                        "mean_generated_tokens": s["mean_generated_tokens"]})
        records.append(rec)
        prev = sdir / "adapter"
    last = out / "stages" / f"stage{plan.n_stages - 1}"
    shutil.rmtree(out / "adapter", ignore_errors=True)
    shutil.copytree(last / "adapter", out / "adapter")
    if (last / "merged").is_dir():
        shutil.rmtree(out / "merged", ignore_errors=True)
        shutil.copytree(last / "merged", out / "merged")
    final = read_json(last / "train_summary.json")
    partial = [r for r in records if r.get("accuracy") is not None]
    best = max(partial, key=lambda r: (r["accuracy"], -r["mean_generated_tokens"]), default=None)
    return {**final, "curriculum": "stepwise", "plan": info, "stages": records,
            "steps": sum(r["steps"] for r in records), "final_stage_steps": final["steps"],
            "train_time_s": round(sum(r["train_time_s"] for r in records), 2),
            "best_partial_stage": best["stage"] if best else None, "adapter_dir": str(out / "adapter")}
