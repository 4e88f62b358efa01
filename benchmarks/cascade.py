"""Does the cascade save System 2's tokens without losing its accuracy? Calibrated without labels on
one half of the held-out inputs, measured with labels on the other half.

    python benchmarks/cascade.py [--settings arith_d1 arith_d2] [--render] [key=value ...]

Each setting is a normal pipeline run (configs/demo.yaml at a depth, 160 held-out inputs so that each
half has about 80, System 2 greedy as the fallback) in runs/cascade/<setting>; finished stages are
reused, so the script can be stopped and restarted. Per setting and confidence signal (``logprob``: the
distilled answer's probability from llama-server's logprobs; ``agreement``: the base System 1 agrees with
the distilled model): the threshold calibrated on the calibration half (disagreement with System 2's
maj@k majority at most eval.max_disagreement with 95% confidence), then on the test half: coverage (share
answered by the distilled model), the cascade's accuracy against System 2 greedy's and the distilled
model's, tokens per input (System 1 + signal + System 2 on routed inputs) against System 2's, and the
realised disagreement on the answered inputs (the guarantee held when it is at most the bound's target).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import RESULTS, Table, parse_with_overrides, pct, write_result  # noqa: E402

from s2distill.config import load_config  # noqa: E402
from s2distill.pipeline import Pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {  # name: (config, overrides, label)
    "arith_d1": ("demo", ["task.options.depth=1"], "arithmetic, depth 1 (3-shot CoT)"),
    "arith_d2": ("demo", ["task.options.depth=2"], "arithmetic, depth 2 (3-shot CoT)"),
    "arith_d1_big": ("demo", ["task.options.depth=1", "task.options.max_value=60"],
                     "arithmetic, depth 1, numbers up to 60 (3-shot CoT)"),
    # 2-step RaR costs about 100 tokens a call: 120 held-out inputs (60 per half) to fit the 2-core CPU
    "cf1": ("rar_coin_flip", ["task.options.n_people=1", "eval.rewordings=0", "task.n_eval=120"],
            "coin flip, 1 person (3-shot 2-step RaR, 40 train inputs, 120 held-out)"),
    "cf2": ("rar_coin_flip", ["task.options.n_people=2", "eval.rewordings=0", "task.n_eval=120"],
            "coin flip, 2 people (3-shot 2-step RaR, 40 train inputs, 120 held-out)"),
    "ll2": ("rar_last_letter", ["task.options.n_names=2", "eval.rewordings=0", "task.n_eval=120"],
            "last letter, 2 names (3-shot 2-step RaR, 40 train inputs, 120 held-out)"),
    "arith_d1_99": ("demo", ["task.options.depth=1", "task.options.max_value=99"],
                    "arithmetic, depth 1, numbers up to 99 (3-shot CoT)"),
    # the same with twice the held-out inputs (about 160 to calibrate on): what more calibration data buys
    "arith_d1_99_n320": ("demo", ["task.options.depth=1", "task.options.max_value=99", "task.n_eval=320"],
                         "arithmetic, depth 1, numbers up to 99, 320 held-out inputs (3-shot CoT)"),
    # the demo's own task (numbers up to 20) with 320 held-out inputs: arith_d1 missed by 2.9 points on 91
    "arith_d1_n320": ("demo", ["task.options.depth=1", "task.n_eval=320"],
                      "arithmetic, depth 1, 320 held-out inputs (3-shot CoT)"),
    # two steps of adding and subtracting (no multiplication, which the distilled model of arith_d2 never learnt)
    "arith_d2_addsub_n320": ("demo", ["task.options.depth=2", "task.options.ops=[add,sub]", "task.n_eval=320"],
                             "arithmetic, depth 2, add and subtract only, 320 held-out inputs (3-shot CoT)"),
    # teacher -> student: the 1.5B's System 2 (generation, greedy, maj@3, the fallback) and the 0.5B distilled on it;
    # needs pip install 's2distill[embedded-1-5b]'
    "ts_cf2": ("teacher_student", ["task.options.n_people=2"],
               "coin flip, 2 people, teacher 1.5B System 2 -> 0.5B student (3-shot CoT, 24 train inputs, maj@3)"),
    "ts_arith_d1_99": ("demo", ["teacher.model=qwen2.5-coder-1.5b", "teacher.backend.parallel=8", "task.options.depth=1",
                                "task.options.max_value=99", "task.n_eval=240", "eval.k=3"],
                       "arithmetic, depth 1, numbers up to 99, teacher 1.5B System 2 -> 0.5B student (3-shot CoT, "
                       "96 train inputs, 240 held-out, maj@3)"),
}
# teacher -> student on the task where the self-distilled cascade answered 78.3% with no disagreement (arith_d1_big),
# 320 held-out inputs; the default eval.max_disagreement (0.10) and every other setting fixed before the run
SETTINGS["ts_arith_d1_big_n320"] = (
    "demo", ["teacher.model=qwen2.5-coder-1.5b", "teacher.backend.parallel=8", "task.options.depth=1",
             "task.options.max_value=60", "task.n_eval=320", "eval.k=3", "eval.retention=false"],
    "arithmetic, depth 1, numbers up to 60, teacher 1.5B System 2 -> 0.5B student (3-shot CoT, 96 train inputs, "
    "320 held-out, maj@3)")
# its replication on fresh problems (task.seed=1), fixed before either was run
SETTINGS["ts_arith_d1_big_n320_s1"] = ("demo", [*SETTINGS["ts_arith_d1_big_n320"][1], "task.seed=1"],
                                       "the same on fresh problems (task.seed 1)")
# the same on fresh problems (task.seed=1) with the 3% target fixed before the run
SETTINGS["ts_arith_d1_99_s1_md3"] = (
    "demo", [*SETTINGS["ts_arith_d1_99"][1], "task.seed=1", "eval.max_disagreement=0.03", "eval.retention=false"],
    "the same on fresh problems (task.seed 1), eval.max_disagreement 0.03 set before the run")
# a user who wants the cascade within 2 points of System 2 says so: eval.cascade_risk=all bounds the share of all
# inputs where the cascade's answer is not System 2's majority at 2% (docs/cascade.md); on fresh problems
# (task.seed=2), everything fixed before the run. The same run at the default (answered, 10%) for comparison:
# it shares the run directory (RUN_OF), so its rows cost no model call.
SETTINGS["ts_arith_d1_big_n320_s2_all2"] = (
    "demo", [*SETTINGS["ts_arith_d1_big_n320"][1], "task.seed=2", "eval.cascade_risk=all", "eval.max_disagreement=0.02"],
    "teacher 1.5B -> 0.5B student, numbers up to 60, 320 held-out, fresh problems (task.seed 2), eval.cascade_risk=all "
    "and eval.max_disagreement 0.02 set before the run")
SETTINGS["ts_arith_d1_big_n320_s2"] = ("demo", [*SETTINGS["ts_arith_d1_big_n320"][1], "task.seed=2"],
                                       "the same run at the default target (answered inputs, 10%)")
# the self-distilled 0.5B on the same task (arith_d1_big: 78.3% answered with no disagreement on 69 test inputs),
# 320 held-out inputs, fresh problems, the same 2% target on all inputs fixed before the run
SETTINGS["arith_d1_big_n320_s2_all2"] = (
    "demo", ["task.options.depth=1", "task.options.max_value=60", "task.n_eval=320", "task.seed=2",
             "eval.retention=false", "eval.cascade_risk=all", "eval.max_disagreement=0.02"],
    "arithmetic, depth 1, numbers up to 60, self-distilled 0.5B, 320 held-out, fresh problems (task.seed 2), "
    "eval.cascade_risk=all and eval.max_disagreement 0.02 set before the run")
SETTINGS["arith_d1_big_n320_s2"] = ("demo", [o for o in SETTINGS["arith_d1_big_n320_s2_all2"][1]
                                             if not o.startswith(("eval.cascade_risk", "eval.max_disagreement"))],
                                    "the same run at the default target (answered inputs, 10%)")
# the replication of the teacher -> student row at 2% of all inputs on fresh problems (task.seed=3), fixed before it ran
SETTINGS["ts_arith_d1_big_n320_s3_all2"] = (
    "demo", [*SETTINGS["ts_arith_d1_big_n320_s2_all2"][1][:-3], "task.seed=3", "eval.cascade_risk=all",
             "eval.max_disagreement=0.02"],
    "its replication on fresh problems (task.seed 3), the same target fixed before the run")
SETTINGS["ts_arith_d1_big_n320_s3"] = ("demo", [*SETTINGS["ts_arith_d1_big_n320"][1], "task.seed=3"],
                                       "the same run at the default target (answered inputs, 10%)")
RUN_OF = {"ts_arith_d1_big_n320_s2": "ts_arith_d1_big_n320_s2_all2", "arith_d1_big_n320_s2": "arith_d1_big_n320_s2_all2",
          "ts_arith_d1_big_n320_s3": "ts_arith_d1_big_n320_s3_all2"}
# the README's own-data files (no gold in them), with a labeled copy written for scoring only: the gold of the
# held-out inputs is what benchmarks/own_data.py knows (it made the questions); curation never sees a label
OWN = {"own_numeric": ("own_questions.jsonl", "body", "ticket",
                       ["task.options.answer_format=number", "task.options.eval_fraction=0.55", "task.n_train=96",
                        "task.n_eval=160"]),
       "own_yes_no": ("own_yes_no.jsonl", "claim", "key",
                      ["task.options.answer_format=yes_no", "task.options.exemplars_path=examples/own_yes_no_exemplars.jsonl",
                       "task.options.eval_fraction=0.67", "task.n_train=40", "task.n_eval=80"]),
       "own_choice": ("own_choice.jsonl", "stem", "qid",
                      ["task.options.answer_format=choice", "task.options.choices_field=options",
                       "task.options.exemplars_path=examples/own_choice_exemplars.jsonl",
                       "task.options.eval_fraction=0.67", "task.n_train=72", "task.n_eval=160"])}
SETTINGS.update({
    "own_numeric": ("own_data", [], "own-data numeric file, examples/own_questions.jsonl (3-shot CoT, 96 train inputs)"),
    "own_yes_no": ("own_data", [], "own-data yes/no file, examples/own_yes_no.jsonl (3-shot CoT, 40 train inputs, "
                                   "72 held-out)"),
    "own_choice": ("own_data", [], "own-data multiple-choice file, examples/own_choice.jsonl (four close numeric "
                                   "options, 3-shot CoT, 72 train inputs)"),
})


def own_overrides(name: str) -> list[str]:
    """Write the labeled copy of an own-data file under runs/cascade/data/ and point the run at it."""
    from own_data import answers, choice_answers

    src, qf, idf, extra = OWN[name]
    truth = choice_answers() if name == "own_choice" else answers()
    out = ROOT / "runs" / "cascade" / "data" / src.replace(".jsonl", ".labeled.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(x) for x in (ROOT / "examples" / src).read_text().splitlines() if x.strip()]
    out.write_text("".join(json.dumps({**r, "gold": truth[r[qf]]}) + "\n" for r in rows))
    return [f"task.options.path={out}", f"task.options.question_field={qf}", f"task.options.id_field={idf}",
            "task.options.answer_field=gold", *extra]


COMMON = ["task.n_eval=160", "eval.systems=[system1,system2,system2_maj,distilled]", "eval.cascade_fallback=greedy"]
PARTIAL = RESULTS / "cascade.partial.json"


def committed() -> dict:
    """The settings of the committed result (their run directories need not exist here): a new setting is
    added to them instead of replacing the table."""
    prev = RESULTS / "cascade.json"
    if not prev.is_file():
        return {}
    res = json.loads(prev.read_text())
    return {n: {"rows": [r for r in res["rows"] if r["setting"] == n], "max_disagreement": res["max_disagreement"],
                "rows_report": rep} for n, rep in res["systems"].items()}


def rows_of(name: str, report: dict) -> list[dict]:
    cas = report.get("cascade") or {}
    out = []
    for signal, s in (cas.get("signals") or {}).items():
        if "split" not in s:
            out.append({"setting": name, "signal": signal, "note": s.get("unavailable")})
            continue
        sp, c, t = s["split"], s["split"]["calibration"], s["split"]["test"]
        s2t = sp["system2_tokens"]
        out.append({"setting": name, "label": SETTINGS[name][2], "signal": signal, "n_cal": c["n"], "n_test": t["n"],
                    "threshold": c["threshold"], "coverage": t["coverage"], "cascade_accuracy": t["accuracy"],
                    "system2_accuracy": sp["system2_accuracy"], "distilled_accuracy": sp["distilled_accuracy"],
                    "cascade_tokens": t["tokens"], "system2_tokens": s2t,
                    "token_ratio": t["tokens"] / s2t if s2t else None,
                    "realized_disagreement": sp["realised_disagreement"],
                    "bound": c["bound"], "max_disagreement": cas["max_disagreement"],
                    "guarantee_held": sp["guarantee_held"], "verdict": (report.get("verdict") or {}).get("decision"),
                    **({"risk": "all"} if cas.get("risk") == "all" else {})})  # bound on all inputs
    return out


def render(res: dict) -> str:
    def num(x, f=".1f"):
        return "-" if x is None else format(x, f)

    body = []
    for r in res["rows"]:
        if "n_cal" not in r:
            body.append([r["setting"], r["signal"]] + ["-"] * 10 + [r.get("note") or ""])
            continue
        body.append([r["setting"], r["signal"], f"{r['n_cal']}/{r['n_test']}",
                     "none passed: saves nothing" if r["threshold"] is None else num(r["threshold"], "g"),
                     pct(r["coverage"]), pct(r["cascade_accuracy"]), pct(r["system2_accuracy"]),
                     pct(r["distilled_accuracy"]), num(r["cascade_tokens"]), num(r["system2_tokens"]),
                     pct(r["token_ratio"]),
                     f"{pct(r['realized_disagreement'])}{' of all' if r.get('risk') == 'all' else ''} "
                     f"(bound {pct(r['bound'])})",
                     "held" if r["guarantee_held"] else "NOT held"])
    t = Table(["setting", "signal", "n cal/test", "threshold", "coverage %", "cascade acc %", "System 2 acc %",
               "distilled acc %", "cascade tokens/input", "System 2 tokens/input", "token ratio %",
               "disagreement % on answered, or of all (cal bound)", "guarantee"], body, align="lllrrrrrrrrrl")
    labels = "; ".join(f"{k}: {v[2]}" for k, v in SETTINGS.items() if k in {r["setting"] for r in res["rows"]})
    return "\n".join(["# Cascade: distilled model first, System 2 below a label-free threshold", "",
                      f"Calibrated on one half of the held-out inputs (System 2's maj@k majority as the reference, "
                      f"eval.max_disagreement {pct(res['max_disagreement'])}%, 95% confidence), measured with labels "
                      f"on the other half; fallback System 2 greedy. {labels}.", "", t.markdown()])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--render", action="store_true", help="write the result from the finished settings only")
    ap.add_argument("overrides", nargs="*")
    args = parse_with_overrides(ap, sys.argv[1:] if argv is None else argv)
    done = json.loads(PARTIAL.read_text()) if PARTIAL.is_file() else committed()
    if not args.render:
        for name in args.settings:
            cfg_name, ov, _ = SETTINGS[name]
            ov = [*ov, *(own_overrides(name) if name in OWN else [])]
            cfg = load_config(ROOT / "configs" / f"{cfg_name}.yaml", [*COMMON, *ov, *args.overrides])
            report = Pipeline(cfg, run_dir=ROOT / "runs" / "cascade" / RUN_OF.get(name, name), progress=False).run()
            done[name] = {"rows": rows_of(name, report), "max_disagreement": cfg.eval.max_disagreement,
                          "rows_report": report["rows"]}
            PARTIAL.write_text(json.dumps(done, indent=2))
    names = [n for n in SETTINGS if n in done]
    if not names:
        print("nothing finished yet")
        return 1
    res = {"rows": [r for n in names for r in done[n]["rows"]], "max_disagreement": done[names[0]]["max_disagreement"],
           "systems": {n: done[n]["rows_report"] for n in names}, "overrides": [*COMMON, *args.overrides]}
    write_result("cascade", res, render(res), keep_notes=True)  # notes about earlier settings stay with them
    print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
