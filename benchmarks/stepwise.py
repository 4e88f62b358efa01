"""Stepwise internalization vs one-shot distillation at the same number of optimizer steps (issue 14).

    python benchmarks/stepwise.py [--config configs/stepwise_arithmetic.yaml] [key=value ...]

1. `configs/stepwise_arithmetic.yaml` (arithmetic depth 2, 3 curriculum stages) in runs/bench/stepwise_arith_d2:
   every stage's accuracy and tokens on the eval split; the last stage = stepwise distilled.
2. The same config with `train.curriculum=none` and `train.max_steps` = the curriculum's total optimizer steps
   in runs/bench/stepwise_arith_d2_oneshot, its sample cache seeded from run 1 (the same curated pairs; no
   new System 2 samples): one-shot distilled.
3. System 1 and CoT of the base model on the same eval split (or, with --cite-base FILE, those rows from a
   committed result on the same inputs and prompts, marked as cited).
Writes benchmarks/results/stepwise.{json,md,html} after each run (rows so far), as a list of rows
{setting, depth, row, n, accuracy, ci95, mean_generated_tokens, optimizer_steps}.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import Table, ci, pct, points_svg, share_cache, write_result, parse_with_overrides  # noqa: E402

from s2distill.config import load_config  # noqa: E402
from s2distill.pipeline import Pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _row(setting: str, depth, name: str, r: dict, steps) -> dict:
    return {"setting": setting, "depth": depth, "row": name, "n": r["n"], "accuracy": r["accuracy"],
            "ci95": r["ci95"], "mean_generated_tokens": r["mean_generated_tokens"], "optimizer_steps": steps}


def stepwise_rows(report: dict, setting: str, depth) -> list[dict]:
    by = {r["role"]: r for r in report["rows"]}
    rows = [_row(setting, depth, name, by[role], 0) for name, role in (("System 1", "system1"), ("CoT", "system2"))
            if role in by]
    sw = report.get("stepwise")
    if sw and "distilled" in by:
        rows.append(_row(setting, depth, "stepwise distilled", by["distilled"], sw["total_steps"]))
        b = sw.get("best_partial_stage")
        if b:
            upto = sum(s["steps"] for s in sw["stages"] if s["stage"] <= b["stage"])
            rows.append(_row(setting, depth, f"stepwise best partial (stage {b['stage']})", b, upto))
    return rows


ORDER = ("System 1", "CoT", "one-shot distilled", "stepwise distilled")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs" / "stepwise_arithmetic.yaml"))
    ap.add_argument("--setting", default="arith_d2")
    ap.add_argument("--cite-base", default=None,
                    help="a committed result JSON (distill_arithmetic.json) to take the System 1 / CoT rows from "
                         "instead of measuring them (same eval inputs and prompts), e.g. when CPU time runs out")
    ap.add_argument("overrides", nargs="*")
    args = parse_with_overrides(ap)
    config = Path(args.config)
    res: dict = {"rows": [], "stages": [], "runs": {}, "notes": []}
    bench = ROOT / "runs" / "bench"
    # the comparison first (curriculum, then one-shot at the same steps), the base systems last
    t0 = time.time()
    cfg = load_config(config, [f"name=stepwise_{args.setting}", *args.overrides, "eval.systems=[distilled]"])
    depth = cfg.task.options.get("depth")
    p1 = Pipeline(cfg, run_dir=bench / f"stepwise_{args.setting}")
    rep = p1.run()
    res["rows"] = stepwise_rows(rep, args.setting, depth)
    res["stages"] = rep["stepwise"]["stages"] if rep.get("stepwise") else []
    res["runs"]["stepwise"] = {"config": portable_rel(config), "overrides": args.overrides, "n_train": cfg.task.n_train,
                               "curation": rep["curation"], "plan": (rep.get("stepwise") or {}).get("plan"),
                               "stages_wall_s": rep["stages_wall_s"], "wall_s": round(time.time() - t0, 1)}
    publish(res)

    t1 = time.time()
    total = rep["stepwise"]["total_steps"]
    ov = [f"name=oneshot_{args.setting}", *args.overrides, "eval.systems=[distilled]", "train.curriculum=none",
          f"train.max_steps={total}"]
    p2 = Pipeline(load_config(config, ov), run_dir=bench / f"stepwise_{args.setting}_oneshot")
    share_cache(p1, p2)  # the same samples, so the same curated pairs
    rep2 = p2.run()
    dist = next(r for r in rep2["rows"] if r["role"] == "distilled")
    res["rows"].append(_row(args.setting, depth, "one-shot distilled", dist, rep2["train"]["steps"]))
    res["runs"]["one-shot"] = {"overrides": ov, "curation": rep2["curation"], "stages_wall_s": rep2["stages_wall_s"],
                               "wall_s": round(time.time() - t1, 1)}
    publish(res)

    if args.cite_base:
        res["rows"] += cited_base(Path(args.cite_base), args.setting, depth)
        res["notes"].append(f"System 1 and CoT rows cited from {Path(args.cite_base).name} (the same 40 eval problems, "
                            "prompts and model), not measured in this run: CPU time ran out")
    else:
        t2 = time.time()
        p3 = Pipeline(load_config(config, [f"name=base_{args.setting}", *args.overrides]),
                      run_dir=bench / f"stepwise_{args.setting}_base")
        share_cache(p1, p3)
        rep3 = p3.evaluate_base(("system1", "system2"))
        by = {r["role"]: r for r in rep3["rows"]}
        res["rows"] += [_row(args.setting, depth, "System 1", by["system1"], 0),
                        _row(args.setting, depth, "CoT", by["system2"], 0)]
        res["runs"]["base"] = {"wall_s": round(time.time() - t2, 1), "stages_wall_s": rep3["stages_wall_s"]}
    publish(res)


def cited_base(path: Path, setting: str, depth) -> list[dict]:
    """System 1 and CoT rows of a committed experiment result (distill_arithmetic.json) at ``depth``."""
    import json

    rows = json.loads(path.read_text())["rows"]
    name = {"system1": "System 1", "system2": "CoT"}
    return [{"setting": setting, "depth": depth, "row": name[r["role"]], "n": v["n"], "accuracy": v["accuracy"],
             "ci95": v["ci95"], "mean_generated_tokens": v["tokens"], "optimizer_steps": 0, "cited_from": path.name}
            for r in rows if (v := r["values"]).get("task") == "arithmetic" and v.get("depth") == depth
            and r["role"] in name]


def portable_rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return p.name


def publish(res: dict) -> None:
    md = render(res)
    write_result("stepwise", res, md, figure(res))
    print(md, flush=True)


def _ordered(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: ORDER.index(r["row"]) if r["row"] in ORDER else len(ORDER))


def render(res: dict) -> str:
    res["rows"] = _ordered(res["rows"])
    t = Table(["setting", "row", "n", "accuracy %", "95% CI", "mean generated tokens", "optimizer steps"],
              [[r["setting"], r["row"] + (" (cited)" if r.get("cited_from") else ""), str(r["n"]), pct(r["accuracy"]), ci(r["ci95"]),
                f"{r['mean_generated_tokens']:.1f}", str(r["optimizer_steps"])] for r in res["rows"]], align="llrrlrr")
    lines = ["# Stepwise internalization vs one-shot distillation (arithmetic)", "",
             "Embedded Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) through llama-server, LoRA on the CPU. Stepwise: train on "
             "one agreeing CoT trace + the answer, drop the trace from the left stage by stage (fresh optimizer per "
             "stage), last stage on the answer alone; one-shot: the answer alone from the start, same curated pairs, "
             "the same total number of optimizer steps.", "", t.markdown()]
    if res.get("stages"):
        st = Table(["stage", "trace left (mean target chars)", "steps", "accuracy %", "95% CI", "mean generated tokens"],
                   [[str(s["stage"]), str(s["mean_target_chars"]), str(s["steps"]), pct(s.get("accuracy")),
                     ci(s.get("ci95")), "-" if s.get("mean_generated_tokens") is None
                     else f"{s['mean_generated_tokens']:.1f}"] for s in res["stages"]], align="rrrrlr")
        lines += ["", "Every curriculum stage on the eval split (the last stage is the stepwise distilled row):", "",
                  st.markdown()]
    sw = res["runs"].get("stepwise")
    if sw:
        c, pl = sw["curation"], sw.get("plan") or {}
        q = c.get("quality_checked_afterwards") or {}
        lines += ["", f"- Sizes: {sw['n_train']} unlabeled train inputs, kept {c['kept']} after curation "
                  f"({q.get('correct_targets', '?')}/{q.get('checked', '?')} targets correct, checked afterwards); "
                  f"{pl.get('n_stages')} stages by {pl.get('unit')}, {pl.get('unsplittable_traces')} unsplittable "
                  f"trace(s) removed whole, mean {pl.get('mean_steps_in_trace')} steps per trace.",
                  f"- Wall time of the stepwise run: {sw['wall_s'] / 60:.1f} min (shared CPU)."]
    one = res["runs"].get("one-shot")
    if one:
        lines.append(f"- Wall time of the one-shot run (samples from the stepwise run's cache): "
                     f"{one['wall_s'] / 60:.1f} min.")
    lines += [f"- {n}" for n in res.get("notes", [])]
    return "\n".join(lines)


def figure(res: dict) -> str:
    role = {"System 1": "system1", "CoT": "system2", "one-shot distilled": "system2_maj",
            "stepwise distilled": "distilled"}
    pts = res["rows"] + [{**s, "row": f"stage {s['stage']}"} for s in res.get("stages", [])[:-1]]
    return points_svg(pts, lambda r: r["row"], lambda r: role.get(r["row"], r["row"]))


if __name__ == "__main__":
    main()
