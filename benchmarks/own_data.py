"""The own-data walkthrough: the README's "Your own data" commands on the embedded model, timed.

``python benchmarks/own_data.py --write-examples`` (re)writes the example files under examples/
(deterministic: the same files every time). Without it: runs ``s2distill run configs/own_data.yaml``
on examples/own_questions.jsonl (numeric answers, unusual field names, no labels) and on
examples/own_yes_no.jsonl, each timed, and writes benchmarks/results/own_data.{json,md}. The
files carry no gold; this script knows the answers (it made the questions) and scores the
distilled model's answers afterwards, outside the pipeline, as a check on the label-free run.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from common import Table  # noqa: E402 - the one table formatter
EXAMPLES = ROOT / "examples"
ITEMS = ["crates", "parcels", "tickets", "jars", "seedlings", "bolts", "lanterns", "kites", "badges", "scarves"]
PLACES = ["warehouse", "shop", "garden centre", "workshop", "library stall", "market stand"]


def numeric_question(rng: random.Random) -> tuple[str, int]:
    item, place = rng.choice(ITEMS), rng.choice(PLACES)
    a = rng.randint(5, 60)
    kind = rng.randrange(4)
    if kind == 0:
        b = rng.randint(2, 30)
        return f"A {place} has {a} {item}. A delivery brings {b} more. How many {item} does it have now?", a + b
    if kind == 1:
        b = rng.randint(1, a - 1)
        return f"A {place} starts the day with {a} {item} and sells {b} of them. How many {item} are left?", a - b
    if kind == 2:
        b = rng.randint(2, 6)
        a = rng.randint(2, 15)
        return f"Each shelf in the {place} holds {a} {item}. There are {b} shelves. How many {item} in total?", a * b
    b, c = rng.randint(2, 20), rng.randint(1, 10)
    return (f"The {place} had {a} {item}. It received {b} more and then gave away {c}. "
            f"How many {item} does it have now?"), a + b - c


def yes_no_question(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    kind = rng.randrange(3)
    if kind == 0:
        return f"Is {a} greater than {b}?", "yes" if a > b else "no"
    if kind == 1:
        d = rng.choice([2, 3, 5])
        return f"Is {a} divisible by {d}?", "yes" if a % d == 0 else "no"
    return f"Is {a} an even number?", "yes" if a % 2 == 0 else "no"


def choice_question(rng: random.Random) -> tuple[dict, str]:
    """A word problem of the numeric kind with four close numeric options (lettered A-D by the task): direct
    answers are near chance for a small model, working it out first is not."""
    q, x = numeric_question(rng)
    near = [d for d in (x + 1, x - 1, x + 2, x - 2, x + 10, x - 10) if d > 0]
    options = [x, *rng.sample(near, 3)]
    rng.shuffle(options)
    return {"stem": q, "options": options}, "ABCD"[options.index(x)]


CHOICE_SHOTS = [
    ({"stem": "A bakery has 14 trays. It bakes 9 more trays. How many trays does it have now?", "options": [24, 23, 13, 22]},
     "It starts with 14 trays and bakes 9 more: 14 + 9 = 23, which is option B. The answer is B."),
    ({"stem": "Each box in the shed holds 6 gloves. There are 4 boxes. How many gloves in total?",
      "options": [26, 20, 25, 24]},
     "4 boxes with 6 gloves each: 4 * 6 = 24, which is option D. The answer is D."),
    ({"stem": "A kiosk starts the day with 31 maps and sells 12 of them. How many maps are left?",
      "options": [19, 29, 18, 21]},
     "31 maps minus the 12 sold: 31 - 12 = 19, which is option A. The answer is A."),
]


def make(n: int, seed: str, fn) -> list[tuple[str, object]]:
    rng, out, seen = random.Random(seed), [], set()
    while len(out) < n:
        q, a = fn(rng)
        key = q if isinstance(q, str) else q["stem"]  # a multiple-choice row: one row per question text
        if key not in seen:
            seen.add(key)
            out.append((q, a))
    return out


def write_examples() -> None:
    """Unlabeled files only: the answers live in this script, never in examples/."""
    EXAMPLES.mkdir(exist_ok=True)
    qs = make(340, "own-numeric", numeric_question)
    with open(EXAMPLES / "own_questions.jsonl", "w") as fh:  # 300 questions: fields ticket / body
        for i, (q, _) in enumerate(qs[:300]):
            fh.write(json.dumps({"ticket": f"T-{1000 + i}", "body": q}) + "\n")
    with open(EXAMPLES / "more_questions.jsonl", "w") as fh:  # 40 new inputs for `s2distill eval --data`
        for i, (q, _) in enumerate(qs[300:]):
            fh.write(json.dumps({"ticket": f"T-{2000 + i}", "body": q}) + "\n")
    with open(EXAMPLES / "own_yes_no.jsonl", "w") as fh:
        for i, (q, _) in enumerate(make(120, "own-yes-no", yes_no_question)):
            fh.write(json.dumps({"key": f"yn-{i}", "claim": q}) + "\n")
    with open(EXAMPLES / "own_choice.jsonl", "w") as fh:  # fields qid / stem / options (a list)
        for i, (q, _) in enumerate(make(240, "own-choice", choice_question)):
            fh.write(json.dumps({"qid": f"mc-{i}", **q}) + "\n")
    with open(EXAMPLES / "own_choice_exemplars.jsonl", "w") as fh:
        for q, worked in CHOICE_SHOTS:
            fh.write(json.dumps({**q, "worked": worked}) + "\n")


def answers() -> dict[str, str]:
    return {q: str(a) for q, a in make(340, "own-numeric", numeric_question) + make(120, "own-yes-no", yes_no_question)}


def choice_answers() -> dict[str, str]:
    """The multiple-choice file's letters, by question text (``stem``)."""
    return {q["stem"]: a for q, a in make(240, "own-choice", choice_question)}


def cli(*args: str) -> tuple[float, str]:
    """One s2distill command as a user types it; its wall time and standard output."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "s2distill.cli", *args], check=False, cwd=ROOT, text=True,
                         stdout=subprocess.PIPE)
    if out.returncode not in (0, 1):  # `verdict` exits 1 for keep
        raise SystemExit(f"s2distill {' '.join(args)} failed with exit code {out.returncode}")
    return time.perf_counter() - t0, out.stdout


def check(run_dir: Path, truth: dict[str, str]) -> dict:
    """Score the run's records against the answers this script knows (outside the pipeline)."""
    exs = {json.loads(line)["id"]: json.loads(line)["question"] for line in open(run_dir / "data" / "eval.jsonl")}
    out = {}
    for f in sorted((run_dir / "eval").glob("*.jsonl")):
        if "." in f.stem:
            continue
        recs = [json.loads(line) for line in open(f)]
        right = [r["prediction"] is not None and r["prediction"] == truth[exs[r["example_id"]]] for r in recs]
        toks = [r["generated_tokens"] for r in recs]
        out[f.stem] = {"n": len(recs), "accuracy_checked_afterwards": round(sum(right) / max(1, len(recs)), 4),
                       "mean_tokens": round(sum(toks) / max(1, len(toks)), 1)}
    pairs = [json.loads(line) for line in open(run_dir / "curate" / "pairs.jsonl")]
    trains = {json.loads(line)["id"]: json.loads(line)["question"] for line in open(run_dir / "data" / "train.jsonl")}
    ok = sum(p["target"] == truth[trains[p["example_id"]]] for p in pairs)
    out["curated"] = {"kept": len(pairs), "of": len(trains), "targets_correct": round(ok / max(1, len(pairs)), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write-examples", action="store_true")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "own_data_bench"))
    ap.add_argument("--n-numeric", type=int, default=120, help="task.n_train of the numeric file")
    ap.add_argument("--n-yes-no", type=int, default=64, help="task.n_train of the yes/no file")
    ap.add_argument("--n-eval", type=int, default=40, help="task.n_eval of the numeric file")
    ap.add_argument("--n-eval-yes-no", type=int, default=24, help="task.n_eval of the yes/no file")
    args = ap.parse_args()
    if args.write_examples:
        write_examples()
        return
    from common import write_result

    truth, runs, rows = answers(), Path(args.runs), []
    settings = [("numeric", ["task.options.path=examples/own_questions.jsonl", "task.options.question_field=body",
                             "task.options.id_field=ticket", f"task.n_train={args.n_numeric}",
                             f"task.n_eval={args.n_eval}"], "examples/more_questions.jsonl"),
                ("yes_no", ["task.options.path=examples/own_yes_no.jsonl", "task.options.question_field=claim",
                            "task.options.id_field=key", "task.options.answer_format=yes_no",
                            "task.options.exemplars_path=examples/own_yes_no_exemplars.jsonl",
                            f"task.n_train={args.n_yes_no}", f"task.n_eval={args.n_eval_yes_no}"], None)]
    for name, ov, more in settings:
        run_dir = runs / name
        steps = {"run": cli("run", "configs/own_data.yaml", *ov, "--run-dir", str(run_dir), "--no-progress")[0]}
        if more:  # the README's second command: the trained run on new inputs
            steps["eval --data"] = cli("eval", str(run_dir), "--data", more, "--name", "more", "--no-progress")[0]
        steps["report"] = cli("report", str(run_dir))[0]
        wall, line = cli("verdict", str(run_dir))
        steps["verdict"] = wall
        rows.append({"setting": name, "overrides": ov, "eval_data": more, "wall_s": round(sum(steps.values()), 1),
                     "steps_wall_s": {k: round(v, 1) for k, v in steps.items()}, "verdict": line.strip(),
                     **check(run_dir, truth)})
    res = {"rows": rows}
    md = render(res)
    write_result("own_data", res, md)
    print(md)


def render(res: dict) -> str:
    """The markdown of a result (also used to re-render a committed result from its JSON); the notes
    added after the run (``notes``) follow the verdict lines."""
    rows = res["rows"]
    total = sum(r["wall_s"] for r in rows)
    table = Table(["file", "wall", "curated kept", "curated targets correct", "system",
                   "accuracy (checked afterwards)", "tokens/answer"],
                  [[r["setting"], f"{r['wall_s'] / 60:.1f} min", f"{r['curated']['kept']}/{r['curated']['of']}",
                    f"{100 * r['curated']['targets_correct']:.1f}%", s,
                    f"{100 * r[s]['accuracy_checked_afterwards']:.1f}%", str(r[s]["mean_tokens"])]
                   for r in rows for s in ("system1", "system2", "system2_maj", "distilled") if s in r],
                  align="lllllll")
    lines = ["# Own-data walkthrough (embedded model, `s2distill run configs/own_data.yaml`)", "",
             "The README's \"Your own data\" commands as a user types them: `s2distill run` (data, generate, curate, "
             "eval, LoRA training, distilled eval), `s2distill eval RUN --data` (numeric file), `s2distill report` and "
             f"`s2distill verdict`; both files: {total / 60:.1f} min in all.", "",
             "Unlabeled files from examples/; accuracy is checked afterwards by this script, which made the questions",
             "(the pipeline never sees an answer).", "", table.markdown()]
    lines += [""] + [f"- {r['setting']}: {r['verdict']} (steps: "
                     + ", ".join(f"{k} {v / 60:.1f} min" for k, v in r["steps_wall_s"].items()) + ")" for r in rows]
    lines += [f"\nNote (added after the run): {n}" for n in res.get("notes", [])]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
