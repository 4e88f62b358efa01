"""How well does the label-free evaluation judge the distilled model? Estimated vs true accuracy,
and the ship/keep verdict vs what the labels say, on the committed settings.

    python benchmarks/label_free.py [--settings arith_d1 arith_d2 cf1 arith_d3 gsm8k] [--data ../shared/data]
                                    [--render] [key=value ...]

Each setting is a normal pipeline run (the configs of benchmarks/experiments/distill_arithmetic.yaml and
benchmarks/experiments/rar.yaml, with System 2 maj@k evaluated, which the label-free numbers vote with) in
runs/label_free/<setting>; finished stages are reused, so the script can be stopped and
restarted, and run one setting at a time. Finished settings are kept in
benchmarks/results/label_free.partial.json (git-ignored); benchmarks/results/label_free.{json,md}
are written when every requested setting has finished (``--render``: from what has finished).

Per setting, for the distilled model: n, true accuracy (gold), the label-free estimate (agreement
with System 2's majority; the support-share estimate is also given), |estimate - true|, the
agreement's 95% interval, the verdict from label-free numbers only, and the verdict the labels give
(ship when the distilled accuracy is >= 90% of System 2's greedy accuracy, else keep).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from common import RESULTS, Table, ci, pct, run_or_note, write_result, parse_with_overrides  # noqa: E402

from s2distill.config import load_config  # noqa: E402
from s2distill.pipeline import Pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ALL_SYSTEMS = "eval.systems=[system1,system2,system2_maj,distilled]"
SETTINGS = {  # name: (config, overrides, label)
    "arith_d1": ("demo", ["task.options.depth=1"], "arithmetic, depth 1 (CoT)"),
    "arith_d2": ("demo", ["task.options.depth=2"], "arithmetic, depth 2 (CoT)"),
    "arith_d3": ("demo", ["task.options.depth=3"], "arithmetic, depth 3 (CoT)"),
    "cf1": ("rar_coin_flip", ["task.options.n_people=1", "method.name=rar", "method.options.steps=2",
                              "eval.rewordings=0"], "coin flip, 1 person (2-step RaR)"),
    "gsm8k": ("gsm8k_local", [], "GSM8K subset (CoT)"),
}
SHIP_RATIO = 0.9  # the labels' verdict: ship when distilled accuracy >= 90% of System 2's


def overrides_of(name: str, data: str) -> list[str]:
    ov = [*SETTINGS[name][1], ALL_SYSTEMS]
    if name == "gsm8k":
        ov.append(f"task.options.source={Path(data) / 'gsm8k'}")
    return ov


def label_verdict(distilled_acc: float | None, system2_acc: float | None) -> str | None:
    if distilled_acc is None or system2_acc is None:
        return None
    return "ship" if distilled_acc >= SHIP_RATIO * system2_acc else "keep"


def result_row(name: str, report: dict, notes: list[str]) -> dict:
    rows = {r["role"]: r for r in report["rows"]}
    lf = (report.get("label_free") or {})
    d, ld = rows.get("distilled"), lf.get("distilled")
    s2 = rows.get("system2")
    v = report.get("verdict") or {}
    true = d["accuracy"] if d else None
    est = ld["agreement"] if ld else None
    by_labels = label_verdict(true, s2["accuracy"] if s2 else None)
    return {"setting": name, "label": SETTINGS[name][2], "n": d["n"] if d else None, "true_accuracy": true,
            "estimated_accuracy": est, "estimate": "agreement with System 2's majority (maj@k samples)",
            "abs_error": abs(est - true) if est is not None and true is not None else None,
            "agreement_with_system2": est, "agreement_ci95": ld["agreement_ci95"] if ld else None,
            "support_share_estimate": ld["support_share"] if ld else None,
            "support_share_abs_error": abs(ld["support_share"] - true) if ld and true is not None else None,
            "confident_agreement": ld["confident_agreement"] if ld else None,
            "n_confident": ld["n_confident"] if ld else None,
            "system2_mean_vote_share": (lf.get("system2_maj") or {}).get("mean_vote_share"),
            "system2_accuracy": s2["accuracy"] if s2 else None,
            "system2_maj_accuracy": rows["system2_maj"]["accuracy"] if "system2_maj" in rows else None,
            "system1_accuracy": rows["system1"]["accuracy"] if "system1" in rows else None,
            "system1_agreement_with_system2": (lf.get("system1") or {}).get("agreement"),
            "distilled_tokens": d["mean_generated_tokens"] if d else None,
            "system2_tokens": s2["mean_generated_tokens"] if s2 else None,
            "verdict": v.get("decision"), "verdict_line": v.get("line"), "verdict_reasons": v.get("reasons"),
            "verdict_by_labels": by_labels,
            "verdict_matches_labels": (v.get("decision") == by_labels) if by_labels and v.get("decision") else None,
            "notes": notes}


def run_setting(name: str, args) -> dict:
    config, _, _ = SETTINGS[name]
    ov = [f"name=label_free_{name}", *overrides_of(name, args.data), *args.overrides]
    cfg = load_config(ROOT / "configs" / f"{config}.yaml", ov)
    notes: list[str] = []
    report = run_or_note(Pipeline(cfg, run_dir=Path("runs") / "label_free" / name), name, notes)
    row = result_row(name, report, notes)
    row.update(config=f"configs/{config}.yaml", overrides=ov[1:], n_train=cfg.task.n_train, method_n=cfg.method.n,
               k=cfg.eval.k, confident_share=cfg.eval.confident_share, max_disagreement=cfg.eval.max_disagreement,
               stages_wall_s=report.get("stages_wall_s"),
               command=" ".join(["python", "benchmarks/label_free.py", *sys.argv[1:]]))
    return row


def render(res: dict) -> str:
    """The markdown of a result (also used to re-render a committed result from its JSON)."""
    rows, missing, notes = res["rows"], res.get("not_run") or [], res.get("notes") or []
    cells = []
    for r in rows:
        ss = (f"{pct(r['support_share_estimate'])} ({pct(r['support_share_abs_error'])})"
              if r["support_share_estimate"] is not None else "-")
        match = r["verdict_matches_labels"]
        cells.append([r["label"], r["n"] or "-", pct(r["true_accuracy"]), pct(r["estimated_accuracy"]),
                      pct(r["abs_error"]), ci(r["agreement_ci95"]), ss, pct(r["system2_accuracy"]),
                      pct(r["system2_mean_vote_share"]), r["verdict"] or "-", r["verdict_by_labels"] or "-",
                      "-" if match is None else ("yes" if match else "NO")])
    table = Table(["setting", "n", "true accuracy %", "estimate % (agreement)", "abs error (points)",
                   "agreement 95% CI", "support-share estimate % (abs error)", "System 2 accuracy %",
                   "System 2 mean vote share %", "verdict", "verdict by labels", "match"], cells, align="lrrrrlrrrlll")
    lines = ["# Label-free evaluation vs the labels: is the distilled model good enough to replace System 2?", "",
             "Embedded Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) through llama-server; each setting is a full pipeline run "
             "(System 2 on unlabeled train inputs, self-consistency curation, LoRA, evaluation). The label-free "
             "numbers use only System 2's maj@k samples on the eval inputs (no gold): the estimate of the distilled "
             "model's accuracy is its agreement with System 2's majority; the support share (share of System 2 "
             "samples that back its answer) is the second estimate. Verdict (label-free): ship when the upper 95% "
             "bound of disagreement is <= eval.max_disagreement (10%), System 2's mean vote share >= "
             "eval.confident_share (75%) and the distilled model saves tokens. Verdict by labels: ship when distilled "
             f"accuracy >= {SHIP_RATIO:.0%} of System 2's (greedy) accuracy.", "", table.markdown(), ""]
    for r in rows:
        lines.append(f"- {r['setting']}: {r['verdict_line']} (`{r.get('command', '?')}`, {r['n_train']} unlabeled "
                     f"train inputs)")
        lines += [f"  - note: {n}" for n in r["notes"]]
    if missing:
        lines += ["", f"Not run (time): {', '.join(missing)}."]
    lines += [f"\nNote: {n}" for n in notes]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--settings", nargs="*", default=["arith_d1", "arith_d2", "cf1", "arith_d3", "gsm8k"],
                    choices=list(SETTINGS))
    ap.add_argument("--data", default=str(Path("..") / "shared" / "data"),
                    help="the shared data folder (GSM8K), relative to the repository root or absolute")
    ap.add_argument("--render", action="store_true", help="only write the result files from the settings finished")
    ap.add_argument("--note", action="append", default=[], help="a line for the result's notes (repeatable)")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = parse_with_overrides(ap)
    os.chdir(ROOT)  # relative paths (runs/, --data) are the repository's: no machine path in the results

    partial = RESULTS / "label_free.partial.json"
    done: dict = json.loads(partial.read_text()) if partial.exists() else {}
    if not args.render:
        for name in args.settings:
            done[name] = run_setting(name, args)
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(done, indent=2))
            print(json.dumps({k: done[name][k] for k in ("setting", "true_accuracy", "estimated_accuracy",
                                                           "verdict", "verdict_by_labels")}), flush=True)
    rows = [done[n] for n in SETTINGS if n in done]
    missing = [n for n in SETTINGS if n not in done]
    res = {"rows": rows, "not_run": missing, "settings": list(done), "notes": args.note}
    md = render(res)
    write_result("label_free", res, md)
    print(md)


if __name__ == "__main__":
    main()
