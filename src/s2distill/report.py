"""Report: the System 1 / System 2 / distilled table as JSON and markdown."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .evaluate import summarize
from .label_free import label_free, verdict
from .label_free import markdown as label_free_markdown
from .report_types import SystemRow
from .rundir import RunDir, read_json, read_jsonl
from .tables import Table, ci, num, pct
from .systems import MAJ, SYSTEMS, label
from .types import EvalRecord



def system_label(system: str, method: str, k: int) -> str:
    return label(system, method, k)


def curation_quality(rd: RunDir, task) -> dict | None:
    """How often the curated targets are right, checked afterwards against the held-back
    train labels (``data/train.gold.jsonl``, never given to a curator). None when unlabeled."""
    gold_path, pairs_path = rd / "data" / "train.gold.jsonl", rd / "curate" / "pairs.jsonl"
    if not gold_path.exists() or not pairs_path.exists():
        return None
    gold = {d["id"]: d["gold"] for d in read_jsonl(gold_path) if d.get("gold") is not None}
    pairs = [d for d in read_jsonl(pairs_path) if d["example_id"] in gold]
    if not pairs:
        return None
    right = sum(task.score(task.extract(p["target"]), gold[p["example_id"]]) for p in pairs)
    return {"checked": len(pairs), "correct_targets": right, "target_accuracy": right / len(pairs)}


def robustness(rd: RunDir, cfg, rows: list[dict]) -> dict:
    """Per system: accuracy on the original wording and on each rewording, and the spread (max - min)."""
    out = {}
    for row in rows:
        path = rd / "eval" / f"{row['role']}.reworded.jsonl"
        if not cfg.eval.rewordings or not path.exists() \
                or row["accuracy"] is None:
            continue
        records = [EvalRecord.from_json(d) for d in read_jsonl(path)]
        per = [summarize([r for r in records if r.meta.get("wording") == i]) for i in range(cfg.eval.rewordings)]
        accs = [row["accuracy"]] + [p["accuracy"] for p in per]
        out[row["role"]] = {"n": row["n"], "accuracy_per_wording": accs, "ci95_per_wording": [row["ci95"]] +
                            [p["ci95"] for p in per], "spread": max(accs) - min(accs),
                            "mean": sum(accs) / len(accs)}
    return out


def build_report(run_dir: str | Path | RunDir, cfg=None, task=None) -> dict:
    """The report of a run directory: read from its files only (no engine, no pipeline). ``cfg``:
    the run's config (default: its ``config.yaml``); ``task``: the task built from it."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if cfg is None:
        from .checks import load_checked

        cfg = load_checked(rd / "config.yaml")
    if task is None:
        from .tasks import make_task

        task = make_task(cfg.task)
    rows = system_rows(rd, cfg)
    man = rd.manifest["stages"]
    cur = man.get("curate", {})
    lf = label_free(rd / "eval", task, cfg.eval.confident_share, cfg.eval.systems)
    from .cascade import cascade_part

    cascade = cascade_part(rd / "eval", task, cfg.eval.max_disagreement, cfg.eval.cascade_fallback,
                           risk=cfg.eval.cascade_risk) if lf else None
    seen_path = rd / "data" / "training_inputs.json"  # `s2distill eval --data`: inputs the run trained on
    seen = read_json(seen_path) if seen_path.is_file() else {}
    from .teacher import report_part

    teacher = report_part(rd, cfg, rows)  # with a teacher: each row's model and the tokens per model
    report = {
        "run_dir": str(Path(rd.path).resolve()),
        "task": cfg.task.name,
        "task_options": cfg.task.options,
        "model": cfg.model,
        "backend": cfg.backend.name,
        "method": cfg.method.name,
        "method_samples": cfg.method.n,
        **teacher,
        "rows": rows,
        "label_free": lf,  # agreement with System 2's majority etc., no labels needed (label_free.py)
        **({"training_inputs": {"n": seen["n"], "of": seen["of"]}} if seen.get("n") else {}),
        "cascade": cascade,  # distilled model first, System 2 below a calibrated confidence (cascade.py)
        "verdict": verdict(rows, lf, cfg.eval.confident_share, cfg.eval.max_disagreement, seen.get("n", 0), cascade),
        **spotcheck_part(rd, task, cascade, cfg.eval.max_disagreement, rows),
        "robustness": robustness(rd, cfg, rows),
        "retention": read_json(rd / "eval" / "retention.json") if (rd / "eval" / "retention.json").is_file() else None,
        "curation": {"curator": cfg.curate.name, "kept": cur.get("kept"), "kept_inputs": cur.get("kept_inputs"),
                     "rejected": cur.get("rejected"),
                     "reject_reasons": cur.get("reject_reasons"),
                     "quality_checked_afterwards": curation_quality(rd, task)},
        "generation": {k: man.get("generate", {}).get(k) for k in ("wall_s_generate", "generated", "cache_hits")},
        "train": man.get("train", {}).get("summary"),
        "stages_wall_s": {k: v.get("wall_s") for k, v in man.items()},
    }
    return _settle(rd, cfg, report)


def system_rows(rd: RunDir, cfg) -> list[dict]:
    """One row per evaluated system (in the System table's order): accuracy, tokens, wall time, cache hits; each a
    ``report_types.SystemRow`` (a key it does not declare fails here) serialised for report.json."""
    rows = []
    for system in SYSTEMS:
        path = rd / "eval" / f"{system}.jsonl"
        if system not in cfg.eval.systems or not path.exists():
            continue
        records = [EvalRecord.from_json(d) for d in read_jsonl(path)]
        info = rd.stage_info(f"eval_{system}")
        s = summarize(records, info.get("wall_s_generate"))
        rows.append(SystemRow(system=system_label(system, cfg.method.name, cfg.eval.k), role=system, **s,
                              cache_hits=info.get("cache_hits", 0)).to_json())
    return rows


def _settle(rd: RunDir, cfg, report: dict) -> dict:
    """The parts read from the finished report: a labeled spot-check's verdict over the label-free one, the
    retention note on the verdict in force, the rounds of a continued run (whose row for this round deploys what
    that verdict says, so an earlier round that deploys the same guarantee for fewer tokens is named), a
    curriculum's stage points."""
    from .retention import verdict_note
    from .rounds import ROUND_FILE, round_row, rounds_table
    from .stepwise import report_section

    if report.get("spotcheck", {}).get("verdict", {}).get("decision"):  # labels settle what label-free could not
        report["verdict"] = {**report["spotcheck"]["verdict"], "label_free_verdict": report["verdict"]}
    note = verdict_note(report["retention"], cfg.eval.max_retention_drop)
    if note and report["verdict"].get("line"):  # the verdict says what distillation cost elsewhere
        report["verdict"] = {**report["verdict"], "line": f"{report['verdict']['line']}; {note}", "retention_note": note}
    if (Path(rd.path) / ROUND_FILE).is_file():  # a continued round: the chain of rounds, this one's row last
        report["rounds"] = rounds_table(rd.path)[:-1] + [round_row(Path(rd.path), report, rd.manifest["stages"])]
        report["verdict"] = serve_instead(report["verdict"], report["rounds"])
    stepwise = report_section(report)  # a curriculum's stage points (accuracy vs tokens); absent otherwise
    return {**report, "stepwise": stepwise} if stepwise else report


def serve_instead(verdict: dict, rounds: list[dict]) -> dict:
    """The verdict of a round, with ``serve_instead`` (and a sentence on its line) where an earlier round of the
    chain deploys the same guarantee for fewer tokens (:func:`~s2distill.rounds.round_to_serve`)."""
    from .rounds import deployed_tokens, round_to_serve

    best = round_to_serve(rounds)
    if best is None or not verdict.get("line"):
        return verdict
    mine, theirs = deployed_tokens(rounds[-1]), deployed_tokens(best)
    what = {"ship": "its distilled model", "cascade": "its cascade"}[best["verdict"]]
    this = "System 2 (keep)" if mine is None else f"{mine:.1f}"
    note = (f"round {best['round']} deploys the same guarantee for fewer tokens ({what}: {theirs:.1f} "
            f"generated tokens per input; this round: {this}): keep serving it (s2distill serve {best['run_dir']}) "
            "until a round beats it")
    return {**verdict, "line": f"{verdict['line']}; {note}",
            "serve_instead": {"round": best["round"], "run_dir": best["run_dir"], "tokens": theirs,
                              "this_round_tokens": mine, "note": note}}


ROUNDS_INTRO = ("Rounds (each trained from the base model on all curated pairs so far, evaluated on the same held-out "
                "inputs; System 2 on the base model is the reference in every round):")


def rounds_table_of(rows: list[dict] | None) -> Table | None:
    """The rounds of a continued run, one row each (``s2distill continue``); None for a plain run."""
    if not rows:
        return None
    return Table(["round", "inputs", "curated pairs", "steps", "distilled accuracy %", "distilled agreement %",
                  "System 2 accuracy %", "cascade coverage %", "cascade accuracy %", "cascade tokens/input", "verdict"],
                 [[str(r["round"]), str(r["inputs"] or "-"), str(r["pairs"] if r["pairs"] is not None else "-"),
                   str(r["steps"] or "-"), pct(r["distilled_accuracy"]), pct(r["distilled_agreement"]),
                   pct(r["system2_accuracy"]), pct(r["cascade_coverage"]), pct(r["cascade_accuracy"]),
                   num(r["cascade_tokens"]), str(r["verdict"] or "-")] for r in rows], align="rrrrrrrrrrl")


def rounds_markdown(rows: list[dict] | None) -> list[str]:
    t = rounds_table_of(rows)
    return [] if t is None else ["", ROUNDS_INTRO, "", t.markdown()]


def spotcheck_part(rd, task, cascade: dict | None, max_disagreement: float, rows: list[dict]) -> dict:
    """``{"spotcheck": ...}`` when the run holds labels (``spotcheck/labels.jsonl``, kept by
    ``s2distill spotcheck RUN --labels FILE``): every system's accuracy from them (spotcheck.py), scored
    afresh against the current eval files; ``{}`` otherwise."""
    labels = Path(rd.path) / "spotcheck" / "labels.jsonl"
    if not labels.is_file() or not (Path(rd.path) / "eval" / f"{MAJ}.jsonl").is_file():
        return {}
    from .spotcheck import score, tokens_of

    return {"spotcheck": score(rd.path, labels, task, cascade, max_disagreement, tokens_of(rows, cascade))}


def summary_table(report: dict, with_label_free: bool = False) -> Table:
    """One row per system: accuracy (95% CI), tokens, calls, time; with ``with_label_free`` (and a
    label-free section in the report) also the agreement with System 2."""
    lf = report.get("label_free") or {}
    has_lf = with_label_free and bool(lf)
    teacher = bool(report.get("teacher"))  # teacher -> student runs: which model each row used
    headers = ["system", *(["model"] if teacher else []), "n", "accuracy %", "95% CI", "mean generated tokens",
               "calls/answer", "wall s/answer"]
    if has_lf:
        headers += ["agreement with System 2 %", "95% CI (agreement)", "confident agreement %"]
    rows = []
    for r in report.get("rows", []):
        row = [r["system"], *([r.get("model", "-")] if teacher else []), str(r["n"]), pct(r.get("accuracy")),
               ci(r.get("ci95")), num(r.get("mean_generated_tokens")), num(r.get("calls_per_answer")),
               num(r.get("wall_s_per_answer"), ".2f")]
        if has_lf:
            x = lf.get(r.get("role")) or {}
            if "mean_vote_share" in x:
                row += [f"vote share {pct(x['mean_vote_share'])}", "-", "-"]
            else:
                row += [pct(x.get("agreement")), ci(x.get("agreement_ci95")), pct(x.get("confident_agreement"))]
        rows.append(row)
    return Table(headers, rows, align="l" + ("l" if teacher else "") + "r" * 2 + "l" + "r" * 3 + ("rlr" if has_lf else ""))


def models_line(report: dict) -> str:
    """'model M', or with a teacher 'teacher T, student S' (the report's heading)."""
    t = report.get("teacher")
    return f"teacher {t}, student {report.get('model')}" if t else f"model {report.get('model')}"


def tokens_table(report: dict) -> Table | None:
    """With a teacher: the tokens each model generated (System 2 on the train inputs, the evaluations)."""
    tpm = report.get("tokens_per_model") or {}
    if not tpm:
        return None
    return Table(["model", "System 2 generation (train inputs)", "evaluation", "total"],
                 [[m, str(t["generate_train"]), str(t["eval"]), str(t["total"])] for m, t in tpm.items()], align="lrrr")


def judge_table(report: dict) -> Table | None:
    """Pairwise judges run on both response orders: agreement, position inconsistency, cost."""
    judged = [r for r in report.get("rows", []) if r.get("judge")]
    if not judged:
        return None
    return Table(["system", "agreement % (ties count against)", "agreement % on non-tie labels", "n non-tie",
                  "inconsistent %", "tokens per verdict"],
                 [[r["system"], f"{pct(r['accuracy'])} ({ci(r['ci95'])})",
                   f"{pct(r['judge']['accuracy_non_tie'])} ({ci(r['judge']['accuracy_non_tie_ci95'])})",
                   str(r["judge"]["n_non_tie"]), f"{pct(r['judge']['inconsistent'])} ({ci(r['judge']['inconsistent_ci95'])})",
                   num(r["judge"]["tokens_per_verdict"])] for r in judged])


def group_table(report: dict) -> Table | None:
    """Accuracy per input group (e.g. TriviaQA opinion types) and the sycophancy rate."""
    grouped = [r for r in report.get("rows", []) if r.get("groups")]
    if not grouped:
        return None
    names = list(dict.fromkeys(g for r in grouped for g in r["groups"] if g != "sycophancy"))
    rows = []
    for r in grouped:
        g = r["groups"]
        cells = [f"{pct(g[n]['accuracy'])} ({ci(g[n]['ci95'])}), n={g[n]['n']}" if n in g else "-" for n in names]
        sy = g.get("sycophancy")
        rows.append([r["system"], *cells, f"{pct(sy['rate'])} ({ci(sy['ci95'])})" if sy else "-"])
    return Table(["system", *names, "sycophancy %"], rows)


def robustness_table(report: dict) -> Table | None:
    """Accuracy per wording of the instruction, its mean and spread."""
    rob = report.get("robustness") or {}
    if not rob:
        return None
    n_w = len(next(iter(rob.values()))["accuracy_per_wording"])
    rows = [[s, *(pct(a) for a in r["accuracy_per_wording"]), pct(r["mean"]), pct(r["spread"])] for s, r in rob.items()]
    return Table(["system", *(f"wording {i}" for i in range(n_w)), "mean", "spread (max-min)"], rows)


def to_markdown(report: dict) -> str:
    lines = [f"# s2distill report: {report['task']} ({report['method']}, {models_line(report)})", ""]
    seen = report.get("training_inputs")
    if seen:
        lines += [f"**Warning: {seen['n']} of {seen['of']} inputs were training inputs; their scores are not "
                  "held-out.**", ""]
    lines.append(summary_table(report).markdown())
    t = tokens_table(report)
    if t is not None:
        lines += ["", "Generated tokens per model:", "", t.markdown()]
    from .cascade import markdown as cascade_markdown

    lines += cascade_markdown(report.get("cascade"))
    lines += rounds_markdown(report.get("rounds"))
    from .retention import markdown as retention_markdown

    lines += retention_markdown(report.get("retention"))
    v = report.get("verdict") or {}
    lines += label_free_markdown(report.get("label_free"), v.get("label_free_verdict", v), report["rows"])
    if report.get("spotcheck"):
        from .spotcheck import markdown as spotcheck_markdown

        lines += ["", spotcheck_markdown(report["spotcheck"])]
    for table, intro in ((judge_table(report), "Pairwise judging, both response orders (a verdict that flips with "
                                                "the order counts as a tie):"),
                         (group_table(report), "Accuracy % per input group (95% CI), and the sycophancy rate (answers "
                                               "repeating a suggested wrong answer):"),
                         (robustness_table(report), "Robustness to the wording of the instruction (accuracy %, "
                                                    "wording 0 = the configured one):")):
        if table is not None:
            lines += ["", intro, "", table.markdown()]
    c = report.get("curation") or {}
    if c.get("kept") is not None:
        ki = c.get("kept_inputs")
        kept = f"{ki} inputs ({c['kept']} training pairs)" if ki is not None and ki != c["kept"] else str(c["kept"])
        lines += ["", f"Curation ({c['curator']}): kept {kept}, rejected {c['rejected']} {c.get('reject_reasons') or ''}"]
        q = c.get("quality_checked_afterwards")
        if q:
            lines.append(f"Curated targets correct (checked afterwards against held-back labels): "
                         f"{q['correct_targets']}/{q['checked']} ({pct(q['target_accuracy'])}%)")
    t = report.get("train") or {}
    if t:
        rate = (f", {t['tokens_per_step']:.0f} tokens/step, {t['tokens_per_s']:.0f} tokens/s"
                if t.get("tokens_per_step") and t.get("tokens_per_s") else "")
        lines += [f"Training: {t.get('steps')} steps, final loss {t.get('final_loss')}, "
                  f"{t.get('train_time_s', 0):.0f}s{rate}, peak RSS {t.get('peak_rss_bytes', 0) / 2**30:.2f} GiB"]
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


def verdict_of_run(run_dir: str | Path, overrides: Sequence[str] = ()) -> dict:
    """The verdict of a run directory (or an ``evals/<name>`` folder of one): from its report.json, or
    rebuilt from its eval files (no model calls) when the report predates verdicts or thresholds are overridden."""
    from .errors import S2DistillError

    run_dir = Path(run_dir)
    rep = run_dir / "report.json"
    if rep.is_file() and not overrides:
        report = read_json(rep)
        if report.get("verdict"):
            return report["verdict"]
    if not (run_dir / "config.yaml").is_file():
        raise S2DistillError(f"{run_dir} has no report.json or config.yaml; fix: pass a run directory made by "
                             "`s2distill run CONFIG` (or `s2distill eval RUN --data FILE`)")
    from .checks import load_checked

    return build_report(run_dir, load_checked(run_dir / "config.yaml", list(overrides)))["verdict"]
