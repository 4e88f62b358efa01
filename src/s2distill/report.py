"""Report: the System 1 / System 2 / distilled table as JSON and markdown."""
from __future__ import annotations

from pathlib import Path

from .evaluate import summarize
from .label_free import label_free, verdict
from .label_free import markdown as label_free_markdown
from .rundir import RunDir, read_json, read_jsonl
from .types import EvalRecord

ORDER = ("system1", "system2", "system2_maj", "distilled")


def system_label(system: str, method: str, k: int) -> str:
    return {"system1": "system1", "system2": method, "system2_maj": f"{method}_maj@{k}",
            "distilled": "distilled"}[system]


def curation_quality(pipeline) -> dict | None:
    """How often the curated targets are right, checked afterwards against the held-back
    train labels (``data/train.gold.jsonl``, never given to a curator). None when unlabeled."""
    rd = pipeline.rd
    gold_path, pairs_path = rd / "data" / "train.gold.jsonl", rd / "curate" / "pairs.jsonl"
    if not gold_path.exists() or not pairs_path.exists():
        return None
    gold = {d["id"]: d["gold"] for d in read_jsonl(gold_path) if d.get("gold") is not None}
    pairs = [d for d in read_jsonl(pairs_path) if d["example_id"] in gold]
    if not pairs:
        return None
    right = sum(pipeline.task.score(pipeline.task.extract(p["target"]), gold[p["example_id"]]) for p in pairs)
    return {"checked": len(pairs), "correct_targets": right, "target_accuracy": right / len(pairs)}


def robustness(rd: RunDir, cfg, rows: list[dict]) -> dict:
    """Per system: accuracy on the original wording and on each rewording, and the spread (max - min)."""
    out = {}
    for row in rows:
        path = rd / "eval" / f"{row['role']}.reworded.jsonl"
        if row["role"] not in ("system1", "distilled") or not cfg.eval.rewordings or not path.exists() \
                or row["accuracy"] is None:
            continue
        records = [EvalRecord.from_json(d) for d in read_jsonl(path)]
        per = [summarize([r for r in records if r.meta.get("wording") == i]) for i in range(cfg.eval.rewordings)]
        accs = [row["accuracy"]] + [p["accuracy"] for p in per]
        out[row["role"]] = {"n": row["n"], "accuracy_per_wording": accs, "ci95_per_wording": [row["ci95"]] +
                            [p["ci95"] for p in per], "spread": max(accs) - min(accs),
                            "mean": sum(accs) / len(accs)}
    return out


def build_report(pipeline) -> dict:
    rd: RunDir = pipeline.rd
    cfg = pipeline.cfg
    rows = []
    for system in ORDER:
        path = rd / "eval" / f"{system}.jsonl"
        if system not in cfg.eval.systems or not path.exists():
            continue
        records = [EvalRecord.from_json(d) for d in read_jsonl(path)]
        info = rd.stage_info(f"eval_{system}")
        s = summarize(records, info.get("wall_s_generate"))
        rows.append({"system": system_label(system, cfg.method.name, cfg.eval.k), "role": system, **s,
                     "cache_hits": info.get("cache_hits", 0)})
    man = rd.manifest["stages"]
    cur = man.get("curate", {})
    lf = label_free(rd / "eval", pipeline.task, cfg.eval.confident_share, cfg.eval.systems)
    report = {
        "run_dir": str(Path(rd.path).resolve()),
        "task": cfg.task.name,
        "task_options": cfg.task.options,
        "model": cfg.model,
        "backend": cfg.backend.name,
        "method": cfg.method.name,
        "method_samples": cfg.method.n,
        "rows": rows,
        "label_free": lf,  # agreement with System 2's majority etc., no labels needed (label_free.py)
        "verdict": verdict(rows, lf, cfg.eval.confident_share, cfg.eval.max_disagreement),
        "robustness": robustness(rd, cfg, rows),
        "curation": {"curator": cfg.curate.name, "kept": cur.get("kept"), "kept_inputs": cur.get("kept_inputs"),
                     "rejected": cur.get("rejected"),
                     "reject_reasons": cur.get("reject_reasons"),
                     "quality_checked_afterwards": curation_quality(pipeline)},
        "generation": {k: man.get("generate", {}).get(k) for k in ("wall_s_generate", "generated", "cache_hits")},
        "train": man.get("train", {}).get("summary"),
        "stages_wall_s": {k: v.get("wall_s") for k, v in man.items()},
    }
    from .stepwise import report_section

    stepwise = report_section(report)  # a curriculum's stage points (accuracy vs tokens); absent otherwise
    return {**report, "stepwise": stepwise} if stepwise else report


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _ci(c) -> str:
    return f"{_pct(c[0])}-{_pct(c[1])}" if c else "-"


def to_markdown(report: dict) -> str:
    lines = [f"# s2distill report: {report['task']} ({report['method']}, model {report['model']})", "",
             "| system | n | accuracy % | 95% CI | mean generated tokens | calls/answer | wall s/answer |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for r in report["rows"]:
        wall = f"{r['wall_s_per_answer']:.2f}" if r.get("wall_s_per_answer") is not None else "-"
        lines.append(f"| {r['system']} | {r['n']} | {_pct(r['accuracy'])} | {_ci(r['ci95'])} "
                     f"| {r['mean_generated_tokens']:.1f} | {r['calls_per_answer']:.1f} | {wall} |")
    lines += label_free_markdown(report.get("label_free"), report.get("verdict"), report["rows"])
    judged = [r for r in report["rows"] if r.get("judge")]
    if judged:
        lines += ["", "Pairwise judging, both response orders (a verdict that flips with the order counts as a tie):", "",
                  "| system | agreement % (ties count against) | agreement % on non-tie labels | n non-tie | "
                  "inconsistent % | tokens per verdict |", "|---|---:|---:|---:|---:|---:|"]
        for r in judged:
            j = r["judge"]
            lines.append(f"| {r['system']} | {_pct(r['accuracy'])} ({_ci(r['ci95'])}) | "
                         f"{_pct(j['accuracy_non_tie'])} ({_ci(j['accuracy_non_tie_ci95'])}) | {j['n_non_tie']} | "
                         f"{_pct(j['inconsistent'])} ({_ci(j['inconsistent_ci95'])}) | "
                         f"{j['tokens_per_verdict']:.1f} |")
    grouped = [r for r in report["rows"] if r.get("groups")]
    if grouped:
        names = list(dict.fromkeys(g for r in grouped for g in r["groups"] if g != "sycophancy"))
        lines += ["", "Accuracy % per input group (95% CI), and the sycophancy rate (answers repeating a suggested "
                  "wrong answer):", "", "| system | " + " | ".join(names) + " | sycophancy % |",
                  "|---|" + "---:|" * (len(names) + 1)]
        for r in grouped:
            g = r["groups"]
            cells = [f"{_pct(g[n]['accuracy'])} ({_ci(g[n]['ci95'])}), n={g[n]['n']}"
                     if n in g else "-" for n in names]
            sy = g.get("sycophancy")
            cells.append(f"{_pct(sy['rate'])} ({_ci(sy['ci95'])})" if sy else "-")
            lines.append(f"| {r['system']} | " + " | ".join(cells) + " |")
    rob = report.get("robustness") or {}
    if rob:
        n_w = len(next(iter(rob.values()))["accuracy_per_wording"])
        lines += ["", "Robustness to the wording of the instruction (accuracy %, wording 0 = the configured one):", "",
                  "| system | " + " | ".join(f"wording {i}" for i in range(n_w)) + " | mean | spread (max-min) |",
                  "|---|" + "---:|" * (n_w + 2)]
        for system, r in rob.items():
            lines.append(f"| {system} | " + " | ".join(_pct(a) for a in r["accuracy_per_wording"]) +
                         f" | {_pct(r['mean'])} | {_pct(r['spread'])} |")
    c = report.get("curation") or {}
    if c.get("kept") is not None:
        ki = c.get("kept_inputs")
        kept = f"{ki} inputs ({c['kept']} training pairs)" if ki is not None and ki != c["kept"] else str(c["kept"])
        lines += ["", f"Curation ({c['curator']}): kept {kept}, rejected {c['rejected']} {c.get('reject_reasons') or ''}"]
        q = c.get("quality_checked_afterwards")
        if q:
            lines.append(f"Curated targets correct (checked afterwards against held-back labels): "
                         f"{q['correct_targets']}/{q['checked']} ({_pct(q['target_accuracy'])}%)")
    t = report.get("train") or {}
    if t:
        lines += [f"Training: {t.get('steps')} steps, final loss {t.get('final_loss')}, "
                  f"{t.get('train_time_s', 0):.0f}s, peak RSS {t.get('peak_rss_bytes', 0) / 2**30:.2f} GiB"]
    from .stepwise import markdown as stepwise_markdown

    lines += stepwise_markdown(report.get("stepwise"))
    lines += ["", f"Run directory: `{report['run_dir']}`", ""]
    return "\n".join(lines)


def load_report(run_dir: str | Path) -> dict:
    p = Path(run_dir) / "report.json"
    if not p.exists():
        from .errors import S2DistillError

        raise S2DistillError(f"no report in {run_dir}; run `s2distill run CONFIG` first (it resumes where it stopped)")
    return read_json(p)
