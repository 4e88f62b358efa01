"""HTML report at scale: generation time and page size for a synthetic run with 5,000 eval inputs,
and the time the page takes in a real headless Chromium until its example browsers are rendered.

    python benchmarks/html_report.py [--n 5000] [--k 4] [--repeats 3] [--keep DIR]

Builds a run directory with the files a real run has (data/, traces/train.jsonl, curate/,
eval/<system>.jsonl for System 1, CoT, CoT maj@k and distilled, eval/system2_maj.traces.jsonl,
model/loss.jsonl, config.yaml, env.json, manifest.json, report.json) filled with synthetic
arithmetic questions and CoT-like responses (~300 characters of reasoning per sample), then
times ``write_run_html`` (median of --repeats) and opens the page in Chromium (if installed).
Writes benchmarks/results/html_report.{json,md,html}.
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from common import write_result  # noqa: E402

from s2distill.config import load_config  # noqa: E402
from s2distill.evaluate import summarize  # noqa: E402
from s2distill.html_report import write_run_html  # noqa: E402
from s2distill.report import system_label  # noqa: E402
from s2distill.systems import SYSTEMS  # noqa: E402
from s2distill.rundir import write_json, write_jsonl, write_text  # noqa: E402
from s2distill.tables import Table  # noqa: E402
from s2distill.types import EvalRecord  # noqa: E402


def _reasoning(rng: random.Random, a: int, b: int, ans: int) -> str:
    steps = " ".join(f"Step {i}: we carry {rng.randint(1, 99)} and keep the running total." for i in range(1, 6))
    return f"Let's think step by step. First {a} plus {b}. {steps} So the answer is {ans}."


def build_run(d: Path, n: int, k: int, seed: int = 0) -> None:
    import yaml

    rng = random.Random(seed)
    cfg = load_config(data={"name": "synthetic", "backend": {"name": "fake"}, "task": {"n_train": n, "n_eval": n},
                            "method": {"n": k}, "eval": {"k": k}})
    write_text(d / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    write_json(d / "env.json", {"versions": {"python": sys.version.split()[0]}, "seed": 0})
    evals, train, gold = [], [], []
    for split, out in (("eval", evals), ("train", train)):
        for i in range(n):
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            out.append({"id": f"{split}-{i}", "question": f"Tom has {a} apples. Then Tom buys {b} more apples. "
                        "How many apples does Tom have now?", "gold": str(a + b), "meta": {}, "_ab": (a, b)})
    for e in train:
        gold.append({"id": e["id"], "gold": e["gold"]})
    write_jsonl(d / "data" / "eval.jsonl", [{k2: v for k2, v in e.items() if k2 != "_ab"} for e in evals])
    write_jsonl(d / "data" / "train.jsonl", [{**{k2: v for k2, v in e.items() if k2 != "_ab"}, "gold": None} for e in train])
    write_jsonl(d / "data" / "train.gold.jsonl", gold)

    def samples(e, m):
        a, b = e["_ab"]
        out = []
        for j in range(m):
            ans = a + b if rng.random() < 0.8 else a + b + rng.randint(1, 3)
            text = _reasoning(rng, a, b, ans)
            out.append({"response": text, "answer": str(ans), "calls": [{"step": "cot", "messages": [
                {"role": "user", "content": e["question"]}], "completion": {"text": text, "completion_tokens": len(text.split()),
                                                                             "prompt_tokens": 40}}]})
        return out

    traces = [{"example_id": e["id"], "method": "cot", "samples": samples(e, k)} for e in train]
    write_jsonl(d / "traces" / "train.jsonl", traces)
    pairs, rejects = [], []
    for t in traces:
        ans = [s["answer"] for s in t["samples"]]
        top = max(set(ans), key=ans.count)
        votes = {a: ans.count(a) for a in set(ans)}
        meta = {"votes": votes, "n": k, "unparseable": 0, "agreement": ans.count(top) / k}
        if ans.count(top) / k >= 0.75:
            pairs.append({"example_id": t["example_id"], "messages": [], "target": top, "meta": meta})
        else:
            rejects.append({"example_id": t["example_id"], "reason": "low_agreement", "meta": meta})
    write_jsonl(d / "curate" / "pairs.jsonl", pairs)
    write_jsonl(d / "curate" / "rejects.jsonl", rejects)
    rows, man = [], {"data": {"n_train": n, "n_eval": n, "wall_s": 0.1}}
    maj_traces = [{"example_id": e["id"], "method": "cot", "samples": samples(e, k)} for e in evals]
    write_jsonl(d / "eval" / "system2_maj.traces.jsonl", maj_traces)
    for system in SYSTEMS:
        recs = []
        for e, t in zip(evals, maj_traces):
            if system == "system2_maj":
                answers = [s["answer"] for s in t["samples"]]
                pred, tok, meta = max(set(answers), key=answers.count), sum(len(s["response"].split()) for s in t["samples"]), \
                    {"answers": answers}
            elif system == "system2":
                pred, tok, meta = t["samples"][0]["answer"], len(t["samples"][0]["response"].split()), \
                    {"response": t["samples"][0]["response"]}
            else:
                p_right = 0.2 if system == "system1" else 0.75
                pred = e["gold"] if rng.random() < p_right else str(int(e["gold"]) + 7)
                tok, meta = 3, {"response": pred}
            recs.append(EvalRecord(system, e["id"], pred, e["gold"], pred == e["gold"], tok, k if system == "system2_maj"
                                   else 1, 0.1, meta))
        write_jsonl(d / "eval" / f"{system}.jsonl", recs)
        rows.append({"system": system_label(system, "cot", k), "role": system, **summarize(recs, 10.0), "cache_hits": 0})
        man[f"eval_{system}"] = {"wall_s": 10.0}
    losses = [{"step": s, "loss": 2.0 / s ** 0.5, "lr": 3e-4, "epoch": s / 100, "elapsed_s": s * 0.5} for s in range(1, 301)]
    write_jsonl(d / "model" / "loss.jsonl", losses)
    write_json(d / "manifest.json", {"stages": man})
    write_json(d / "report.json", {"run_dir": str(d), "task": "arithmetic", "task_options": {}, "model": "synthetic",
                                   "backend": "fake", "method": "cot", "method_samples": k, "rows": rows, "robustness": {},
                                   "curation": {"curator": "self_consistency", "kept": len(pairs), "kept_inputs": len(pairs),
                                                "rejected": len(rejects), "reject_reasons": {"low_agreement": len(rejects)},
                                                "quality_checked_afterwards": None},
                                   "train": {"steps": 300}, "stages_wall_s": {}})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", help="build the run here and keep it (default: a temporary directory)")
    args = ap.parse_args()
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="s2d-html-bench-"))
    try:
        t0 = time.perf_counter()
        build_run(tmp, args.n, args.k)
        build_s = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = write_run_html(tmp)
            times.append(time.perf_counter() - t0)
        size = out.stat().st_size
        run_bytes = sum(f.stat().st_size for f in tmp.rglob("*.json*") if f.is_file())
        browser = None
        import importlib.util

        spec = importlib.util.spec_from_file_location("browser_check", ROOT / "scripts" / "browser_check.py")
        browser_check = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(browser_check)
        find_chromium, open_page = browser_check.find_chromium, browser_check.open_page

        if find_chromium():
            import re

            t0 = time.perf_counter()
            r = open_page(out, fragment="eval=2,3", timeout_s=180)
            wall = time.perf_counter() - t0
            m = re.search(r'data-ready-ms="(\d+)"', r.dom)
            rows_rendered = r.dom.count('class="exrow"')
            browser = {"ready_ms": int(m.group(1)) if m else None, "chromium_wall_s": round(wall, 2),
                       "console": r.console, "rows_in_dom": rows_rendered}
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    res = {"n_eval": args.n, "n_train": args.n, "k": args.k, "generate_s": [round(t, 3) for t in times],
           "generate_s_median": round(statistics.median(times), 3), "html_bytes": size, "run_dir_json_bytes": run_bytes,
           "build_synthetic_run_s": round(build_s, 2), "browser": browser}
    md = render(res)
    write_result("html_report", res, md)
    print(md)


def render(res: dict) -> str:
    """The markdown of a result (also used to re-render a committed result from its JSON)."""
    b = res.get("browser") or {}
    times = res["generate_s"]
    t = Table(["eval inputs", "train inputs", "samples/input", f"report generation s (median of {len(times)})",
               "HTML MiB", "run dir JSON/JSONL MiB", "Chromium: script done (ms after navigation start)", "rows in DOM"],
              [[f"{res['n_eval']:,}", f"{res['n_train']:,}", str(res["k"]), f"{res['generate_s_median']:.2f}",
                f"{res['html_bytes'] / 2**20:.1f}", f"{res['run_dir_json_bytes'] / 2**20:.1f}", str(b.get("ready_ms", "-")),
                str(b.get("rows_in_dom", "-"))]])
    return ("# HTML report at scale\n\nA synthetic run directory with the files of a real run (every eval input answered by "
            "System 1, CoT, CoT maj@k and the distilled model, with the maj@k samples' reasoning; every train input's "
            "samples, votes and curation outcome), rendered by `s2distill report RUN --html` "
            "(`html_report.write_run_html`), then opened in headless Chromium at the 'distilled wrong' filter, "
            "page 4. Each of the two browsers (eval, curation) keeps one page of 50 rows in the DOM; an "
            "example's reasoning is built only when its row is opened.\n\n" + t.markdown() +
            f"\n\nGeneration times: {', '.join(f'{x:.2f}' for x in times)} s. Console messages in Chromium: "
            f"{(b.get('console') if b else 'not run (no chromium)')}.")


if __name__ == "__main__":
    main()
