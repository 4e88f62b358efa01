"""The paper's S2A table: System 1, S2A, and S2A distilled with and without USC curation.

    python benchmarks/s2a.py [--data ../shared/data] [key=value ...]

Two pipeline runs of configs/s2a_triviaqa.yaml in runs/bench/s2a/:

- ``usc``: S2A x n on every unlabeled prompt, universal self-consistency
  -> System 1, S2A, Distill S2A (USC)
- ``nofilter``: the same samples (cache copied), curate none -> Distill S2A (no curation)

Writes benchmarks/results/s2a.{json,md}: accuracy on unbiased prompts and per opinion type,
the sycophancy rate, mean generated tokens, each with n and a 95% interval.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import Table, ci, pct, points_svg, run_or_note, share_cache, write_result, parse_with_overrides

from s2distill.config import load_config
from s2distill.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("none", "suggest_correct", "suggest_incorrect", "discourage_correct")


def pipeline(run: str, overrides: list[str]) -> Pipeline:
    cfg = load_config(ROOT / "configs" / "s2a_triviaqa.yaml", [f"name=s2a-{run}", *overrides])
    return Pipeline(cfg, run_dir=ROOT / "runs" / "bench" / "s2a" / run)


def row(name: str, r: dict | None, rep: dict | None = None) -> dict:
    r = r or {}
    g = r.get("groups") or {}
    out = {"row": name, "n_prompts": r.get("n"), "accuracy_all": r.get("accuracy"), "ci95_all": r.get("ci95"),
           "mean_generated_tokens": r.get("mean_generated_tokens"),
           "groups": {k: g.get(k) for k in GROUPS}, "sycophancy": g.get("sycophancy")}
    if rep is not None and r:
        c = rep["curation"]
        q = c.get("quality_checked_afterwards") or {}
        out.update(kept=c["kept"], targets_correct=q.get("correct_targets"),
                   train_steps=(rep.get("train") or {}).get("steps"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("overrides", nargs="*")
    args = parse_with_overrides(ap)
    ov = [f"task.options.path={Path(args.data) / 'triviaqa' / 'flashrag_test_subsample1000.jsonl'}",
          *args.overrides]
    notes: list[str] = []
    pa = pipeline("usc", ov)
    ra = run_or_note(pa, "Distill S2A (USC)", notes)
    pb = pipeline("nofilter", [*ov, "curate.name=none", "eval.systems=[system1,distilled]"])
    share_cache(pa, pb)
    rb = run_or_note(pb, "Distill S2A (no curation)", notes)
    a = {r["role"]: r for r in ra["rows"]}
    b = {r["role"]: r for r in rb["rows"]}
    table = [row("System 1", a.get("system1")), row("S2A", a.get("system2")),
             row("Distill S2A (no curation)", b.get("distilled"), rb),
             row("Distill S2A (USC)", a.get("distilled"), ra)]
    c = pa.cfg
    res = {"rows": table, "notes": notes, "overrides": ov, "setup": setup_of(c),
           "stages_wall_s": {"usc": ra.get("stages_wall_s"), "nofilter": rb.get("stages_wall_s")}}
    md = render(res)
    write_result("s2a", res, md, figure(res))
    print(md)


def setup_of(c) -> dict:
    return {"n_train": c.task.n_train, "n_eval": c.task.n_eval, "n": c.method.n, "temperature": c.method.temperature}


def render(res: dict) -> str:
    """The markdown of a result (also used to re-render a committed result from its JSON)."""
    su = res.get("setup") or setup_of(load_config(ROOT / "configs" / "s2a_triviaqa.yaml", res["overrides"]))
    rows = []
    for r in res["rows"]:
        cells = []
        for k in GROUPS:
            g = r["groups"].get(k)
            cells.append(f"{pct(g['accuracy'])} ({ci(g['ci95'])}), n={g['n']}" if g else "-")
        sy = r["sycophancy"]
        tok = f"{r['mean_generated_tokens']:.1f}" if r["mean_generated_tokens"] is not None else "-"
        kept = f"{r['kept']} ({r.get('targets_correct')})" if r.get("kept") is not None else ""
        rows.append([r["row"], *cells, pct(sy["rate"]) + " (" + ci(sy["ci95"]) + ")" if sy else "-", tok, kept])
    table = Table(["row", "unbiased %", "suggest correct %", "suggest incorrect %", "discourage correct %",
                   "sycophancy %", "mean tokens", "kept (targets correct)"], rows, align="llllllrl")
    lines = ["# System 2 Attention distillation on opinionated TriviaQA, embedded model", "",
             f"Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) through llama-server. {su['n_train']} unlabeled train questions "
             f"and {su['n_eval']} eval questions, each asked plain and with three opinions (4 prompts per question); "
             f"S2A sampled {su['n']}x at temperature {su['temperature']} for curation, greedy at evaluation. "
             "Wrong answers suggested in prompts: another question's answer of the same shape (seeded).", "",
             table.markdown()]
    lines += [""] + [f"- {n}" for n in res["notes"]]
    lines.append("- Curated targets are checked afterwards against the aliases (never given to the curator).")
    return "\n".join(lines)


ROLE = {"System 1": "system1", "S2A": "system2"}


def figure(res: dict) -> str:
    return points_svg(res["rows"], lambda r: r["row"], lambda r: ROLE.get(r["row"], "distilled"), y_key="accuracy_all",
                      ci_key="ci95_all", y_label="accuracy %, all prompts (95% CI)")


if __name__ == "__main__":
    main()
