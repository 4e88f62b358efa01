"""The paper's RaR table: System 1, 1-step RaR, 2-step RaR and three distillations.

    python benchmarks/rar.py [--settings ll2 cf1 ...] [--few-shot K] [--base-only] [--n-train N] [key=value ...]

Per setting (last-letter with 2 / 4 names, coin flip with 2 / 4 people, optionally few-shot)
every row is a normal pipeline run of configs/rar_last_letter.yaml or
configs/rar_coin_flip.yaml in runs/bench/rar/<setting>/<run>:

- ``rar2``:     2-step RaR x n samples, self-consistency  -> System 1, 2-step RaR, Distill RaR (filtered)
- ``nofilter``: the same samples (cache copied), curate none -> Distill RaR (unfiltered)
- ``direct``:   System 1 x n samples, self-consistency    -> Distill System 1 (the paper's control)
- ``rar1``:     1-step RaR on the eval split only           -> 1-step RaR

System 1 and every distilled model are also scored under ``--rewordings`` rewordings of the
instruction (robustness). Finished stages are reused, so the script can be stopped and
restarted; results go to benchmarks/results/rar.{json,md} after every run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import RESULTS, Table, ci, pct, points_svg, run_or_note, share_cache, write_result, parse_with_overrides  # noqa: E402

from s2distill.config import load_config  # noqa: E402
from s2distill.pipeline import Pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {  # name: (config, task options, label)
    "ll2": ("rar_last_letter", ["task.options.n_names=2"], "last-letter, 2 names"),
    "ll4": ("rar_last_letter", ["task.options.n_names=4"], "last-letter, 4 names"),
    "cf1": ("rar_coin_flip", ["task.options.n_people=1"], "coin flip, 1 person"),
    "cf2": ("rar_coin_flip", ["task.options.n_people=2"], "coin flip, 2 people"),
    "cf4": ("rar_coin_flip", ["task.options.n_people=4"], "coin flip, 4 people"),
}
ROWS = ("System 1", "1-step RaR", "2-step RaR", "Distill System 1", "Distill 2-step RaR (unfiltered)",
        "Distill 2-step RaR (filtered)")


def pipeline(setting: str, run: str, config: str, overrides: list[str]) -> Pipeline:
    cfg = load_config(ROOT / "configs" / f"{config}.yaml", [f"name={setting}-{run}", *overrides])
    return Pipeline(cfg, run_dir=ROOT / "runs" / "bench" / "rar" / setting / run)


def row(name: str, report_row: dict | None, extra: dict | None = None) -> dict:
    r = report_row or {}
    return {"row": name, "n": r.get("n"), "accuracy": r.get("accuracy"), "ci95": r.get("ci95"),
            "mean_generated_tokens": r.get("mean_generated_tokens"), "calls_per_answer": r.get("calls_per_answer"),
            **(extra or {})}


def distill_info(report: dict) -> dict:
    c, t = report["curation"], report.get("train") or {}
    q = c.get("quality_checked_afterwards") or {}
    rob = report.get("robustness", {}).get("distilled")
    return {"kept": c["kept"], "rejected": c["rejected"], "reject_reasons": c.get("reject_reasons"),
            "targets_correct": q.get("correct_targets"), "steps": t.get("steps"),
            "robustness": rob}


def run_setting(key: str, name: str, args) -> dict:
    config, task_ov, label = SETTINGS[name]
    label += "" if args.few_shot is None else f", {args.few_shot}-shot"
    few = [f"method.few_shot={args.few_shot}"] if args.few_shot is not None else []
    given = {"task.n_train": args.n_train, "task.n_eval": args.n_eval, "method.n": args.n,
             "eval.rewordings": args.rewordings}  # unset: the config's value
    common = [*task_ov, *(f"{k}={v}" for k, v in given.items() if v is not None), *args.overrides]
    rar = [*common, *few, "method.name=rar", "method.options.steps=2"]
    out: dict = {"label": label, "config": f"configs/{config}.yaml", "overrides": rar, "rows": [], "notes": [],
                 "setup": {"base_only": args.base_only}, "command": " ".join(["python", *sys.argv])}

    # 1-step RaR: evaluation only, no training data needed
    rep1 = pipeline(key, "rar1", config, [*common, *few, "method.name=rar", "method.options.steps=1"]).evaluate_base(
        ("system2",))

    pa = pipeline(key, "rar2", config, [*rar, "curate.name=self_consistency"])
    c = pa.cfg
    out["setup"].update(n_train=c.task.n_train, n_eval=c.task.n_eval, n=c.method.n, few_shot=c.method.few_shot,
                        rewordings=c.eval.rewordings, min_votes=c.curate.min_votes,
                        min_agreement=c.curate.min_agreement, epochs=c.train.epochs)
    if args.base_only:  # the three undistilled rows only (evaluation, no sampling of train inputs)
        ra = pa.evaluate_base(("system1", "system2"))
    else:
        ra = run_or_note(pa, "Distill 2-step RaR (filtered)", out["notes"])
    rows = {r["role"]: r for r in ra["rows"]}
    out["rows"] += [row("System 1", rows["system1"], {"robustness": ra["robustness"].get("system1")}),
                    row("1-step RaR", next(r for r in rep1["rows"] if r["role"] == "system2")),
                    row("2-step RaR", rows["system2"])]
    if args.base_only:
        out["notes"].append("base rows only (--base-only): no distillation run for this setting")
        return out

    results = {"Distill 2-step RaR (filtered)": (ra if rows.get("distilled") else None, rows.get("distilled"))}
    for run, ov in (("direct", [*common, "method.name=direct", "method.max_tokens=16", "curate.name=self_consistency",
                                "eval.systems=[system1,distilled]"]),
                    ("nofilter", [*rar, "curate.name=none", "eval.systems=[system1,distilled]"])):
        p = pipeline(key, run, config, ov)
        share_cache(pa, p)
        label = "Distill System 1" if run == "direct" else "Distill 2-step RaR (unfiltered)"
        rep = run_or_note(p, label, out["notes"])
        r = {x["role"]: x for x in rep["rows"]}.get("distilled")
        results[label] = (rep if r else None, r)
    for label in ROWS[3:]:
        rep, r = results[label]
        out["rows"].append(row(label, r, distill_info(rep) if rep else {"kept": 0}))
    out["generation"] = ra["generation"]
    return out


def render(res: dict) -> str:
    """The markdown of a result (also used to re-render a committed result from its JSON)."""
    done = res["settings"]
    lines = ["# Rephrase-and-Respond distillation (the paper's Table 1) on the embedded model", "",
             "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) through llama-server, greedy decoding at evaluation. "
             "Distilled rows: LoRA on (System 1 prompt, curated answer), served as base GGUF + LoRA GGUF, "
             "answering directly. Training samples at temperature 0.7. Robustness: accuracy under the configured "
             "wording / each rewording of the instruction (spread = max - min).", ""]
    for name, v in done.items():
        su = v["setup"]
        rows = []
        for r in v["rows"]:
            tok = f"{r['mean_generated_tokens']:.1f}" if r.get("mean_generated_tokens") is not None else "-"
            tc = r.get("targets_correct")
            rob = r.get("robustness")
            robs = (" / ".join(pct(a) for a in rob["accuracy_per_wording"]) + f" ({pct(rob['spread'])})") if rob \
                else ""
            rows.append([r["row"], str(r["n"] or "-"), pct(r["accuracy"]), ci(r.get("ci95")), tok, str(r.get("kept", "")),
                         "" if tc is None else str(tc), robs])
        table = Table(["row", "n", "accuracy %", "95% CI", "mean generated tokens", "kept for training",
                       "targets correct", "accuracy over wordings % (spread)"], rows, align="lrrlrrrl")
        lines += [f"## {v['label']} (`{name}`)", "",
                  f"{su['n_eval']} eval inputs, {su['few_shot']}-shot RaR; " + (
                      "base rows only." if su["base_only"] else
                      f"{su['n_train']} unlabeled train inputs x {su['n']} samples, self-consistency keeps >= "
                      f"{su['min_votes']} agreeing votes; LoRA {su['epochs']} epochs."),
                  f"Command: `{v.get('command', '?')}`", "", table.markdown()]
        lines += [f"- {n}" for n in v["notes"]] + [""]
    return "\n".join(lines)


ROLE = {"System 1": "system1", "2-step RaR": "system2", "1-step RaR": "system2_maj"}


def figure(res: dict) -> str:
    rows = [{**r, "label": f"{k}: {r['row']}"} for k, v in res["settings"].items() for r in v["rows"]]
    return points_svg(rows, lambda r: r["label"], lambda r: ROLE.get(r["row"], "distilled" if "Distill" in r["row"]
                                                                     else r["row"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--settings", nargs="*", default=["ll2", "cf1", "ll4"], choices=sorted(SETTINGS))
    ap.add_argument("--n-train", type=int)
    ap.add_argument("--n-eval", type=int)
    ap.add_argument("--n", type=int, help="samples per unlabeled input (the paper: 8; default: the config's)")
    ap.add_argument("--few-shot", type=int, help="default: the config's method.few_shot")
    ap.add_argument("--rewordings", type=int)
    ap.add_argument("--base-only", action="store_true", help="System 1, 1- and 2-step RaR rows only")
    ap.add_argument("--out", default="rar")
    ap.add_argument("--render", action="store_true", help="only rewrite the result files from the runs done")
    ap.add_argument("overrides", nargs="*")
    args = parse_with_overrides(ap)

    partial = RESULTS / f"{args.out}.partial.json"
    done: dict = json.loads(partial.read_text()) if partial.exists() else {}
    if args.render:  # rewrite rar.{json,md} from the settings already run
        res = {"settings": done, "args": vars(args)}
        write_result(args.out, res, render(res), figure(res))
        return
    for name in args.settings:
        key = (f"{name}-fs{args.few_shot}" if args.few_shot is not None else name) + ("-base" if args.base_only else "")
        done[key] = run_setting(key, name, args)
        partial.write_text(json.dumps(done, indent=2))
        res = {"settings": done, "args": vars(args)}
        md = render(res)
        write_result(args.out, res, md, figure(res))
        print(md, flush=True)


if __name__ == "__main__":
    main()
