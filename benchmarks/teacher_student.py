"""A stronger System 2 teacher: the 1.5B model's System 2 distilled into the 0.5B model's System 1.

    python benchmarks/teacher_student.py [--settings cf4 ll2 arith_d2 cf2 bsm cf2_1.5b] [--render] [--note TEXT] [key=value ...]
    python benchmarks/teacher_student.py --same-model cf2     # the 0.5B teaching itself (no teacher) on a setting
    python benchmarks/teacher_student.py --maj-only cf4       # only the teacher's maj@k on a finished setting

Each setting is one pipeline run with a ``teacher:`` section (configs/teacher_student.yaml's
shape): System 2 (generation on unlabeled inputs, greedy and maj@k evaluation) on the teacher,
System 1, LoRA training and the distilled evaluation on the student, System 1 of the teacher
too. Runs live in runs/bench/teacher_student/<setting>; finished stages are reused, so the script
can be stopped and restarted. Settings run one at a time, in the order given (most informative
first); each finished setting goes to benchmarks/results/teacher_student.partial.json (git-ignored)
and the result files are rewritten from what has finished, so a run cut short still reports.

The same-model cell (the student distilling its own System 2) is measured with ``--same-model``
(the setting's config without the teacher) or comes from the committed results of benchmarks/experiments/rar.yaml,
benchmarks/experiments/distill_arithmetic.yaml and bsm.yaml where they ran the same task (their sizes are
given); otherwise it is marked not run. ``--maj-only`` adds the teacher's maj@k to a finished setting
(one evaluation on the teacher, nothing else reruns). Settings ending in ``_1.5b`` distil into the
1.5B itself (student = teacher).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from common import RESULTS, Table, ci, experiment_rows, pct, points_svg, run_or_note, write_result, parse_with_overrides  # noqa: E402

from s2distill.config import load_config  # noqa: E402
from s2distill.pipeline import Pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEACHER, STUDENT = "qwen2.5-coder-1.5b", "default"
SYSTEMS = "eval.systems=[system1,system2,system2_maj,teacher_system1,distilled]"
SIZES = ["task.n_eval=40", "task.n_train=24", "method.n=4", "eval.k=3", "eval.rewordings=0"]
# the machine is shared (2 cores, other llama-servers and tests): one engine thread each avoids llama.cpp's
# spinning thread barrier under oversubscription; few slots warm up the few-shot prompt fewer times; long
# HTTP timeouts so a slow request is not abandoned and redone
SHARED = ["backend.threads=1", "teacher.backend.parallel=4", "backend.timeout_s=3600"]
JUDGE_SYSTEMS = "eval.systems=[system1,system2,teacher_system1,distilled]"  # maj@k of a judge: not run
SETTINGS = {  # name: (config, overrides, label); overrides come after SIZES/SHARED/SYSTEMS and win
    "cf4": ("teacher_student", [], "coin flip, 4 people (3-shot CoT)"),  # the config as committed
    "ll2": ("rar_last_letter", ["task.options.n_names=2", "method.name=rar", "method.options.steps=2",
                                "method.few_shot=3", "curate.min_votes=3", "train.epochs=2"],
            "last letter, 2 names (3-shot 2-step RaR)"),
    "arith_d2": ("demo", ["task.options.depth=2", "method.name=cot", "method.few_shot=3", "curate.min_votes=3",
                          "curate.min_agreement=0.5", "train.epochs=3"], "arithmetic, depth 2 (3-shot CoT)"),
    "cf2": ("teacher_student", ["task.options.n_people=2"], "coin flip, 2 people (3-shot CoT)"),
    # the paper's BSM table on GSM8K pairs (bsm_judge.yaml: one plan per response order, swap-consistency
    # curation, every judge on both orders); 16 train pairs as in benchmarks/experiments/bsm.yaml
    "bsm": ("bsm_judge", ["task.n_train=16", "method.n=1", "train.epochs=3", JUDGE_SYSTEMS],
            "BSM judge, GSM8K pairs (swap consistency)"),
}
# the 1.5B distilling its own System 2 (student = teacher; its System 1 is the teacher's)
SETTINGS.update({f"{n}_1.5b": (SETTINGS[n][0], [*SETTINGS[n][1], "eval.systems=[system1,system2,distilled]",
                                                f"model={TEACHER}"], f"{SETTINGS[n][2]} -> 1.5B student")
                 for n in ("cf2", "cf4", "ll2")})


def cell(r: dict | None) -> dict | None:
    """A report row's accuracy (a judge's: agreement, ties against) with its interval and token cost; a
    judge's position inconsistency too."""
    if not r:
        return None
    c = {"accuracy": r.get("accuracy"), "ci95": r.get("ci95"), "mean_generated_tokens": r.get("mean_generated_tokens"),
         "n": r.get("n")}
    if j := r.get("judge"):
        c.update(inconsistent=j.get("inconsistent"), inconsistent_ci95=j.get("inconsistent_ci95"))
    return c


def same_model(name: str) -> dict | None:
    """The student distilling its own System 2, from a committed result of the same task (or None)."""
    def pick(result: str, **want) -> dict | None:
        return next((r for r in experiment_rows(result) if all(r.get(k) == v for k, v in want.items())), None)

    def as_cell(r: dict, source: str) -> dict:
        return {"accuracy": r["accuracy"], "ci95": r["ci95"], "mean_generated_tokens": r["tokens"], "n": r["n"],
                **({"inconsistent": r["inconsistent"], "inconsistent_ci95": r["inconsistent_ci95"]}
                   if "inconsistent" in r else {}), "source": source}

    if name == "ll2" and (r := pick("rar", run="ll2/rar2", role="distilled")):
        return as_cell(r, "benchmarks/results/rar.md (ll2: 40 unlabeled inputs x 4 samples, 3-shot 2-step RaR on "
                          "the 0.5B)")
    if name == "arith_d2" and (r := pick("distill_arithmetic", depth=2, role="distilled")):
        return as_cell(r, "benchmarks/results/distill_arithmetic.md (depth 2: 96 unlabeled inputs x 4 samples, "
                          "3-shot CoT on the 0.5B)")
    if name == "bsm" and (r := pick("bsm", label="Distill BSM (swap consistency)")):
        return as_cell(r, f"benchmarks/results/bsm.md ({r['n']} eval pairs, 16 unlabeled train pairs, BSM on the 0.5B)")
    return None


def student_of(name: str) -> str:
    return TEACHER if name.endswith("_1.5b") else STUDENT


def overrides(name: str, args, extra: list[str] = ()) -> list[str]:
    config, ov, label = SETTINGS[name]
    return [f"name=teacher_student_{name}", *SIZES, *SHARED, SYSTEMS, f"model={STUDENT}", f"teacher.model={TEACHER}",
            *ov, *extra, *args.overrides]


def pipeline(name: str, ov: list[str], run: str) -> Pipeline:
    """The pipeline of setting ``name``'s config with ``ov``, in runs/bench/teacher_student/<run>."""
    cfg = load_config(ROOT / "configs" / f"{SETTINGS[name][0]}.yaml", ov)
    return Pipeline(cfg, run_dir=Path("runs") / "bench" / "teacher_student" / run)


def command() -> str:
    return " ".join(["python", "benchmarks/teacher_student.py", *sys.argv[1:]])


def run_same_model(name: str, args) -> dict:
    """The setting's config with no teacher: the student samples, curates, trains on its own System 2."""
    ov = overrides(name, args, ["teacher=null", "eval.systems=[system2,distilled]", f"model={student_of(name)}",
                                f"name=teacher_student_{name}_same_model"])
    notes: list[str] = []
    report = run_or_note(pipeline(name, ov, f"{name}_same_model"), f"{name} same model", notes)
    rows = {r["role"]: r for r in report["rows"]}
    cur, t = report.get("curation") or {}, report.get("train") or {}
    q = cur.get("quality_checked_afterwards") or {}
    return {**(cell(rows.get("distilled")) or {"accuracy": None}), "system2_student": cell(rows.get("system2")),
            "kept": cur.get("kept"), "targets_correct": q.get("correct_targets"), "train_steps": t.get("steps"),
            "notes": notes, "overrides": ov[1:],
            "source": f"this script, --same-model {name} (the setting's sizes, no teacher: {student_of(name)} "
                      f"samples, kept {cur.get('kept')} ({q.get('correct_targets')} targets correct), "
                      f"{t.get('steps')} LoRA steps; its own System 2: {_fmt(cell(rows.get('system2')))})",
            "command": command()}


def run_maj_only(name: str, args) -> dict:
    """The teacher's maj@k on the eval inputs of a setting (one evaluation, its own run directory)."""
    p = pipeline(name, overrides(name, args), f"{name}_maj")
    rows = {r["role"]: r for r in p.evaluate_base(("system2_maj",))["rows"]}
    return cell(rows.get("system2_maj"))


def run_setting(name: str, args) -> dict:
    config, _, label = SETTINGS[name]
    ov = overrides(name, args)
    p = pipeline(name, ov, name)
    cfg, notes = p.cfg, []
    report = run_or_note(p, name, notes)
    rows = {r["role"]: r for r in report["rows"]}
    cur, t = report.get("curation") or {}, report.get("train") or {}
    q = cur.get("quality_checked_afterwards") or {}
    sm = same_model(name)
    return {"setting": name, "label": label, "teacher": TEACHER, "student": student_of(name),
            "n": rows["system1"]["n"] if "system1" in rows else None,
            "system1_student": cell(rows.get("system1")), "system1_teacher": cell(rows.get("teacher_system1")),
            "system2_teacher": cell(rows.get("system2")), "system2_teacher_maj": cell(rows.get("system2_maj")),
            "distilled": cell(rows.get("distilled")),
            "distilled_same_model": sm if sm else ("the distilled student (student = teacher)"
                                                   if student_of(name) == TEACHER else "not run"),
            "sizes": {"n_eval": cfg.task.n_eval, "n_train": cfg.task.n_train, "method_n": cfg.method.n,
                      "few_shot": cfg.method.few_shot, "k": cfg.eval.k, "min_votes": cfg.curate.min_votes},
            "kept": cur.get("kept"), "targets_correct": q.get("correct_targets"), "train_steps": t.get("steps"),
            "train_s": t.get("train_time_s"), "peak_rss_gib": round(t["peak_rss_bytes"] / 2**30, 2) if t.get(
                "peak_rss_bytes") else None,
            "tokens_per_model": report.get("tokens_per_model"), "stages_wall_s": report.get("stages_wall_s"),
            "config": f"configs/{config}.yaml", "overrides": ov[1:], "notes": notes,
            "command": command()}


def _fmt(c) -> str:
    if not isinstance(c, dict):
        return c or "not run"
    if c.get("accuracy") is None:
        return "not trained"
    s = f"{pct(c['accuracy'])} ({ci(c['ci95'])}), {c['mean_generated_tokens']:.0f} tok"
    if c.get("inconsistent") is not None:
        s += f"; inconsistent {pct(c['inconsistent'])} ({ci(c['inconsistent_ci95'])})"
    return s


def render(res: dict) -> str:
    """The markdown of a result (also used to re-render a committed result from its JSON)."""
    rows, missing, notes = res["rows"], res.get("not_run") or [], res.get("notes") or []
    cells = [[r["label"], str(r["n"] or "-"), _fmt(r["system1_student"]), _fmt(r["system2_teacher"]),
              _fmt(r["system2_teacher_maj"]),
              _fmt(r["system1_teacher"] or ("= System 1 (student)" if r["student"] == r["teacher"] else None)),
              _fmt(r["distilled"]),
              _fmt(r["distilled_same_model"])] for r in rows]
    table = Table(["setting", "n", "System 1 (student)", "System 2 (teacher 1.5B, greedy)",
                   "System 2 (teacher, maj@k)", "System 1 (teacher)", "distilled student",
                   "distilled (student teaching itself)"], cells, align="lrllllll")
    lines = ["# A stronger System 2 teacher: Qwen2.5-Coder-1.5B's System 2 distilled into the 0.5B's System 1", "",
             "Embedded models (GGUF Q4_K_M) through llama-server, one engine at a time; the teacher "
             f"({TEACHER}) runs System 2 on the unlabeled train inputs and in the System 2 rows, the student "
             "(qwen2.5-coder-0.5b) answers directly in System 1, is LoRA-trained on the teacher's "
             "self-consistent answers and answers directly again (distilled). Each cell: accuracy % (95% Wilson "
             "interval), mean generated tokens per answer; for the judge: agreement with the known better response "
             "(a verdict that flips with the response order counts as a tie, against) and position inconsistency. "
             "The student is the 0.5B unless the setting says '-> 1.5B student'. Greedy decoding except maj@k "
             "(temperature 0.7).", "",
             table.markdown(), ""]
    for r in rows:
        s = r["sizes"]
        tpm = "; ".join(f"{m}: {t['total']}" for m, t in (r.get("tokens_per_model") or {}).items())
        lines.append(f"- {r['setting']}: {s['n_eval']} eval inputs; {s['n_train']} unlabeled train inputs x "
                     f"{s['method_n']} teacher samples ({s['few_shot']}-shot), self-consistency keeps >= "
                     f"{s['min_votes']} agreeing votes: kept {r['kept']} ({r['targets_correct']} targets correct, "
                     f"checked afterwards); {r['train_steps']} LoRA steps on the student ({r['train_s']} s, peak RSS "
                     f"{r['peak_rss_gib']} GiB); " + (f"maj@k k={s['k']}; " if r["system2_teacher_maj"] else "")
                     + f"generated tokens per model: {tpm}")
        sm = r["distilled_same_model"]
        lines.append(f"  - same-model row: {sm['source'] if isinstance(sm, dict) else 'not run'}")
        if r.get("command"):
            lines.append(f"  - command: `{r['command']}`")
        lines += [f"  - maj@k: `{c}`" for c in r.get("extra_commands", [])]
        if isinstance(sm, dict) and sm.get("command"):
            lines.append(f"  - same-model command: `{sm['command']}`")
        lines += [f"  - note: {n}" for n in r["notes"]]
    if missing:
        lines += ["", f"Settings not run (CPU time on the shared 2-core machine): {', '.join(missing)}."]
    lines += [f"\nNote: {n}" for n in notes]
    return "\n".join(lines)


def figure(res: dict) -> str:
    pts = []
    for r in res["rows"]:
        for key, role in (("system1_student", "system1"), ("system2_teacher", "system2"),
                          ("system2_teacher_maj", "system2_maj"), ("distilled", "distilled")):
            c = r.get(key)
            if isinstance(c, dict) and c.get("accuracy") is not None:
                pts.append({**c, "label": f"{r['setting']}: {key}", "role": role})
    return points_svg(pts, lambda p: p["label"], lambda p: p["role"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--render", action="store_true", help="only write the result files from the settings finished")
    ap.add_argument("--same-model", nargs="*", default=[], choices=list(SETTINGS),
                    help="measure the same-model cell of these finished settings (no teacher)")
    ap.add_argument("--maj-only", nargs="*", default=[], choices=list(SETTINGS),
                    help="add the teacher's maj@k to these finished settings")
    ap.add_argument("--note", action="append", default=[], help="a line for the result's notes (repeatable)")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = parse_with_overrides(ap)
    os.chdir(ROOT)  # relative paths (runs/) are the repository's: no machine path in the results

    partial = RESULTS / "teacher_student.partial.json"
    done: dict = json.loads(partial.read_text()) if partial.exists() else {}

    def write() -> None:
        rows = [done[n] for n in SETTINGS if n in done]
        res = {"rows": rows, "not_run": [n for n in SETTINGS if n not in done], "notes": args.note}
        md = render(res)
        write_result("teacher_student", res, md, figure(res))
        print(md, flush=True)

    def save() -> None:
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(done, indent=2))
        write()

    extra = args.same_model or args.maj_only
    if missing := [n for n in extra if n not in done]:
        ap.error(f"--same-model/--maj-only need a finished setting; run first: python benchmarks/teacher_student.py "
                 f"--settings {' '.join(missing)}")
    if not args.render:
        for name in args.maj_only:
            done[name]["system2_teacher_maj"] = run_maj_only(name, args)
            done[name].setdefault("extra_commands", []).append(command())
            save()
        for name in args.same_model:
            done[name]["distilled_same_model"] = run_same_model(name, args)
            save()
        for name in ([] if extra else args.settings):
            done[name] = run_setting(name, args)
            save()
    write()


if __name__ == "__main__":
    main()
