"""Where a CPU run's time goes, before and after the speed work, measured in one run on one machine.

    python benchmarks/speed.py [--parts generate train demo] [--work runs/speed]

"before" is the toolkit as it was: one request per sample (``backend.share_samples=false``), the chat
template's default system prompt in every System 1 prompt (``task.system_prompt=null``) and the demo's old
sizes (OLD_DEMO); "after" is today's defaults and ``configs/demo.yaml``. The option
``train.group_by_length=true`` (off by default) is measured in the train part. Parts, each on its own fresh engine and run directory:

  generate  the demo's generate stage (96 inputs x 4 CoT samples) through the toolkit, sharing off and on,
            with the curated targets' accuracy (checked afterwards against held-back labels); and the same
            requests posted straight to a fresh llama-server, one call per sample and one call per input
            (n=4), with the share of prompt tokens the server actually processed (``timings.prompt_n``)
  train     one epoch of LoRA on the same curated pairs: with the template's default system prompt (before),
            without it (after), and without it in length-grouped batches (the option)
  demo      ``s2distill run configs/demo.yaml`` end to end, before and after (a subprocess, timed)

Every part is written to results/speed.partial.json as it ends (a rerun with ``--parts`` redoes only
those); the result, speed.{json,md,html}, when all three parts are in.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from common import RESULTS, Table, ci, machine, pct, write_result  # noqa: E402

from s2distill.config import load_config  # noqa: E402

DEMO = Path(__file__).resolve().parent.parent / "src" / "s2distill" / "configs" / "demo.yaml"
OLD_BEHAVIOUR = ["backend.share_samples=false", "task.system_prompt=null"]
OLD_DEMO = ["train.epochs=3"]  # the demo's sizes before this benchmark chose new ones
PARTIAL = RESULTS / "speed.partial.json"


def _gold(rd: Path) -> dict:
    return {r["id"]: r["gold"] for r in map(json.loads, (rd / "data" / "train.gold.jsonl").read_text().splitlines())}


def curated_accuracy(rd: Path, task) -> dict:
    gold = _gold(rd)
    pairs = [json.loads(x) for x in (rd / "curate" / "pairs.jsonl").read_text().splitlines() if x.strip()]
    right = sum(task.score(p["target"], gold.get(p["example_id"].partition("~")[0])) for p in pairs)
    return {"pairs": len(pairs), "correct": right, "accuracy": round(right / len(pairs), 4) if pairs else None}


def toolkit_generate(work: Path, share: bool) -> dict:
    """The demo's data, generate and curate stages in a fresh run directory; the generate stage's wall time."""
    from s2distill.pipeline import Pipeline

    rd = work / f"generate_{'shared' if share else 'single'}"
    shutil.rmtree(rd, ignore_errors=True)
    cfg = load_config(DEMO, [f"backend.share_samples={str(share).lower()}"])
    p = Pipeline(cfg, run_dir=rd, progress=False)
    p.run(until="curate")
    st = json.loads((rd / "manifest.json").read_text())["stages"]["generate"]
    return {"share_samples": share, "wall_s": st["wall_s"], "samples": st.get("generated"),
            "curated": curated_accuracy(rd, p.task)}


def demo_requests():
    """The generate stage's requests (the demo's train inputs, 3-shot CoT, n=4), recorded by a fake engine."""
    from s2distill.backends.fake import FakeBackend
    from s2distill.methods import METHODS
    from s2distill.tasks import make_task
    from s2distill.evaluate import method_params

    cfg = load_config(DEMO)
    task = make_task(cfg.task)
    fake = FakeBackend(lambda r, j: "The answer is 1.")
    METHODS.get(cfg.method.name)(task, task.load("train", cfg.task.n_train, cfg.task.seed), fake,
                                 method_params(cfg, cfg.method.n, cfg.method.temperature), cfg.method)
    return cfg, fake.requests


def raw_generate(shared: bool, parallel: int | None = None) -> dict:
    """The same requests posted straight to a fresh llama-server (the demo's slots and context): one call per
    sample (seed + j) or one per input (n); prompt tokens sent vs processed (the server's ``timings``)."""
    from s2distill.backends.llamacpp import LlamaCppBackend

    cfg, reqs = demo_requests()
    b = cfg.backend
    slots = parallel or b.parallel
    concurrency = parallel or b.concurrency
    eng = LlamaCppBackend(model=cfg.model, parallel=slots, ctx_per_slot=b.ctx_per_slot, threads=b.threads)
    client = httpx.Client(timeout=1200, limits=httpx.Limits(max_connections=concurrency))
    calls = [(r, r.params.n, 0) for r in reqs] if shared else [(r, 1, j) for r in reqs for j in range(r.params.n)]

    def post(call):
        r, n, j = call
        p = r.params
        body = {"messages": list(r.messages), "max_tokens": p.max_tokens, "temperature": p.temperature,
                "top_p": p.top_p, "seed": p.seed + j, "n": n, **({"logprobs": True} if n > 1 else {})}
        if p.stop:
            body["stop"] = list(p.stop)
        d = client.post(f"{eng.base_url}/chat/completions", json=body).raise_for_status().json()
        gen = sum(len(c["logprobs"]["content"]) for c in d["choices"]) if n > 1 else d["usage"]["completion_tokens"]
        return n * d["usage"]["prompt_tokens"], d["timings"]["prompt_n"], gen

    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max(1, concurrency // (reqs[0].params.n if shared else 1))) as pool:
            out = list(pool.map(post, calls))
        wall = time.perf_counter() - t0
    finally:
        client.close()
        eng.close()
    sent, processed, gen = (sum(x[k] for x in out) for k in range(3))
    return {"mode": "one call per input (n)" if shared else "one call per sample", "calls": len(calls), "slots": slots,
            "wall_s": round(wall, 1), "prompt_tokens": sent, "prompt_tokens_processed": processed,
            "processed_share": round(processed / sent, 4), "generated_tokens": gen}


def part_generate(work: Path) -> dict:
    raw = [raw_generate(False), raw_generate(True)]
    tk = [toolkit_generate(work, False), toolkit_generate(work, True)]
    return {"raw": raw, "toolkit": tk, "generate_speedup": round(tk[0]["wall_s"] / tk[1]["wall_s"], 3),
            "raw_speedup": round(raw[0]["wall_s"] / raw[1]["wall_s"], 3)}


def part_slots(work: Path) -> dict:
    """Does a bigger decoding batch help on this CPU? The shared requests at 8, 16 (the default) and 32 slots
    (samples in flight = slots), each on a fresh server."""
    return {"rows": [raw_generate(True, parallel=p) for p in (8, 16, 32)]}


def part_train(work: Path) -> dict:
    """One epoch on the shared run's curated pairs, three ways (the template's system prompt back in = the
    pairs without their empty system turn)."""
    from s2distill.train import settings_of, train_lora
    from s2distill.types import TrainPair

    rd = work / "generate_shared"
    if not (rd / "curate" / "pairs.jsonl").is_file():
        raise SystemExit(f"{rd}/curate/pairs.jsonl missing: run --parts generate first")
    pairs = [TrainPair.from_json(json.loads(x)) for x in (rd / "curate" / "pairs.jsonl").read_text().splitlines()]
    with_default = [dataclasses.replace(p, messages=tuple(m for m in p.messages if m["role"] != "system")) for p in pairs]
    cfg = load_config(DEMO)
    rows = []
    for label, ps, grouped in (("template's system prompt, random batches", with_default, False),
                               ("no system prompt, random batches", pairs, False),
                               ("no system prompt, length-grouped batches", pairs, True)):
        out = work / "train" / label.replace(" ", "_").replace(",", "").replace("'", "")
        shutil.rmtree(out, ignore_errors=True)
        tcfg = dataclasses.replace(settings_of(cfg), epochs=1.0, group_by_length=grouped)
        s = train_lora(ps, cfg.train.base_model or cfg.model, out, tcfg, progress=False)
        rows.append({"variant": label, "steps": s["steps"], "train_time_s": s["train_time_s"],
                     "s_per_step": s["s_per_step"], "tokens_per_step": s["tokens_per_step"],
                     "tokens_per_s": s["tokens_per_s"], "padding_share": s["padding_share"],
                     "final_loss": s["final_loss"]})
        shutil.rmtree(out, ignore_errors=True)
    return {"pairs": len(pairs), "rows": rows}


def epoch_speedup(t: dict) -> float:
    """Before (row 0) over after (row 1: today's defaults); row 2 is the length-grouping option."""
    return round(t["rows"][0]["train_time_s"] / t["rows"][1]["train_time_s"], 3)


def demo_run(work: Path, label: str, overrides: list[str]) -> dict:
    rd = work / f"demo_{label}"
    shutil.rmtree(rd, ignore_errors=True)
    exe = Path(sys.executable).with_name("s2distill")
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe), "run", str(DEMO), *overrides, f"run_dir={rd}"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (work / f"demo_{label}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"demo {label} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    rep = json.loads((rd / "report.json").read_text())
    rows = {r["system"]: r for r in rep["rows"]}
    stages = json.loads((rd / "manifest.json").read_text())["stages"]
    summ = json.loads((rd / "model" / "train_summary.json").read_text())
    return {"label": label, "overrides": overrides, "wall_s": round(wall, 1),
            "stages_s": {k: v.get("wall_s") for k, v in stages.items()},
            "train": {k: summ.get(k) for k in ("steps", "s_per_step", "tokens_per_step", "tokens_per_s", "padding_share")},
            "rows": [{k: r.get(k) for k in ("system", "n", "accuracy", "ci95", "mean_generated_tokens")}
                     for r in rows.values()],
            "verdict": (rep.get("verdict") or {}).get("decision")}


def part_demo(work: Path) -> dict:
    return {"before": demo_run(work, "before", OLD_BEHAVIOUR + OLD_DEMO), "after": demo_run(work, "after", [])}


def _row(d: dict, system: str) -> dict:
    """A demo report row by system: 'system1', 'distilled', or 'maj' (the maj@k row, named after the method)."""
    return next(r for r in d["rows"] if (("maj@" in r["system"]) if system == "maj" else r["system"] == system))


def summary(parts: dict) -> dict:
    g, t, d = parts["generate"], parts["train"], parts["demo"]
    s1a, dla = _row(d["after"], "system1"), _row(d["after"], "distilled")
    return {"cpu": machine()["cpu"], "demo_wall_s_before": d["before"]["wall_s"], "demo_wall_s_after": d["after"]["wall_s"],
            "generate_speedup": g["generate_speedup"],
            "prompt_tokens_processed_share_before": g["raw"][0]["processed_share"],
            "prompt_tokens_processed_share_after": g["raw"][1]["processed_share"],
            "train_tokens_per_step_before": t["rows"][0]["tokens_per_step"],
            "train_tokens_per_step_after": t["rows"][1]["tokens_per_step"],
            "train_epoch_speedup": epoch_speedup(t),
            "train_epoch_speedup_with_grouping": round(t["rows"][0]["train_time_s"] / t["rows"][2]["train_time_s"], 3),
            "curated_target_accuracy_before": g["toolkit"][0]["curated"]["accuracy"],
            "curated_target_accuracy_after": g["toolkit"][1]["curated"]["accuracy"],
            "accuracy_before": {r["system"]: r["accuracy"] for r in d["before"]["rows"]},
            "accuracy_after": {r["system"]: r["accuracy"] for r in d["after"]["rows"]},
            "demo_generate_speedup": round(d["before"]["stages_s"]["generate"] / d["after"]["stages_s"]["generate"], 3),
            "demo_intervals_separate_after": s1a["ci95"][1] < dla["ci95"][0]}


def markdown(data: dict) -> str:
    s, g, t, d = data["summary"], data["generate"], data["train"], data["demo"]
    out = ["# Speed on a 2-core CPU: before and after (one run)", "",
           f"CPU: {s['cpu']}. Demo end to end: **{s['demo_wall_s_before'] / 60:.1f} min before, "
           f"{s['demo_wall_s_after'] / 60:.1f} min after**; generate stage {s['generate_speedup']:.2f}x faster "
           f"(A/B below; {s['demo_generate_speedup']:.2f}x in the two demo runs); one training epoch "
           f"{s['train_epoch_speedup']:.2f}x faster. After: System 1 vs distilled 95% intervals "
           f"{'do not overlap' if s['demo_intervals_separate_after'] else 'OVERLAP'}.", "",
           "## Generate: the demo's 96 inputs x 4 CoT samples", ""]
    out += Table(["path", "calls", "wall s", "prompt tokens sent", "processed by the server", "share"],
                 [[r["mode"], str(r["calls"]), f"{r['wall_s']:.1f}", str(r["prompt_tokens"]),
                   str(r["prompt_tokens_processed"]), pct(r["processed_share"]) + "%"] for r in g["raw"]]).markdown().splitlines()
    out += [""]
    out += Table(["toolkit generate stage", "wall s", "curated pairs", "targets correct"],
                 [["backend.share_samples=" + str(r["share_samples"]).lower(), f"{r['wall_s']:.1f}",
                   str(r["curated"]["pairs"]), f"{r['curated']['correct']}/{r['curated']['pairs']} "
                   f"({pct(r['curated']['accuracy'])}%)"] for r in g["toolkit"]]).markdown().splitlines()
    out += ["", f"## Train: one epoch on the same {t['pairs']} curated pairs", ""]
    out += Table(["", "variant", "steps", "s", "s/step", "tokens/step", "tokens/s", "padding", "final loss"],
                 [[tag, r["variant"], str(r["steps"]), f"{r['train_time_s']:.0f}", f"{r['s_per_step']:.2f}",
                   f"{r['tokens_per_step']:.0f}", f"{r['tokens_per_s']:.0f}", pct(r["padding_share"]) + "%",
                   f"{r['final_loss']:.4g}"] for tag, r in zip(("before", "after", "option"), t["rows"])],
                 align="llrrrrrrr").markdown().splitlines()
    out += ["", "## The demo end to end (`s2distill run configs/demo.yaml`)", ""]
    rows = []
    for k in ("before", "after"):
        r = d[k]
        rows.append([k, f"{r['wall_s'] / 60:.1f}", f"{(r['stages_s'].get('generate') or 0):.0f}",
                     f"{(r['stages_s'].get('train') or 0):.0f}", str(r["train"]["steps"]),
                     f"{r['train']['tokens_per_step']:.0f}",
                     *(f"{pct(_row(r, s)['accuracy'])}% {ci(_row(r, s)['ci95'])}" for s in ("system1", "maj", "distilled")),
                     str(r["verdict"])])
    out += Table(["demo", "min", "generate s", "train s", "steps", "tokens/step", "System 1", "maj@4", "distilled",
                  "verdict"], rows).markdown().splitlines()
    out += ["", f"Before: `{' '.join(d['before']['overrides'])}`; after: configs/demo.yaml as committed."]
    if data.get("slots"):
        out += ["", "## Server slots (the shared requests straight to a fresh llama-server; samples in flight = slots)", ""]
        out += Table(["slots", "wall s", "generated tokens", "tokens/s"],
                     [[str(r["slots"]), f"{r['wall_s']:.1f}", str(r["generated_tokens"]),
                       f"{r['generated_tokens'] / r['wall_s']:.1f}"] for r in data["slots"]["rows"]]).markdown().splitlines()
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", nargs="+", default=["generate", "train", "demo"],
                    choices=["generate", "train", "demo", "slots"])
    ap.add_argument("--work", default="runs/speed")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = json.loads(PARTIAL.read_text()) if PARTIAL.is_file() else {}
    for part in args.parts:
        t0 = time.perf_counter()
        data[part] = {"generate": part_generate, "train": part_train, "demo": part_demo, "slots": part_slots}[part](work)
        data[part]["part_wall_s"] = round(time.perf_counter() - t0, 1)
        PARTIAL.write_text(json.dumps(data, indent=2) + "\n")
        print(f"[speed] {part} done in {data[part]['part_wall_s']:.0f}s", file=sys.stderr, flush=True)
    if all(k in data for k in ("generate", "train", "demo")):
        data["summary"] = summary(data)
        write_result("speed", data, markdown(data))
        print(markdown(data))


if __name__ == "__main__":
    main()
