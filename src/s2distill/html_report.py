"""A self-contained HTML report of one run directory: ``s2distill report RUN_DIR --html``.

Built from the files of the run directory only (report.json, config.yaml, env.json,
manifest.json, data/, traces/, curate/, eval/, model/), never from a live pipeline: no engine
is needed. Everything is inlined (CSS, hand-written SVG plots, a small script for the example
browsers, the examples as JSON), so the file opens from disk with no network. The browsers
render one page of rows at a time, and an example's details only when it is opened, so a
run with thousands of eval inputs stays responsive.
"""
from __future__ import annotations

import json
from collections import Counter
from html import escape
from pathlib import Path

from .html_assets import CSS, JS
from .report import (build_report, group_table, judge_table, models_line, robustness_table, summary_table, to_markdown,
                     tokens_table)
from .rundir import read_json, read_jsonl
from .svgplot import MORE_COLORS, Curve, Point, accuracy_tokens_svg, color_of, line_svg
from .tables import Table, ci, num, pct
from .systems import MAJ, SYSTEMS, TABLE, reference
from .systems import get as get_system

TEXT_CAP = 4000  # characters of a question or a response kept in the page


def _read_jsonl(path: Path) -> list[dict]:
    return read_jsonl(path) if path.is_file() else []


def _cap(s, n: int = TEXT_CAP):
    if s is None:
        return None
    s = str(s)
    return s if len(s) <= n else s[:n] + f" [... {len(s) - n} more characters]"


def _correct(rec: dict):
    """True/False, or None when the record has no gold label."""
    return None if rec.get("gold") is None else bool(rec.get("correct"))


def json_for_script(obj) -> str:
    """JSON that is safe inside <script type="application/json">: no '<', '>' or '&' survive
    literally, so model output such as '</script><script>' cannot end the block."""
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _scorer(rd: Path):
    """The task's own scoring (extract + score) for the curation check, from config.yaml; plain
    string equality when the task cannot be built here."""
    try:
        from .checks import load_checked
        from .tasks import make_task

        task = make_task(load_checked(rd / "config.yaml").task)
        return lambda target, gold: bool(task.score(task.extract(target), gold))
    except Exception:  # noqa: BLE001 - the report must still render
        return lambda target, gold: str(target).strip() == str(gold).strip()


# -- data from the run directory ----------------------------------------------------------
def eval_rows(rd: Path) -> list[dict]:
    """One row per eval input: question, gold, each system's answer (p), correctness (c), tokens (t),
    the System 1 / System 2 / distilled responses (r), and the System 2 samples with their vote."""
    recs = {s: {r["example_id"]: r for r in _read_jsonl(rd / "eval" / f"{s}.jsonl")} for s in SYSTEMS}
    traces_path = next((p for p in (rd / "eval" / f"{MAJ}.traces.jsonl", rd / "eval" / "system2.traces.jsonl")
                        if p.is_file()), None)
    samples = {}
    if traces_path is not None:
        for t in _read_jsonl(traces_path):
            samples[t["example_id"]] = [
                {"a": s.get("answer"), "r": _cap(s.get("response")),
                 "t": sum(c["completion"].get("completion_tokens", 0) for c in s.get("calls", []))}
                for s in t.get("samples", [])]
    examples = _read_jsonl(rd / "data" / "eval.jsonl")
    ids = [e["id"] for e in examples] or list(dict.fromkeys(i for s in SYSTEMS for i in recs[s]))
    questions = {e["id"]: e for e in examples}
    rows = []
    for i in ids:
        ex = questions.get(i, {})
        row = {"id": i, "q": _cap(ex.get("question")), "g": ex.get("gold")}
        for s in SYSTEMS:
            r = recs[s].get(i)
            if r is None:
                continue
            row["g"] = row["g"] if row["g"] is not None else r.get("gold")
            cell = {"p": r.get("prediction"), "c": _correct(r), "t": r.get("generated_tokens")}
            if "response" in r.get("meta", {}):
                cell["r"] = _cap(r["meta"]["response"])
            if get_system(s).votes and r.get("meta", {}).get("answers") is not None:
                cell["v"] = dict(Counter(a if a is not None else "(none)" for a in r["meta"]["answers"]).most_common())
            row[s] = cell
        if i in samples:
            row["s"] = samples[i]
        rows.append(row)
    return rows


def curation_rows(rd: Path) -> tuple[list[dict], bool]:
    """One row per unlabeled train input: kept (target) or rejected (reason), the votes, the System 2
    samples, and (when the labels were held back) whether the kept target is right."""
    from .perturb import base_id

    questions = {e["id"]: e.get("question") for e in _read_jsonl(rd / "data" / "train.jsonl")}
    gold = {d["id"]: d.get("gold") for d in _read_jsonl(rd / "data" / "train.gold.jsonl")}
    traces = {t["example_id"]: t for t in _read_jsonl(rd / "traces" / "train.jsonl")}
    kept: dict[str, dict] = {}
    for p in _read_jsonl(rd / "curate" / "pairs.jsonl"):
        kept.setdefault(base_id(p["example_id"]), p)
    rejected = {base_id(r["example_id"]): r for r in _read_jsonl(rd / "curate" / "rejects.jsonl")}
    score = _scorer(rd) if any(g is not None for g in gold.values()) else None
    ids = list(questions) or list(dict.fromkeys([*kept, *rejected]))
    rows = []
    for i in ids:
        row = {"id": i, "q": _cap(questions.get(i))}
        src = kept.get(i) or rejected.get(i) or {}
        meta = src.get("meta") or {}
        if i in kept:
            row["k"], row["tg"] = 1, _cap(kept[i]["target"], 400)
            if score is not None and gold.get(i) is not None:
                row["ok"] = score(kept[i]["target"], gold[i])
        elif i in rejected:
            row["k"], row["why"] = 0, rejected[i]["reason"]
        else:
            row["k"], row["why"] = 0, "not curated"
        if meta.get("votes") is not None:
            row["v"] = meta["votes"]
            row["ag"] = meta.get("agreement")
        if gold.get(i) is not None:
            row["g"] = gold[i]
        t = traces.get(i)
        if t:
            row["s"] = [{"a": s.get("answer"), "r": _cap(s.get("response"))} for s in t.get("samples", [])]
        rows.append(row)
    return rows, score is not None


def cascade_curves(report: dict) -> tuple[list[Curve], list[Point]]:
    """Each confidence signal's cascade at every threshold (a dashed line: accuracy where gold exists, else
    agreement with System 2, against tokens per input) and, as a point, the cascade at its calibrated threshold."""
    cas = report.get("cascade") or {}
    curves, pts = [], []
    for i, (sig, s) in enumerate((cas.get("signals") or {}).items()):
        if not s.get("curve") or not s.get("cascade"):
            continue
        gold = s["cascade"].get("accuracy") is not None
        key = "accuracy" if gold else "agreement"
        xy = sorted({(c["tokens"], c[key]) for c in s["curve"] if c.get(key) is not None and c.get("tokens")})
        color = MORE_COLORS[(i + 2) % len(MORE_COLORS)]
        if len(xy) > 1:
            curves.append(Curve(f"cascade ({sig}) at every threshold", tuple(x for x, _ in xy), tuple(y for _, y in xy),
                                color))
        chosen, thr = s["cascade"], (s.get("calibration") or {}).get("threshold")
        if chosen.get(key) is not None and chosen.get("tokens"):
            name = f"cascade ({sig}{', chosen' if cas.get('best') == sig else ''})"
            pts.append(Point(label=name, x=chosen["tokens"], y=chosen[key], color=color, hollow=not gold,
                             title=f"{name}: threshold {thr}, coverage {pct(chosen['coverage'])}%, {pct(chosen[key])}% "
                                   f"{'accuracy' if gold else 'agreement with System 2'}, {num(chosen['tokens'])} "
                                   "tokens per input"))
    return curves, pts


# -- sections -------------------------------------------------------------------------------
def _label_free(report: dict) -> dict:
    return report.get("label_free") or {}


def plot_points(report: dict, run_label: str = "") -> list[Point]:
    """Accuracy (or, without gold, label-free agreement with System 2) against mean generated tokens."""
    lf = _label_free(report)
    pts = []
    for i, r in enumerate(report.get("rows", [])):
        role = r.get("role", r.get("system", ""))
        name = f"{run_label}: {r['system']}" if run_label else r["system"]
        acc, c = r.get("accuracy"), r.get("ci95")
        hollow = False
        if acc is None and (lf.get(role) or {}).get("agreement") is not None:
            acc, c, hollow = lf[role]["agreement"], lf[role].get("agreement_ci95"), True
        pts.append(Point(label=name, x=r.get("mean_generated_tokens"), y=acc, lo=c[0] if c else None,
                         hi=c[1] if c else None, color=color_of(role, i), hollow=hollow,
                         title=f"{name}: {pct(acc)}% ({ci(c)}), {num(r.get('mean_generated_tokens'))} tokens"
                               + (" (agreement with System 2, no gold)" if hollow else "")))
    for j, r in enumerate((report.get("stepwise") or {}).get("stages", [])[:-1]):  # partial curriculum stages
        if r.get("accuracy") is None:
            continue
        name = f"{run_label + ': ' if run_label else ''}stage {r['stage']}"
        c = r.get("ci95")
        pts.append(Point(label=name, x=r["mean_generated_tokens"], y=r["accuracy"], lo=c[0] if c else None,
                         hi=c[1] if c else None, color=color_of("stage", len(pts) + j),
                         title=f"{name} (stepwise, partial trace): {pct(r['accuracy'])}% ({ci(c)}), "
                               f"{num(r['mean_generated_tokens'])} tokens"))
    return pts


def _verdict(report: dict) -> str:
    v = report.get("verdict")
    if not v:
        return ""
    reasons = "".join(f"<li>{escape(str(x))}</li>" for x in v.get("reasons") or [])
    saving = v.get("token_saving")
    saving_s = (f'<p class="saving">Token saving: {pct(saving)}%.</p>'  # a sentence of its own, never run on
                if isinstance(saving, (int, float)) else "")
    decision = str(v.get("decision", ""))
    line = str(v.get("line", "")).strip()
    line = line + "." if line and line[-1] not in ".!?" else line
    return (f'<section id="verdict" class="verdict {escape(decision)}"><h2>Verdict: {escape(decision)}</h2>'
            f'<p>{escape(line)}</p>{saving_s}{f"<ul>{reasons}</ul>" if reasons else ""}</section>')


def _cascade(report: dict) -> str:
    """The cascade rows, one per confidence signal (calibrated without labels; cascade.py)."""
    from .cascade import markdown, table

    t = table(report.get("cascade"))
    if t is None:
        return ""
    intro, rows = markdown(report["cascade"])[1], t.html('id="cascade-table"')
    return (f'<section id="cascade"><h2>Cascade: distilled first, System 2 where it is unsure</h2>'
            f'<p class="note">{escape(intro)}</p><div class="scroll">{rows}</div></section>')


def _spotcheck(report: dict) -> str:
    """The labeled spot-check, when the run holds labels: every system's accuracy and the paired differences."""
    res = report.get("spotcheck")
    if not res:
        return ""
    from .spotcheck import DIFF_INTRO, INTRO, tables

    systems, diffs = tables(res)
    table_id = 'id="spotcheck-table"'
    line = (res.get("verdict") or {}).get("line")
    return (f'<section id="spotcheck"><h2>Spot-check labels</h2><p class="note">{escape(INTRO.format(n=res["n_labeled"]))}'
            f'</p><div class="scroll">{systems.html(table_id)}</div>'
            + (f'<p class="note">{escape(DIFF_INTRO)}</p><div class="scroll">{diffs.html()}</div>' if diffs else "")
            + (f"<p><strong>Verdict with labels: {escape(line)}</strong></p>" if line else "") + "</section>")


def _rounds_and_retention(report: dict) -> str:
    """The rounds of a continued run and the retention part, when the report has them."""
    from .report import ROUNDS_INTRO, rounds_table_of
    from .retention import kl_line
    from .retention import table as retention_table

    out, rounds_id = [], 'id="rounds-table"'
    t = rounds_table_of(report.get("rounds"))
    if t is not None:
        out.append(f'<section id="rounds"><h2>Rounds</h2><p class="note">{escape(ROUNDS_INTRO)}</p>'
                   f'<div class="scroll">{t.html(rounds_id)}</div></section>')
    part = report.get("retention")
    if part:
        rt = retention_table(part)
        out.append(f'<section id="retention"><h2>Retention</h2><p class="note">{escape(kl_line(part))}</p>'
                   + (f'<div class="scroll">{rt.html()}</div>' if rt is not None else "") + "</section>")
    return "".join(out)


def _extras(report: dict) -> str:
    """Judge metrics, per-group accuracy and robustness over rewordings, when the run has them."""
    out = []
    t = judge_table(report)
    if t is not None:
        out.append('<h3>Pairwise judging, both response orders</h3><p class="note">A verdict that flips with the '
                   'order counts as a tie (position inconsistency).</p>' + t.html('id="judge"'))
    t = group_table(report)
    if t is not None:
        out.append("<h3>Accuracy per input group</h3>" + t.html('id="groups"'))
    t = robustness_table(report)
    if t is not None:
        out.append("<h3>Robustness to the wording of the instruction (accuracy %)</h3>" + t.html('id="robustness"'))
    t = tokens_table(report)
    if t is not None:
        out.append("<h3>Generated tokens per model</h3>" + t.html('id="tokens-per-model"'))
    return f'<section id="metrics"><h2>More metrics</h2>{"".join(out)}</section>' if out else ""


def _funnel(report: dict, rd: Path, cur_rows: list[dict]) -> str:
    c = report.get("curation") or {}
    man = _manifest(rd)
    gen = man.get("generate", {})
    n_inputs = man.get("data", {}).get("n_train") or len(cur_rows) or None
    n_samples = sum(len(r.get("s", [])) for r in cur_rows) or None
    kept = c.get("kept_inputs") if c.get("kept_inputs") is not None else c.get("kept")
    if n_inputs is None and kept is None:
        return ""
    reasons = c.get("reject_reasons") or {}
    stages = [("unlabeled inputs", n_inputs, ""), ("System 2 samples", n_samples,
                                                   f"{gen.get('generated', '-')} generated, "
                                                   f"{gen.get('cache_hits', '-')} from the cache"),
              ("kept inputs", kept, f"{c.get('kept')} training pairs" if c.get("kept") != kept else "")]
    stages += [(f"rejected: {k}", v, "") for k, v in reasons.items()]
    top = max([v for _, v, _ in stages if v] or [1])
    bars = []
    for name, v, note in stages:
        w = 100 * (v or 0) / top
        cls = "rej" if name.startswith("rejected") else ("kept" if name.startswith("kept") else "")
        bars.append(f'<div class="frow"><span class="fname">{escape(name)}</span><span class="fbar {cls}" '
                    f'style="width:{w:.1f}%"></span><span class="fval">{"-" if v is None else v}'
                    f'{(" · " + escape(note)) if note else ""}</span></div>')
    q = c.get("quality_checked_afterwards")
    qline = (f'<p id="curation-quality">Kept targets that are right, checked afterwards against the held-back labels: '
             f'<b>{q["correct_targets"]}/{q["checked"]} ({pct(q["target_accuracy"])}%)</b></p>') if q else ""
    return (f'<section id="curation"><h2>Curation ({escape(str(c.get("curator", "")))})</h2>'
            f'<div class="funnel">{"".join(bars)}</div>{qline}</section>')


def _training(report: dict, rd: Path) -> str:
    losses = _read_jsonl(rd / "model" / "loss.jsonl")
    summ_path = rd / "model" / "train_summary.json"
    t = read_json(summ_path) if summ_path.is_file() else (report.get("train") or {})
    if not losses and not t:
        return ""
    facts = [("steps", t.get("steps")), ("pairs", t.get("n_pairs")), ("first loss", num(t.get("first_loss"), ".4g")),
             ("final loss", num(t.get("final_loss"), ".4g")), ("train time", f"{num(t.get('train_time_s'), '.0f')} s"),
             ("s/step", num(t.get("s_per_step"), ".2f")), ("tokens/step", num(t.get("tokens_per_step"), ".0f")),
             ("tokens/s", num(t.get("tokens_per_s"), ".0f")), ("padding", num(t.get("padding_share"), ".1%")),
             ("peak memory (RSS)", f"{t['peak_rss_bytes'] / 2**30:.2f} GiB" if t.get("peak_rss_bytes") else "-"),
             ("method", t.get("method")), ("world size", t.get("world_size"))]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape('-' if v is None else str(v))}</dd>" for k, v in facts)
    plot = line_svg([r["step"] for r in losses], [r["loss"] for r in losses], "step", "training loss") if losses else \
        '<p class="note">no model/loss.jsonl</p>'
    return (f'<section id="training"><h2>Training</h2><div class="row"><div>{plot}</div>'
            f'<dl class="facts">{dl}</dl></div></section>')


def _manifest(rd: Path) -> dict:
    p = rd / "manifest.json"
    return (read_json(p).get("stages") or {}) if p.is_file() else {}


def _config_section(rd: Path) -> str:
    cfg = (rd / "config.yaml").read_text(encoding="utf-8") if (rd / "config.yaml").is_file() else "(no config.yaml)"
    env = read_json(rd / "env.json") if (rd / "env.json").is_file() else {}
    vers = Table(["package", "version"], [[k, str(v)] for k, v in (env.get("versions") or {}).items()], align="ll")
    man = _manifest(rd)
    stages = Table(["stage", "wall s", "generated", "from cache"],
                   [[k, num(v.get("wall_s")), str(v.get("generated", "-")), str(v.get("cache_hits", "-"))]
                    for k, v in man.items()])
    other = {k: v for k, v in env.items() if k != "versions"}
    return (f'<details id="config"><summary>Config, versions and stage timings</summary><div class="row">'
            f'<div><h3>config.yaml</h3><pre>{escape(cfg)}</pre></div><div><h3>Stage timings</h3>{stages.html()}'
            f'<h3>Versions</h3>{vers.html()}<h3>Environment</h3><pre>{escape(json.dumps(other, indent=1))}</pre>'
            f'</div></div></details>')


def page(title: str, body: str, data: dict | None = None) -> str:
    script = (f'<script type="application/json" id="s2-data">{json_for_script(data)}</script><script>{JS}</script>'
              if data is not None else "")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{escape(title)}</title><style>{CSS}</style></head>'
            f'<body>{body}{script}</body></html>')


def render_run(run_dir: str | Path) -> str:
    """The report page of a run directory, as one HTML string."""
    from .report import load_report

    rd = Path(run_dir)
    report = load_report(rd)
    title = f"s2distill report: {report.get('task')} ({report.get('method')}, {models_line(report)})"
    ev, (cur, labels_held) = eval_rows(rd), curation_rows(rd)
    has = {s: any(s in r for r in ev) for s in SYSTEMS}
    lf = _label_free(report)
    y_label = "accuracy % (95% CI)" + (" or agreement with System 2" if lf else "")
    curves, chosen = cascade_curves(report)
    plot = accuracy_tokens_svg(plot_points(report) + chosen, y_label=y_label, curves=curves)
    systems = summary_table(report, with_label_free=True).html('id="systems"')
    body = [f"<header><h1>{escape(title)}</h1><p class=\"note\">run directory <code>{escape(str(rd))}"
            f"</code> · {len(ev)} eval inputs · {len(cur)} unlabeled train inputs</p></header>", _verdict(report),
            f'<section id="summary"><h2>Accuracy against generated tokens</h2><div class="row"><div id="plot">{plot}</div>'
            f'<div>{systems}'
            f'<p class="note">95% Wilson intervals. System 1 should sit low-left, System 2 high-right, the distilled '
            f'model high-left.</p></div></div></section>',
            _cascade(report), _spotcheck(report), _rounds_and_retention(report), _extras(report), _funnel(report, rd, cur), _training(report, rd),
            '<section id="examples"><h2>Eval examples</h2><div class="browser" id="eval-browser"></div></section>',
            '<section id="curation-examples"><h2>Curation examples (train inputs, no labels used)</h2>'
            '<div class="browser" id="cur-browser"></div></section>', _config_section(rd)]
    data = {"eval": ev, "cur": cur, "has": has, "labels_held": labels_held,
            "names": {r.get("role"): r["system"] for r in report.get("rows", [])},
            "order": list(SYSTEMS), "votes": [s.name for s in TABLE if s.votes], "ref": [reference("maj"), reference("greedy")]}
    return page(title, "".join(body), data)


def write_run_html(run_dir: str | Path, out: str | Path | None = None) -> Path:
    from .rundir import write_text

    out = Path(out) if out else Path(run_dir) / "report.html"
    write_text(out, render_run(run_dir))
    return out


def write_report(rd, cfg, task=None, log=print) -> dict:
    """Build the report of a run directory and write report.json, report.md and report.html (the HTML page
    never costs the JSON and markdown: a failure there is logged with the command that retries it)."""
    from .rundir import write_json, write_text

    report = build_report(rd, cfg, task)
    write_json(rd / "report.json", report)
    write_text(rd / "report.md", to_markdown(report))
    try:
        write_run_html(rd.path)
    except Exception as e:  # noqa: BLE001
        log(f"[report] report.html not written ({type(e).__name__}: {e}); retry: s2distill report RUN --html")
    return report
