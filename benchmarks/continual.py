"""Continual distillation: rounds fed by served traffic. Does the cascade cover more round over round, and how
many unlabeled inputs until the distilled model matches System 2?

    python benchmarks/continual.py [--rounds 3] [--first 24] [--per-round 48] [--explore 0.5] [--render] [key=value ...]

Round 1 is a normal run (configs/demo.yaml, depth-1 arithmetic with numbers up to 60, deliberately few
unlabeled inputs: ``--first``) in runs/continual/r1. Each later round: ``s2distill serve`` the previous round
(a real uvicorn server and its llama-servers on loopback), replay ``--per-round`` new unlabeled questions
through the ``openai`` client (8 at a time), stop the server, and ``s2distill continue`` from its inbox
(``eval.cascade_fallback=maj`` so the server's maj@k samples are reused as the round's System 2 samples).
Every round is evaluated on the same held-out inputs (160 by default: about half to calibrate the cascade, half to test it).
Per round: inputs, curated pairs, training steps, the distilled model's accuracy with its 95% interval (the
data-scaling curve), the cascade's coverage and accuracy on the test half, System 2's accuracy, tokens per
answer, the share of served requests System 1 answered, retention (KL on task and general prompts, System 1
on the other tasks before/after). Finished stages and rounds are reused: the script can be stopped and rerun.

``--out NAME`` names the result and its runs' folder (runs/NAME). ``--explore R`` serves with ``s2distill serve --explore R``: a share R of the questions System 1 answered also
goes to System 2 in the background, into the inbox, so a round learns from traffic the cascade already covers
(runs/continual-explore<R>, result ``continual_explore``; round 1 is copied from runs/continual/r1 when there).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import Table, parse_with_overrides, pct, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "continual"
SETTING = ["task.options.depth=1", "task.options.max_value=60", "task.n_eval=160", "eval.cascade_fallback=maj",
           "eval.systems=[system1,system2,system2_maj,distilled]"]


def traffic(cfg, n_rounds: int, per_round: list[int], taken: set[str]) -> list[list[str]]:
    """New questions for each later round (round k: ``per_round[k - 2]``, the last size repeated), none asked
    twice: the task's train side beyond round 1's inputs."""
    from s2distill.tasks import make_task

    sizes = [per_round[min(i, len(per_round) - 1)] for i in range(n_rounds - 1)]
    task = make_task(cfg.task)
    pool = [e.question for e in task.load("train", cfg.task.n_train + 3 * sum(sizes), cfg.task.seed)
            if e.question not in taken]
    if len(pool) < sum(sizes):
        raise SystemExit(f"only {len(pool)} new questions for {sum(sizes)}; lower --per-round")
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [pool[a:a + n] for a, n in zip(starts, sizes)]


def serve_and_replay(run: Path, questions: list[str], log, explore: float = 0.0) -> dict:
    """Serve ``run`` on a free loopback port, send ``questions`` 8 at a time, stop the server; what it did."""
    import httpx
    import openai

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "s2distill.cli", "serve", str(run), "--port", str(port),
                             "--explore", str(explore)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    t0 = time.perf_counter()
    try:
        while proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        if proc.poll() is not None:
            raise SystemExit(f"serve {run} exited: {proc.stdout.read()}")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", timeout=600)

        def ask(q: str) -> dict:
            r = client.chat.completions.create(model="s2distill", messages=[{"role": "user", "content": q}])
            return {**r.model_extra["s2distill"], "completion_tokens": r.usage.completion_tokens}

        t1 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, questions))
        wall = time.perf_counter() - t1
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
    from s2distill.serve import read_inbox

    s1 = sum(a["path"] == "system1" for a in answers)
    explored = sum(r.get("route") == "explore" for r in read_inbox(run / "serve" / "inbox.jsonl"))
    log(f"[serve] {len(answers)} requests in {wall:.0f}s, {s1} answered by System 1, {explored} of them explored")
    return {"requests": len(answers), "answered_by_system1": s1, "served_system1_share": s1 / len(answers),
            "explored": explored,
            "served_tokens_per_request": sum(a["completion_tokens"] for a in answers) / len(answers),
            "replay_s": round(wall, 1), "serve_total_s": round(time.perf_counter() - t0, 1)}


def row_of(run: Path, served: dict | None) -> dict:
    from s2distill.rounds import round_row
    from s2distill.rundir import read_json

    rep, man = read_json(run / "report.json"), read_json(run / "manifest.json")["stages"]
    r = round_row(run, rep, man)
    by = {x["role"]: x for x in rep["rows"]}
    cas = rep.get("cascade") or {}
    best = (cas.get("signals") or {}).get(cas.get("best") or "", {})
    test = (best.get("split") or {}).get("test") or {}
    ret = rep.get("retention") or {}
    other = ret.get("other_tasks") or {}
    return {"round": r["round"], "inputs": r["inputs"], "pairs": r["pairs"], "steps": r["steps"],
            "distilled_accuracy": r["distilled_accuracy"], "distilled_ci": by["distilled"].get("ci95"),
            "n_eval": by["distilled"].get("n"), "system2_accuracy": r["system2_accuracy"],
            "system1_accuracy": by["system1"]["accuracy"], "cascade_signal": cas.get("best"),
            "cascade_coverage": test.get("coverage"), "cascade_accuracy": test.get("accuracy"),
            "cascade_tokens": test.get("tokens"), "system2_tokens": by["system2"]["mean_generated_tokens"],
            "tokens_per_answer": r["distilled_tokens"],
            "kl_task": (ret.get("kl_task") or {}).get("kl"), "kl_general": (ret.get("kl_general") or {}).get("kl"),
            "other_task_system1_before": {k: v["before"] for k, v in other.items()},
            "other_task_system1_after": {k: v["after"] for k, v in other.items()},
            "verdict": r["verdict"], "wall_s": round(sum(s.get("wall_s", 0) for s in man.values()), 1),
            "served_before_this_round": served}


def render(res: dict) -> str:
    explore = res.get("explore") or 0
    def f(x, spec=".4f"):
        return "-" if x is None else format(x, spec)

    pr = res["per_round"] if isinstance(res["per_round"], list) else [res["per_round"]]
    sizes = str(pr[0]) if len(pr) == 1 else " / ".join(map(str, pr)) + " (round 2 / later rounds)"
    body = []
    for r in res["rows"]:
        ci = r.get("distilled_ci") or [None, None]
        others = "; ".join(f"{k} {pct(r['other_task_system1_before'][k])} -> {pct(v)}"
                           for k, v in r["other_task_system1_after"].items())
        sv = r.get("served_before_this_round")
        body.append([r["round"], r["inputs"], r["pairs"], r["steps"],
                     f"{pct(r['distilled_accuracy'])} [{pct(ci[0])}, {pct(ci[1])}]", pct(r["system2_accuracy"]),
                     pct(r["cascade_coverage"]), pct(r["cascade_accuracy"]), f(r["cascade_tokens"], ".1f"),
                     f(r["tokens_per_answer"], ".1f"), pct(sv["served_system1_share"]) if sv else "-",
                     f(r["kl_task"]), f(r["kl_general"]), others, r["verdict"]])
    t = Table(["round", "inputs", "curated pairs", "steps", "distilled acc % [95% CI]", "System 2 acc %",
               "cascade coverage % (test half)", "cascade acc %", "cascade tokens/input", "distilled tokens/answer",
               "served by System 1 % (replayed traffic into this round)", "KL task", "KL general",
               "System 1 on other tasks, base -> distilled", "verdict"], body, align="rrrrrrrrrrrrrll")
    train_from = "the previous round's adapter" if res.get("from_parent_adapter") else "the base model"
    inbox = ("what the cascade routed to System 2, with the server's maj@k samples" if not explore else
             f"what the cascade routed to System 2 and, `--explore {explore:g}`, that share of what System 1 "
             "answered, sent to System 2 in the background; all with the server's maj@k samples")
    return "\n".join([f"# Continual distillation: rounds from served traffic{' with exploration' if explore else ''}",
                      "", f"{res['setting']}. Round 1 from {res['first']} unlabeled inputs; each later round adds "
                      f"{sizes} questions replayed through `s2distill serve` (its inbox: {inbox}) plus the "
                      "previous round's inputs; "
                      f"trained from {train_from} each round; all rounds on the same held-out inputs.", "",
                      t.markdown()])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--first", type=int, default=24, help="round 1's unlabeled inputs")
    ap.add_argument("--per-round", type=int, nargs="+", default=[48],
                    help="questions replayed through serve before each later round (one size, or one per round)")
    ap.add_argument("--explore", type=float, default=0.0, metavar="R",
                    help="serve --explore R: also send a share R of System 1's answers to System 2 for the inbox")
    ap.add_argument("--render", action="store_true", help="write the result from the finished rounds only")
    ap.add_argument("--out", metavar="NAME", help="the result's name and its runs' folder runs/NAME (default: "
                                                   "continual, or continual_explore with --explore)")
    ap.add_argument("--from-parent-adapter", action="store_true",
                    help="each round trains from the previous round's adapter (s2distill continue --from-parent-adapter)")
    ap.add_argument("--same-traffic", metavar="NAME", help="round 1 and the replayed traffic (inbox-r*.jsonl) of "
                                                           "runs/NAME: two chains that differ only in how they train")
    ap.add_argument("overrides", nargs="*")
    args = parse_with_overrides(ap, sys.argv[1:] if argv is None else argv)
    from s2distill.config import load_config
    from s2distill.continual import run_round, start
    from s2distill.models import ALIASES
    from s2distill.pipeline import Pipeline
    from s2distill.rundir import read_json, read_jsonl

    log = print
    overrides = [*SETTING, f"task.n_train={args.first}", *args.overrides]
    cfg = load_config(ROOT / "configs" / "demo.yaml", overrides)
    runs_dir = RUNS if not args.explore else RUNS.with_name(f"continual-explore{args.explore:g}")
    runs_dir = RUNS.with_name(args.out) if args.out else runs_dir
    name = args.out or ("continual" if not args.explore else "continual_explore")
    first = runs_dir / "r1"
    source = RUNS.with_name(args.same_traffic) if args.same_traffic else RUNS if args.explore else None
    if source and not first.exists() and (source / "r1" / "report.json").is_file():
        import shutil

        shutil.copytree(source / "r1", first, ignore=shutil.ignore_patterns("serve"))  # the same round 1
        for f in [*source.glob("inbox-r*.jsonl"), source / "served.json"] if args.same_traffic else []:
            shutil.copyfile(f, runs_dir / f.name)  # the same traffic: a round serves only where it has none
    served_path = runs_dir / "served.json"
    served = json.loads(served_path.read_text()) if served_path.is_file() else {}
    runs = [first]
    if not args.render:
        Pipeline(cfg, run_dir=first, progress=False).run()
        taken = {d["question"] for d in read_jsonl(first / "data" / "train.jsonl")} | {
            d["question"] for d in read_jsonl(first / "data" / "eval.jsonl")}
        batches = traffic(cfg, args.rounds, args.per_round, taken)
        for k in range(2, args.rounds + 1):
            prev, new = runs[-1], runs_dir / f"r{k}"
            inbox = runs_dir / f"inbox-r{k}.jsonl"
            if not inbox.is_file():  # the traffic of this round, served once (a rerun reuses it)
                (prev / "serve" / "inbox.jsonl").unlink(missing_ok=True)
                served[str(k)] = serve_and_replay(prev, batches[k - 2], log, args.explore)
                (prev / "serve" / "inbox.jsonl").replace(inbox)
                served_path.write_text(json.dumps(served, indent=2))
            start(prev, inbox, new, from_parent_adapter=args.from_parent_adapter)
            run_round(new, args.overrides, progress=False)
            runs.append(new)
    else:
        runs += [runs_dir / f"r{k}" for k in range(2, args.rounds + 1) if (runs_dir / f"r{k}" / "report.json").is_file()]
    rows = [row_of(r, served.get(str(i + 1))) for i, r in enumerate(runs) if (r / "report.json").is_file()]
    info = read_json(first / "manifest.json")["stages"]["data"]
    teacher = (f"; System 2 (generation, the curation and calibration reference, the served fallback) is the teacher "
               f"{cfg.teacher.model}'s, the student {ALIASES.get(cfg.model, cfg.model)} is distilled") if cfg.teacher else ""
    res = {"rows": rows, "setting": "Depth-1 arithmetic, numbers up to 60 (configs/demo.yaml, 3-shot CoT, "
           f"{info['n_eval']} held-out inputs{teacher})", "first": args.first, "per_round": args.per_round,
           "overrides": overrides, **({"explore": args.explore} if args.explore else {}),
           **({"script": "continual"} if name != "continual" else {}),
           **({"from_parent_adapter": True} if args.from_parent_adapter else {})}
    write_result(name, res, render(res))
    print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
