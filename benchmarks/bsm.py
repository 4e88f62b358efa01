"""The paper's BSM table: System 1 judge, BSM, and BSM distilled with and without swap curation.

    python benchmarks/bsm.py [--data ../shared/data] [key=value ...]

Two pipeline runs of configs/bsm_judge.yaml in runs/bench/bsm/:

- ``swap``: BSM on both orders of every unlabeled pair, swap-consistency curation
  -> System 1 judge, BSM, Distill BSM (swap consistency)
- ``nofilter``: the same samples (cache copied), curate none -> Distill BSM (no curation)

Every judge runs on both response orders (a flipped verdict counts as a tie). Writes
benchmarks/results/bsm.{json,md}.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import Table, ci, pct, points_svg, run_or_note, share_cache, write_result, parse_with_overrides

from s2distill.config import load_config
from s2distill.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]


def pipeline(run: str, overrides: list[str]) -> Pipeline:
    cfg = load_config(ROOT / "configs" / "bsm_judge.yaml", [f"name=bsm-{run}", *overrides])
    return Pipeline(cfg, run_dir=ROOT / "runs" / "bench" / "bsm" / run)


def row(name: str, r: dict | None, extra: dict | None = None) -> dict:
    r = r or {}
    j = r.get("judge") or {}
    return {"row": name, "n": r.get("n"), "agreement": r.get("accuracy"), "agreement_ci95": r.get("ci95"),
            "agreement_non_tie": j.get("accuracy_non_tie"), "agreement_non_tie_ci95": j.get("accuracy_non_tie_ci95"),
            "n_non_tie": j.get("n_non_tie"), "inconsistent": j.get("inconsistent"),
            "inconsistent_ci95": j.get("inconsistent_ci95"), "tokens_per_verdict": j.get("tokens_per_verdict"),
            **(extra or {})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("overrides", nargs="*")
    args = parse_with_overrides(ap)
    ov = [f"task.options.path={Path(args.data) / 'gsm8k'}", *args.overrides]

    notes = []
    pa = pipeline("swap", ov)
    ra = run_or_note(pa, "Distill BSM (swap consistency)", notes)
    rows = {r["role"]: r for r in ra["rows"]}
    pb = pipeline("nofilter", [*ov, "curate.name=none", "eval.systems=[system1,distilled]"])
    share_cache(pa, pb)
    rb = run_or_note(pb, "Distill BSM (no curation)", notes)
    nofilter = {r["role"]: r for r in rb["rows"]}.get("distilled")
    rb = rb if nofilter else None  # not trained: no curation line either

    def cur(rep):
        if rep is None:
            return {}
        c = rep["curation"]
        q = c.get("quality_checked_afterwards") or {}
        return {"kept": c["kept"], "kept_inputs": c.get("kept_inputs"), "rejected": c["rejected"],
                "reject_reasons": c.get("reject_reasons"),
                "targets_correct": q.get("correct_targets"), "targets_checked": q.get("checked"),
                "train_steps": (rep.get("train") or {}).get("steps")}

    table = [row("System 1 judge", rows.get("system1")), row("BSM", rows.get("system2")),
             row("Distill BSM (no curation)", nofilter, cur(rb)),
             row("Distill BSM (swap consistency)", rows.get("distilled"), cur(ra) if rows.get("distilled") else {})]
    c = pa.cfg
    res = {"rows": table, "notes": notes, "overrides": ov, "setup": setup_of(c),
           "stages_wall_s": {"swap": ra.get("stages_wall_s"), "nofilter": rb.get("stages_wall_s") if rb else None}}
    md = render(res)
    write_result("bsm", res, md, figure(res))
    print(md)


def setup_of(c) -> dict:
    return {"n_train": c.task.n_train, "n_eval": c.task.n_eval, "max_criteria": c.method.options.get("max_criteria", 5),
            "n": c.method.n, "temperature": c.method.temperature}


def render(res: dict) -> str:
    """The markdown of a result (also used to re-render a committed result from its JSON)."""
    su = res.get("setup") or setup_of(load_config(ROOT / "configs" / "bsm_judge.yaml", res["overrides"]))
    rows = []
    for r in res["rows"]:
        tok = f"{r['tokens_per_verdict']:.1f}" if r["tokens_per_verdict"] is not None else "-"
        ki = f", {r['kept_inputs']} inputs" if r.get("kept_inputs") not in (None, r.get("kept")) else ""
        kept = f"{r['kept']}{ki} ({r.get('targets_correct')}/{r.get('targets_checked')})" \
            if r.get("kept") is not None else ""
        rows.append([r["row"], str(r["n"] or "-"), pct(r["agreement"]), ci(r["agreement_ci95"]), pct(r["agreement_non_tie"]),
                     pct(r["inconsistent"]), ci(r["inconsistent_ci95"]), tok, kept])
    table = Table(["row", "n", "agreement % (ties count against)", "95% CI", "agreement % on non-tie labels",
                   "inconsistent %", "95% CI", "tokens per verdict", "training pairs (kept inputs' targets correct)"],
                  rows, align="lrrlrrlrl")
    lines = ["# Branch-Solve-Merge judge distillation on the embedded model", "",
             "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) through llama-server. Pairs: a GSM8K reference solution against "
             "the same solution with one number changed (the reference is the better response; A/B balanced). "
             f"{su['n_train']} unlabeled train pairs, {su['n_eval']} eval pairs; BSM plans up to "
             f"{su['max_criteria']} criteria, {su['n']} sample(s) per order at temperature "
             f"{su['temperature']}; evaluation greedy, every judge on both orders (a flipped verdict is a tie). "
             "Distilled judges answer directly (LoRA, served as base GGUF + LoRA GGUF).", "", table.markdown()]
    lines += [""] + [f"- {n}" for n in res["notes"]]
    lines.append("- Curation is checked afterwards against the known labels (never given to the curator). Swap "
                 "consistency trains on both orders of each kept pair (training pairs = 2 x kept inputs); the "
                 "uncurated run trains on the first BSM verdict of the original order only.")
    return "\n".join(lines)


ROLE = {"System 1 judge": "system1", "BSM": "system2"}


def figure(res: dict) -> str:
    return points_svg(res["rows"], lambda r: r["row"], lambda r: ROLE.get(r["row"], "distilled"), y_key="agreement",
                      ci_key="agreement_ci95", x_key="tokens_per_verdict", y_label="agreement with the label % (95% CI)")


if __name__ == "__main__":
    main()
