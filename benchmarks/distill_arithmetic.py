"""System 1 / CoT / CoT maj@k / distilled on arithmetic (depths 1-3) and a GSM8K subset.

    python benchmarks/distill_arithmetic.py [--depths 1 2 3] [--gsm8k] [--data ../shared/data] [key=value ...]

Each setting is a normal `s2distill run` of configs/demo.yaml (arithmetic) or
configs/gsm8k_local.yaml (GSM8K) in runs/bench/<name>; finished stages are reused, so
the script can be stopped and restarted. Extra key=value overrides apply to every run.
Writes benchmarks/results/distill_arithmetic.{json,md}: rows of
{task, depth, system, n, accuracy, ci95, mean_generated_tokens}.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import RESULTS, Table, ci, pct, points_svg, write_result, parse_with_overrides  # noqa: E402

from s2distill.config import load_config  # noqa: E402
from s2distill.pipeline import Pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_NAMES = {"system1": "system1", "system2": "cot", "system2_maj": "cot_maj@k", "distilled": "distilled"}


def run_one(name: str, config: Path, overrides: list[str]) -> dict:
    cfg = load_config(config, [f"name={name}", *overrides])
    return Pipeline(cfg, run_dir=ROOT / "runs" / "bench" / name).run()


def rows_of(report: dict, task: str, depth) -> list[dict]:
    out = []
    for r in report["rows"]:
        out.append({"task": task, "depth": depth, "system": SYSTEM_NAMES[r["role"]], "label": r["system"], "n": r["n"],
                    "accuracy": r["accuracy"], "ci95": r["ci95"], "mean_generated_tokens": r["mean_generated_tokens"],
                    "calls_per_answer": r["calls_per_answer"], "wall_s_per_answer": r["wall_s_per_answer"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depths", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--gsm8k", action="store_true")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("overrides", nargs="*")
    args = parse_with_overrides(ap)

    partial = RESULTS / "distill_arithmetic.partial.json"
    done: dict = json.loads(partial.read_text()) if partial.exists() else {}
    settings = [(f"arith_d{d}", "arithmetic", d, ROOT / "configs" / "demo.yaml", [f"task.options.depth={d}"])
                for d in args.depths]
    if args.gsm8k:
        settings.append(("gsm8k", "gsm8k", None, ROOT / "configs" / "gsm8k_local.yaml",
                         [f"task.options.source={Path(args.data) / 'gsm8k'}"]))
    for name, task, depth, config, ov in settings:
        report = run_one(name, config, ov + args.overrides)
        done[name] = {"rows": rows_of(report, task, depth), "curation": report["curation"], "train": report["train"],
                      "config": str(config.relative_to(ROOT)), "overrides": ov + args.overrides,
                      "n_train": load_config(config, ov + args.overrides).task.n_train}
        partial.write_text(json.dumps(done, indent=2))

    res = {"rows": [r for v in done.values() for r in v["rows"]], "runs": done}
    md = render(res)
    write_result("distill_arithmetic", res, md, figure(res))
    print(md)


def render(res: dict) -> str:
    """The markdown of a result (also used to re-render a committed result from its JSON)."""
    rows, done = res["rows"], res["runs"]
    table = Table(["task", "depth", "system", "n", "accuracy %", "95% CI", "mean generated tokens"],
                  [[r["task"], str(r["depth"] or "-"), r["system"], str(r["n"]), pct(r["accuracy"]), ci(r["ci95"]),
                    f"{r['mean_generated_tokens']:.1f}"] for r in rows], align="lrlrrlr")
    lines = ["# Distilling CoT into System 1: arithmetic word problems and GSM8K",
             "", "Embedded Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) through llama-server; CoT = 3-shot with worked "
             "exemplars (configs/demo.yaml, configs/gsm8k_local.yaml), 4 samples per unlabeled input, "
             "self-consistency curation, LoRA; the distilled model is served as base GGUF + LoRA GGUF. "
             "GSM8K: 48 unlabeled train problems, a 30-problem subset of test.", "", table.markdown()]
    lines.append("")
    for name, v in done.items():
        c = v["curation"]
        q = c.get("quality_checked_afterwards") or {}
        t = v.get("train") or {}
        lines.append(f"- {name}: {v['n_train']} unlabeled inputs, kept {c['kept']} after curation "
                     f"({q.get('correct_targets', '?')}/{q.get('checked', '?')} targets correct, checked afterwards); "
                     f"{t.get('steps', '?')} LoRA steps, peak RSS {t.get('peak_rss_bytes', 0) / 2**30:.2f} GiB")
    return "\n".join(lines)


ROLE = {v: k for k, v in SYSTEM_NAMES.items()}


def figure(res: dict) -> str:
    return points_svg(res["rows"], lambda r: f"{r['task']}{' d' + str(r['depth']) if r['depth'] else ''}: {r['system']}",
                      lambda r: ROLE.get(r["system"], r["system"]))


if __name__ == "__main__":
    main()
